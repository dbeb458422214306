package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestClientIP(t *testing.T) {
	m, err := newManagement(ManagementOptions{TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1"}}, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ remote, xff, want string }{
		{"198.51.100.1:4000", "", "198.51.100.1"},
		{"198.51.100.1:4000", "127.0.0.1", "198.51.100.1"}, // an untrusted peer's header is ignored
		{"192.0.2.1:4000", "", "192.0.2.1"},
		{"192.0.2.1:4000", "203.0.113.5", "203.0.113.5"},
		{"192.0.2.1:4000", "127.0.0.1, 203.0.113.5, 10.1.1.1", "203.0.113.5"}, // the nearest untrusted hop
		{"10.2.2.2:4000", "203.0.113.5, garbage", "10.2.2.2"},                 // a malformed hop: believe nothing before it
		{"[::1]:4000", "203.0.113.5", "::1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/v0/management/keys", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := m.clientIP(r).String(); got != c.want {
			t.Errorf("%s + %q: %s, want %s", c.remote, c.xff, got, c.want)
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
