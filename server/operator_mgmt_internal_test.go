package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestClientIP(t *testing.T) {
	m, err := newManagement(ManagementOptions{TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1"}}, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		remote, xff, want string
		known             bool
	}{
		{"198.51.100.1:4000", "", "198.51.100.1", true},
		{"198.51.100.1:4000", "127.0.0.1", "198.51.100.1", true}, // an untrusted peer's header is ignored
		{"192.0.2.1:4000", "203.0.113.5", "203.0.113.5", true},
		{"192.0.2.1:4000", "127.0.0.1, 203.0.113.5, 10.1.1.1", "203.0.113.5", true}, // the nearest untrusted hop
		{"192.0.2.1:4000", "10.1.1.1", "10.1.1.1", true},                            // every hop trusted: the farthest
		{"[::1]:4000", "203.0.113.5", "::1", true},
		// A trusted proxy that names no valid hop: the client is unknown,
		// keyed by the proxy's address but never taken for it.
		{"192.0.2.1:4000", "", "192.0.2.1", false},
		{"10.2.2.2:4000", "203.0.113.5, garbage", "10.2.2.2", false}, // a malformed hop: believe nothing before it
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/v0/management/keys", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if ip, known := m.clientIP(r); ip.String() != c.want || known != c.known {
			t.Errorf("%s + %q: %s known=%v, want %s known=%v", c.remote, c.xff, ip, known, c.want, c.known)
		}
	}
	if _, err := newManagement(ManagementOptions{TrustedProxies: []string{"nope"}}, time.Now, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a bad trusted proxy was accepted")
	}
}

// TestLoopbackOnly: a remote peer is refused unless allow_remote.
func TestLoopbackOnly(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	for _, remote := range []bool{false, true} {
		m, err := newManagement(ManagementOptions{Key: "k", AllowRemote: remote}, time.Now, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for addr, local := range map[string]bool{"192.0.2.9:1": false, "127.0.0.1:1": true, "[::1]:1": true} {
			r := httptest.NewRequest("GET", "/v0/management/keys", nil)
			r.RemoteAddr = addr
			r.Header.Set("X-Management-Key", "k")
			w := httptest.NewRecorder()
			m.wrap(ok)(w, r)
			want := 204
			if !local && !remote {
				want = 403
			}
			if w.Code != want {
				t.Errorf("allow_remote=%v from %s: %d, want %d", remote, addr, w.Code, want)
			}
		}
	}
	if m, _ := newManagement(ManagementOptions{}, time.Now, slog.New(slog.DiscardHandler)); m.enabled() || m.hash != nil {
		t.Fatal("an empty key enabled the API")
	}
}

// TestTrustedProxyIsNotLoopback: a trusted proxy on loopback that sends no
// X-Forwarded-For does not make its client a loopback client.
func TestTrustedProxyIsNotLoopback(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	m, err := newManagement(ManagementOptions{Key: "k", TrustedProxies: []string{"127.0.0.1"}}, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for xff, want := range map[string]int{"": 403, "not-an-ip": 403, "203.0.113.7": 403, "127.0.0.1": 204, "::1, 127.0.0.1": 204} {
		r := httptest.NewRequest("GET", "/v0/management/keys", nil)
		r.RemoteAddr = "127.0.0.1:5555"
		r.Header.Set("X-Management-Key", "k")
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		w := httptest.NewRecorder()
		m.wrap(ok)(w, r)
		if w.Code != want {
			t.Errorf("trusted proxy with X-Forwarded-For %q: %d, want %d", xff, w.Code, want)
		}
	}
}

// TestConcurrentWrongKeysCannotBeatTheBlock: 50 wrong keys sent at once
// from one address get at most max_failures key checks; the rest are
// blocked. Right keys sent at once all pass.
func TestConcurrentWrongKeysCannotBeatTheBlock(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	m, err := newManagement(ManagementOptions{Key: "right"}, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	send := func(key string, n int) map[int]int {
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := httptest.NewRequest("GET", "/v0/management/keys", nil)
				r.RemoteAddr = "127.0.0.1:4000"
				r.Header.Set("X-Management-Key", key)
				w := httptest.NewRecorder()
				m.wrap(ok)(w, r)
				mu.Lock()
				codes[w.Code]++
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		return codes
	}
	if codes := send("right", 8); codes[204] != 8 {
		t.Fatalf("8 right keys at once (more than max_failures): %v", codes)
	}
	codes := send("wrong", 50)
	if codes[401] > 5 || codes[401] == 0 || codes[401]+codes[403] != 50 {
		t.Fatalf("50 wrong keys at once: %v; want at most 5 checked (401), the rest blocked (403)", codes)
	}
	if b := m.bans(time.Now()); len(b) != 1 || b[0].Addr != "127.0.0.1" {
		t.Fatalf("bans %v", b)
	}
	if codes := send("right", 3); codes[403] != 3 {
		t.Fatalf("right keys from a blocked address: %v", codes)
	}
}
