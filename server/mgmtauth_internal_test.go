package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/store"
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
	if b := m.bans(time.Now()); len(b) != 1 || b[0].Addr != "loopback" {
		t.Fatalf("bans %v", b)
	}
	if codes := send("right", 3); codes[403] != 3 {
		t.Fatalf("right keys from a blocked address: %v", codes)
	}
}

// mgmtCode sends one management request from remote with key through m.
func mgmtCode(m *management, remote, key string, hdr map[string]string) *httptest.ResponseRecorder {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	r := httptest.NewRequest("GET", "/v0/management/keys", nil)
	r.RemoteAddr = remote
	r.Header.Set("X-Management-Key", key)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	m.wrap(ok)(w, r)
	return w
}

// TestFailuresCountPerClientNetwork: all of loopback is one client, IPv6
// counts per /64, IPv4 per address; a block is listed and lifted by the
// name it is listed under, or by any address it covers.
func TestFailuresCountPerClientNetwork(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	m, err := newManagement(ManagementOptions{Key: "right", AllowRemote: true, TrustedProxies: []string{"192.0.2.1"}}, clk.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for i := 2; i <= 21; i++ {
		if w := mgmtCode(m, fmt.Sprintf("127.0.0.%d:4000", i), "wrong", nil); w.Code == 401 {
			checked++
		}
	}
	if checked != 5 {
		t.Fatalf("wrong keys from 127.0.0.2-21: %d checked, want 5", checked)
	}
	for _, addr := range []string{"127.0.0.1:1", "127.255.255.254:1", "[::1]:1", "[::ffff:127.0.0.1]:1"} {
		if w := mgmtCode(m, addr, "right", nil); w.Code != 403 {
			t.Fatalf("the right key from %s while loopback is blocked: %d", addr, w.Code)
		}
	}
	via := func(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }
	checked = 0
	for i := 1; i <= 10; i++ {
		if w := mgmtCode(m, "192.0.2.1:1", "wrong", via(fmt.Sprintf("2001:db8:aa:bb:%x::1", i))); w.Code == 401 {
			checked++
		}
	}
	if checked != 5 {
		t.Fatalf("wrong keys from one /64: %d checked, want 5", checked)
	}
	if w := mgmtCode(m, "192.0.2.1:1", "right", via("2001:db8:aa:bc::1")); w.Code != 204 {
		t.Fatalf("the right key from the next /64: %d", w.Code)
	}
	for i := 1; i <= 4; i++ {
		mgmtCode(m, "192.0.2.1:1", "wrong", via("203.0.113.1"))
	}
	if w := mgmtCode(m, "192.0.2.1:1", "right", via("203.0.113.2")); w.Code != 204 {
		t.Fatalf("IPv4 counts per address: %d", w.Code)
	}
	bans := m.bans(clk.Now())
	if len(bans) != 2 || bans[0].Addr != "2001:db8:aa:bb::/64" || bans[1].Addr != "loopback" {
		t.Fatalf("bans %+v", bans)
	}
	for addr, want := range map[string]string{"::1": "loopback", "127.8.9.10": "loopback", "loopback": "loopback",
		"2001:db8:aa:bb:1:2:3:4": "2001:db8:aa:bb::/64", "2001:db8:aa:bb::/64": "2001:db8:aa:bb::/64",
		"203.0.113.1": "203.0.113.1", "::ffff:203.0.113.1": "203.0.113.1"} {
		if got, ok := clientKeyOf(addr); !ok || got != want {
			t.Errorf("clientKeyOf(%q) = %q %v, want %q", addr, got, ok, want)
		}
	}
	for _, bad := range []string{"", "nope", "203.0.113.0/24", "2001:db8::/48", "2001:db8::/128"} {
		if got, ok := clientKeyOf(bad); ok {
			t.Errorf("clientKeyOf(%q) = %q, want refused", bad, got)
		}
	}
	if n := m.unban(loopbackClient); n != 1 {
		t.Fatalf("unban loopback lifted %d", n)
	}
	if n := m.unban("2001:db8:aa:bb::/64"); n != 1 {
		t.Fatalf("unban the /64 lifted %d", n)
	}
	if w := mgmtCode(m, "127.0.0.9:1", "right", nil); w.Code != 204 {
		t.Fatalf("after unban: %d", w.Code)
	}
}

// TestGlobalFailureBudget: once 20 wrong keys were checked within 10
// minutes, from any addresses, every check is refused 429 (the right key
// too) until the oldest of them is 10 minutes old; keys sent at once cannot
// get more checks past the budget.
func TestGlobalFailureBudget(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	m, err := newManagement(ManagementOptions{Key: "right", AllowRemote: true}, clk.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		if w := mgmtCode(m, fmt.Sprintf("198.51.100.%d:1", i), "wrong", nil); w.Code != 401 {
			t.Fatalf("wrong key %d: %d", i, w.Code)
		}
	}
	clk.Advance(5 * time.Minute)
	var wg sync.WaitGroup
	codes := make([]int, 40)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = mgmtCode(m, fmt.Sprintf("203.0.113.%d:1", i+1), "wrong", nil).Code
		}()
	}
	wg.Wait()
	n := map[int]int{}
	for _, c := range codes {
		n[c]++
	}
	if n[401] != 10 || n[429] != 30 {
		t.Fatalf("40 wrong keys at once after 10: %v; want 10 checked (401), 30 refused (429)", n)
	}
	w := mgmtCode(m, "192.0.2.50:1", "right", nil)
	if w.Code != 429 || w.Header().Get("Retry-After") != "301" {
		t.Fatalf("the right key while the budget is spent: %d, Retry-After %q; want 429 and 301 (until the first failure is 10m old)", w.Code, w.Header().Get("Retry-After"))
	}
	clk.Advance(5 * time.Minute)
	if w := mgmtCode(m, "192.0.2.50:1", "right", nil); w.Code != 204 {
		t.Fatalf("once the first ten are 10m old: %d", w.Code)
	}
	for i := 1; i <= 10; i++ {
		if w := mgmtCode(m, fmt.Sprintf("192.0.2.%d:1", 100+i), "wrong", nil); w.Code != 401 {
			t.Fatalf("wrong key %d with room in the budget: %d", i, w.Code)
		}
	}
	if w := mgmtCode(m, "192.0.2.99:1", "wrong", nil); w.Code != 429 {
		t.Fatalf("the 21st wrong key in 10m: %d", w.Code)
	}
	// The operator on this machine is never locked out by the network's
	// failures; lifting every block lifts the pause.
	if w := mgmtCode(m, "127.0.0.1:1", "right", nil); w.Code != 204 {
		t.Fatalf("loopback with the right key during the pause: %d", w.Code)
	}
	m.unban("")
	if w := mgmtCode(m, "192.0.2.98:1", "right", nil); w.Code != 204 {
		t.Fatalf("after DELETE /bans: %d", w.Code)
	}
}

