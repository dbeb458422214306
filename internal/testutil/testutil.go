// Package testutil starts real parts for tests: a twokey server on a
// loopback port over a bbolt file in a temp dir, and a loopback upstream
// (go-httpbin plus fault endpoints) that records every request it gets.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
	bolt "go.etcd.io/bbolt"

	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/server"
)

// Received is one request the upstream got.
type Received struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
	At     time.Time
}

// Upstream is a loopback HTTP server that records what it receives.
// Besides httpbin's routes it has:
//
//	/hang         blocks until the client gives up or the test ends
//	/big?n=BYTES  answers n bytes of JSON-ish text (default 5 MB)
//	/redirect-away  302 to another host (http://127.0.0.2:1/stolen)
//	/slow         answers byte by byte, 50 ms apart, 20 bytes
//	/reset        closes the connection without an answer
type Upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []Received
	stop chan struct{}
}

// NewUpstream starts an upstream; it closes at the end of the test.
func NewUpstream(t testing.TB) *Upstream {
	u := &Upstream{stop: make(chan struct{})}
	hb := httpbin.New().Handler()
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		u.mu.Lock()
		u.reqs = append(u.reqs, Received{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, At: time.Now()})
		u.mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/hang"):
			select {
			case <-r.Context().Done():
			case <-u.stop:
			}
			return
		case strings.HasSuffix(r.URL.Path, "/big"):
			n := 5 << 20
			if s := r.URL.Query().Get("n"); s != "" {
				n, _ = strconv.Atoi(s)
			}
			w.Header().Set("Content-Type", "text/plain")
			chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			for n > 0 {
				k := min(n, len(chunk))
				if _, err := w.Write(chunk[:k]); err != nil {
					return
				}
				n -= k
			}
			return
		case strings.HasSuffix(r.URL.Path, "/redirect-away"):
			http.Redirect(w, r, "http://127.0.0.2:1/stolen", http.StatusFound)
			return
		case strings.HasSuffix(r.URL.Path, "/slow"):
			fl, _ := w.(http.Flusher)
			w.Header().Set("Content-Type", "text/plain")
			for i := 0; i < 20; i++ {
				if _, err := w.Write([]byte{'a' + byte(i)}); err != nil {
					return
				}
				if fl != nil {
					fl.Flush()
				}
				select {
				case <-time.After(50 * time.Millisecond):
				case <-r.Context().Done():
					return
				}
			}
			return
		case strings.HasSuffix(r.URL.Path, "/reset"):
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
			return
		}
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/httpbin")
		hb.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(u.stop)
		u.Server.CloseClientConnections()
		u.Server.Close()
	})
	return u
}

// Requests returns a copy of what was received so far.
func (u *Upstream) Requests() []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Received(nil), u.reqs...)
}

