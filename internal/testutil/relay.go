package testutil

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// Relay is a TCP relay on 127.0.0.1 in front of a target address that
// records every byte crossing it, both ways: what a logging proxy in front
// of a plain port would see. It closes at the end of the test.
type Relay struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	seen  bytes.Buffer // every byte either way, in arrival order per direction
	conns int
	open  []net.Conn
	wg    sync.WaitGroup
}

// NewRelay starts a relay to target (HOST:PORT).
func NewRelay(t testing.TB, target string) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

// URL is the relay's address as a plain http:// URL.
func (r *Relay) URL() string { return "http://" + r.ln.Addr().String() }

// Seen returns a copy of every byte that crossed so far.
func (r *Relay) Seen() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.seen.Bytes())
}

// Conns is how many connections clients opened to the relay.
func (r *Relay) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.target)
		r.mu.Lock()
		r.conns++
		r.open = append(r.open, c)
		if err == nil {
			r.open = append(r.open, up)
		}
		r.mu.Unlock()
		if err != nil {
			c.Close()
			continue
		}
		r.wg.Add(2)
		go r.pipe(up, c)
		go r.pipe(c, up)
	}
}

// pipe copies from src to dst, recording, until either side closes.
func (r *Relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			r.seen.Write(buf[:n])
			r.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	// Either side ending ends the connection (HTTP needs no half-close).
	dst.Close()
	src.Close()
}

func (r *Relay) close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.open {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Drop closes every connection open now, as a network failure would, and
// goes on accepting new ones.
func (r *Relay) Drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.open {
		c.Close()
	}
	r.open = nil
}