// TestBansSurviveRestart: a block and the global budget's failures are
// kept in the store and read back by the next server; a block lasts
// ban_for from when it was made under the ban_for of the server that
// reads it, and one found over is deleted, so it does not come back.
func TestBansSurviveRestart(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	st, err := store.Open(filepath.Join(t.TempDir(), "twokey.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := func(banFor time.Duration) *management {
		t.Helper()
		m, err := newManagement(ManagementOptions{Key: "right", AllowRemote: true, BanFor: banFor}, clk.Now, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.restore(banStore{st}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := start(0)
	for i := 0; i < 5; i++ {
		mgmtCode(m, "127.0.0.1:1", "wrong", nil)
	}
	for i := 1; i <= 3; i++ {
		mgmtCode(m, fmt.Sprintf("203.0.113.%d:1", i), "wrong", nil)
	}
	clk.Advance(time.Minute)
	m = start(0)
	if w := mgmtCode(m, "127.0.0.5:1", "right", nil); w.Code != 403 || w.Header().Get("Retry-After") != "1741" {
		t.Fatalf("loopback after a restart: %d, Retry-After %q; want 403 and 29m left", w.Code, w.Header().Get("Retry-After"))
	}
	if got := len(m.global); got != 3 {
		t.Fatalf("the global budget after a restart holds %d failures, want 3 (loopback's own are outside it)", got)
	}
	// 203.0.113.1 had one failure: four more block it.
	for i := 0; i < 4; i++ {
		mgmtCode(m, "203.0.113.1:1", "wrong", nil)
	}
	if w := mgmtCode(m, "203.0.113.1:1", "right", nil); w.Code != 403 {
		t.Fatalf("a failure count kept across a restart: %d", w.Code)
	}
	// A server with a 1s ban_for finds both blocks over and deletes them;
	// the next one, back at 30m, does not bring them back.
	clk.Advance(2 * time.Second)
	m = start(time.Second)
	if b := m.bans(clk.Now()); len(b) != 0 {
		t.Fatalf("bans under a 1s ban_for: %+v", b)
	}
	m = start(0)
	if w := mgmtCode(m, "127.0.0.1:1", "right", nil); w.Code != 204 {
		t.Fatalf("loopback after the blocks were lifted by a short ban_for: %d", w.Code)
	}
	// A right key clears a kept failure count; unban deletes durably.
	mgmtCode(m, "198.51.100.1:1", "wrong", nil)
	mgmtCode(m, "198.51.100.1:1", "right", nil)
	for i := 0; i < 5; i++ {
		mgmtCode(m, "198.51.100.2:1", "wrong", nil)
	}
	m.unban("198.51.100.2")
	clients, _, err := banStore{st}.loadBans()
	if err != nil {
		t.Fatal(err)
	}
	for name := range clients {
		if name != "203.0.113.2" && name != "203.0.113.3" {
			t.Errorf("the store still holds %s: %+v", name, clients[name])
		}
	}
}