// Count returns how many requests arrived on a path.
func (u *Upstream) Count(path string) int {
	n := 0
	for _, r := range u.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// Server is a running twokey server for a test.
type Server struct {
	*server.Daemon
	DataDir  string
	Upstream *Upstream
	Log      *bytes.Buffer // everything the server logged
	Out      *bytes.Buffer
	opts     Options
	mu       *sync.Mutex
}

// Options are what a test server starts with: its configuration (the
// defaults, config.Default, on a free port over a temp dir) and what it
// runs with besides (server.Deps). Set a field of either directly:
// o.Management.Key, o.TLS, o.Clock.
type Options struct {
	config.Config
	server.Deps
}

// Option adjusts a test server's options.
type Option func(*Options)

// WithClock runs the server on c.
func WithClock(c clock.Clock) Option { return func(o *Options) { o.Clock = c } }

// WithDataDir reuses a data directory (for restarts).
func WithDataDir(dir string) Option { return func(o *Options) { o.DataDir = dir } }

// WithTimeout sets the upstream timeout.
func WithTimeout(d time.Duration) Option {
	return func(o *Options) { o.UpstreamTimeout = config.Duration(d) }
}

// lockedBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type lockedBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// StartServer starts a twokey server on 127.0.0.1:0 over a temp dir with
// httpbin and fun pointed at up (which may be nil).
func StartServer(t testing.TB, up *Upstream, opts ...Option) *Server {
	t.Helper()
	o := Options{Config: *config.Default(), Deps: server.Deps{LockTimeout: 2 * time.Second}}
	o.Addr, o.DataDir, o.Services = "127.0.0.1:0", t.TempDir(), map[string]string{}
	if up != nil {
		o.Services["httpbin"], o.Services["fun"] = up.URL+"/httpbin", up.URL
	}
	for _, f := range opts {
		f(&o)
	}
	s := &Server{DataDir: o.DataDir, Upstream: up, Log: &bytes.Buffer{}, Out: &bytes.Buffer{}, mu: &sync.Mutex{}}
	o.Logger = slog.New(slog.NewTextHandler(lockedBuffer{s.mu, s.Log}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.Out = lockedBuffer{s.mu, s.Out}
	s.opts = o
	d, err := server.Start(&o.Config, o.Deps)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	s.Daemon = d
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop closes the server (once) and checks the database's consistency.
func (s *Server) Stop(t testing.TB) {
	if s.Daemon == nil {
		return
	}
	d := s.Daemon
	s.Daemon = nil
	if err := d.Close(); err != nil {
		t.Errorf("close server: %v", err)
	}
	if s.opts.Store == "etcd" {
		return // no file to check: etcd checks its own
	}
	db, err := bolt.Open(d.DBPath(), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Errorf("reopen database for check: %v", err)
		return
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Errorf("database check: %v", err)
	}
}

// Kill stops a server on a shared store as a crash would: its etcd
// client is cut and its leases are left to run out, then the rest of it
// stops (calls in flight end with their timeout and cannot record an
// outcome).
func (s *Server) Kill(t testing.TB) {
	if s.Daemon == nil {
		return
	}
	if k, ok := s.Daemon.Store().(interface{ Kill() }); ok {
		k.Kill()
	}
	s.Stop(t)
}

// Options returns what the server was started with.
func (s *Server) Options() Options { return s.opts }

// Restart stops the server and starts a new one on the same data dir.
func (s *Server) Restart(t testing.TB, opts ...Option) *Server {
	s.Stop(t)
	all := append([]Option{WithDataDir(s.DataDir), WithTimeout(s.opts.UpstreamTimeout.D())}, opts...)
	if s.opts.Clock != nil {
		all = append([]Option{WithClock(s.opts.Clock)}, all...)
	}
	return StartServer(t, s.Upstream, all...)
}

// Logs returns what the server logged so far.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Log.String()
}

// Identity makes a fresh identity.
func Identity(t testing.TB, name string) *conversation.Identity {
	id, err := conversation.NewIdentity(name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Client returns a client for url acting as id, on clk's time if given.
// Signers makes n identities (signer0, signer1, ...) with a client each for
// the server at url (on clk, when not nil), and the members a conversation
// created by signer0 lists besides its author.
func Signers(t testing.TB, url string, n int, clk clock.Clock) ([]*conversation.Identity, []*client.Client, []conversation.Member) {
	var ids []*conversation.Identity
	var cs []*client.Client
	var others []conversation.Member
	for i := 0; i < n; i++ {
		id := Identity(t, fmt.Sprintf("signer%d", i))
		ids = append(ids, id)
		cs = append(cs, Client(url, id, clk))
		if i > 0 {
			others = append(others, conversation.Member{Key: id.KeyID(), Name: id.Name})
		}
	}
	return ids, cs, others
}

func Client(url string, id *conversation.Identity, clk clock.Clock) *client.Client {
	c := client.New(url, id)
	if clk != nil {
		c.Now = clk.Now
	}
	return c
}

// Ctx returns a context that ends with the test, or after 2 minutes: a
// bound on a hang, not a timing assertion, so it is generous enough for a
// loaded CI machine running the race detector.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
