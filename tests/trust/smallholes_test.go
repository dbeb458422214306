package trust_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/server"
)

// Three smaller holes an outside attacker found (issue 15, part 5): wrong
// management keys spread over many source addresses, a proxy path whose
// dot segments the router would have redirected to another service, and
// a data directory other users may write to.

func init() { attackSets = append(attackSets, smallHoleAttacks) }

const smallMgmtKey = "mgmt-key-small-holes-3c9e1d"

// withSmallMgmt turns the management API on with smallMgmtKey.
func withSmallMgmt(adjust func(*config.Management)) testutil.Option {
	return func(o *testutil.Options) {
		o.Management.Key = smallMgmtKey
		if adjust != nil {
			adjust(&o.Management)
		}
	}
}

// mgmtFrom sends GET /v0/management/config to srv from the loopback
// address local (127.0.0.x) with key and the extra headers; it answers
// the status, the headers and the error code (if any).
func mgmtFrom(t *testing.T, srv *testutil.Server, local, key string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(testutil.Ctx(t), "GET", srv.URL()+"/v0/management/config", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Management-Key", key)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("management request from %s: %v", local, err)
	}
	defer resp.Body.Close()
	var body struct{ Error struct{ Code string } }
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, resp.Header, body.Error.Code
}

// rawProxy sends one request line target with method over a fresh
// connection, as bytes, so nothing on the client side cleans the path,
// and reads the answer without following anything.
func rawProxy(t *testing.T, hostport, method, target, programKey string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hostport, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nPrefer: wait=0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		method, target, hostport, programKey)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func smallHoleAttacks() []attack {
	return []attack{
		{"management key guesses spread over addresses",
			"docs/operations.md (Management API, blocks): failures count per client network (all of loopback as one, IPv6 per /64, IPv4 per address), a global budget of wrong keys pauses every check, blocks and the budget survive a restart",
			"server/operator_mgmt.go: clientKey, management.reserve and settle (the global budget), management.persist; server/operator_store.go: banStore",
			func(t *testing.T) {
				clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
				srv := testutil.StartServer(t, nil, testutil.WithClock(clk), withSmallMgmt(nil))
				// One wrong key from each of 20 loopback addresses: loopback is
				// one client, so 5 are checked and the rest refused as blocked.
				checked := 0
				for i := 2; i <= 21; i++ {
					switch st, _, code := mgmtFrom(t, srv, fmt.Sprintf("127.0.0.%d", i), "wrong", nil); {
					case st == 401:
						checked++
					case st == 403 && code == twokey.EForbidden:
					default:
						t.Fatalf("wrong key from 127.0.0.%d: %d %s", i, st, code)
					}
				}
				if checked != 5 {
					t.Fatalf("%d wrong keys from 20 loopback addresses were checked; want 5 (max_failures), loopback being one client", checked)
				}
				for _, addr := range []string{"127.0.0.1", "127.0.0.99"} {
					if st, h, _ := mgmtFrom(t, srv, addr, smallMgmtKey, nil); st != 403 || h.Get("Retry-After") == "" {
						t.Fatalf("the right key from blocked loopback %s: %d", addr, st)
					}
				}
				// The block survives a restart, and lifts with time.
				srv = srv.Restart(t, withSmallMgmt(nil))
				if st, _, _ := mgmtFrom(t, srv, "127.0.0.1", smallMgmtKey, nil); st != 403 {
					t.Fatalf("after a restart, the right key from blocked loopback: %d, want 403", st)
				}
				clk.Advance(30 * time.Minute)
				if st, _, _ := mgmtFrom(t, srv, "127.0.0.1", smallMgmtKey, nil); st != 200 {
					t.Fatalf("after 30m: %d", st)
				}

				// Remote clients behind a trusted proxy: one wrong key from each
				// of 25 addresses meets the global budget (20 in 10 minutes);
				// then every check is refused 429, the right key too, across a
				// restart, until the window has passed.
				remote := withSmallMgmt(func(m *config.Management) {
					m.AllowRemote = true
					m.TrustedProxies = []string{"127.0.0.1"}
				})
				srv = srv.Restart(t, remote)
				as := func(addr, key string) (int, http.Header, string) {
					return mgmtFrom(t, srv, "127.0.0.1", key, map[string]string{"X-Forwarded-For": addr})
				}
				checked = 0
				for i := 1; i <= 25; i++ {
					switch st, h, code := as(fmt.Sprintf("203.0.113.%d", i), "wrong"); {
					case st == 401:
						checked++
					case st == 429 && code == twokey.ERateLimited && h.Get("Retry-After") != "":
					default:
						t.Fatalf("wrong key from 203.0.113.%d: %d %s", i, st, code)
					}
				}
				if checked != 20 {
					t.Fatalf("%d wrong keys from 25 addresses were checked; want the global budget, 20", checked)
				}
				if st, _, code := as("198.51.100.7", smallMgmtKey); st != 429 || code != twokey.ERateLimited {
					t.Fatalf("the right key from a fresh address while the budget is spent: %d %s", st, code)
				}
				srv = srv.Restart(t, remote)
				if st, _, _ := as("198.51.100.7", smallMgmtKey); st != 429 {
					t.Fatalf("after a restart the spent budget is forgotten: %d", st)
				}
				clk.Advance(10 * time.Minute)
				if st, _, code := as("198.51.100.7", smallMgmtKey); st != 200 {
					t.Fatalf("after the window: %d %s", st, code)
				}
				// IPv6 clients count per /64.
				checked = 0
				for i := 1; i <= 8; i++ {
					if st, _, _ := as(fmt.Sprintf("2001:db8:1:2::%x", i), "wrong"); st == 401 {
						checked++
					}
				}
				if checked != 5 {
					t.Fatalf("%d wrong keys from one /64 were checked; want 5", checked)
				}
				if st, _, _ := as("2001:db8:1:2:ffff::1", smallMgmtKey); st != 403 {
					t.Fatalf("the right key from the blocked /64: %d", st)
				}
				if st, _, _ := as("2001:db8:1:3::1", smallMgmtKey); st != 200 {
					t.Fatalf("the right key from the next /64: %d", st)
				}
			}},
		{"a proxy path with dot segments",
			"docs/operations.md (Proxy mode): a proxy path with a dot segment (., .., or either percent-encoded) is host_mismatch, never cleaned or redirected",
			"server/operator.go: refuseDotSegments, called by server/http.go API.ServeHTTP before the router", func(t *testing.T) {
				fx := newFixture(t, 2, 2, withSmallMgmt(nil))
				body, _ := json.Marshal(map[string]string{"name": "dots", "conversation": fx.conv})
				req, _ := http.NewRequestWithContext(testutil.Ctx(t), "POST", fx.srv.URL()+"/v0/management/keys", bytes.NewReader(body))
				req.Header.Set("X-Management-Key", smallMgmtKey)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var nk api.NewKey
				err = json.NewDecoder(resp.Body).Decode(&nk)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 201 {
					t.Fatalf("create a program key: %d %v", resp.StatusCode, err)
				}
				hostport := strings.TrimPrefix(fx.srv.URL(), "http://")
				p := "/v1/proxy/" + fx.conv
				targets := []string{
					p + "/hackernews/../httpbin/headers",
					"/v1/proxy/ops/hackernews/../httpbin/headers",
					p + "/./httpbin/headers",
					p + "/httpbin/./headers",
					p + "/httpbin/headers/.",
					p + "/httpbin/headers/..",
					p + "/httpbin/anything/../headers",
					p + "/hackernews/%2e%2e/httpbin/headers",
					p + "/hackernews/%2E%2E/httpbin/headers",
					p + "/hackernews/.%2e/httpbin/headers",
					p + "/hackernews/%2e./httpbin/headers",
					p + "/httpbin/%2e/headers",
					p + "/httpbin/anything%2F..%2Fheaders",
					"/v1/proxy/../proxy/" + fx.conv + "/httpbin/headers",
					"/v1/x/../proxy/" + fx.conv + "/httpbin/headers",
					"http://" + hostport + p + "/hackernews/../httpbin/headers",
				}
				before, _ := fx.srv.Store().LastSeq(fx.conv)
				for _, method := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"} {
					for _, target := range targets {
						resp, b := rawProxy(t, hostport, method, target, nk.Key)
						if resp.StatusCode/100 == 3 || resp.Header.Get("Location") != "" {
							t.Errorf("%s %s: %d to %q; a proxy path is never redirected", method, target, resp.StatusCode, resp.Header.Get("Location"))
							continue
						}
						if method == "CONNECT" && strings.HasPrefix(target, "http://") {
							continue // net/http reads CONNECT's target as an authority: no path, no proxy route (404)
						}
						if resp.StatusCode != 400 {
							t.Errorf("%s %s: %d (Location %q), want 400 host_mismatch and no redirect", method, target, resp.StatusCode, resp.Header.Get("Location"))
							continue
						}
						if method == "HEAD" {
							continue
						}
						var e struct {
							Error struct{ Code, Message string }
						}
						if err := json.Unmarshal(b, &e); err != nil || e.Error.Code != twokey.EHostMismatch || e.Error.Message == "" {
							t.Errorf("%s %s: body %s, want the protocol's error with host_mismatch", method, target, b)
						}
					}
				}
				if after, _ := fx.srv.Store().LastSeq(fx.conv); after != before {
					t.Fatalf("a refused proxy path wrote to the conversation (%d -> %d)", before, after)
				}
				if n := len(fx.up.Requests()); n != 0 {
					t.Fatalf("the upstream got %d requests", n)
				}
				// The same key on a clean path is proposed as usual.
				if resp, b := rawProxy(t, hostport, "GET", p+"/httpbin/headers", nk.Key); resp.StatusCode != 202 {
					t.Fatalf("a clean proxy path: %d %s", resp.StatusCode, b)
				}
			}},
		{"a world-writable data directory",
			"docs/operations.md (Data directory): a data directory group or others may write to is refused at start, with the fix (chmod 700 DIR); a missing one is made 0700",
			"server/datadir.go: checkDataDir, called by server/daemon.go Start before anything is opened", func(t *testing.T) {
				start := func(dir string) (*server.Daemon, error) {
					cfg := config.Default()
					cfg.Addr, cfg.DataDir = "127.0.0.1:0", dir
					return server.Start(cfg, server.Deps{Out: io.Discard, Logger: slog.New(slog.DiscardHandler), LockTimeout: 2 * time.Second})
				}
				for _, mode := range []os.FileMode{0o777, 0o777 | os.ModeSticky, 0o770, 0o720, 0o702, 0o775, 0o757} {
					dir := filepath.Join(t.TempDir(), "data")
					if err := os.Mkdir(dir, 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(dir, mode); err != nil {
						t.Fatal(err)
					}
					d, err := start(dir)
					if err == nil {
						d.Close()
						t.Fatalf("a data directory of mode %v was used", mode)
					}
					if want := "run 'chmod 700 " + dir + "'"; !strings.Contains(err.Error(), want) {
						t.Fatalf("mode %v: %v; want it to say %q", mode, err, want)
					}
					if ents, _ := os.ReadDir(dir); len(ents) != 0 {
						t.Fatalf("mode %v: the refused start wrote %s", mode, ents[0].Name())
					}
				}
				for _, mode := range []os.FileMode{0o700, 0o750, 0o755} {
					dir := filepath.Join(t.TempDir(), "data")
					if err := os.Mkdir(dir, 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(dir, mode); err != nil {
						t.Fatal(err)
					}
					d, err := start(dir)
					if err != nil {
						t.Fatalf("mode %v: %v", mode, err)
					}
					d.Close()
				}
				// The binary: a missing data directory is made 0700, and a
				// world-writable one makes 'twokey serve' exit with the fix.
				fresh := filepath.Join(t.TempDir(), "new", "data")
				p := startProc(t, fresh, nil)
				p.kill()
				for _, dir := range []string{fresh, filepath.Dir(fresh)} {
					if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
						t.Fatalf("twokey serve made %s with mode %v (%v); want 0700", dir, fi.Mode().Perm(), err)
					}
				}
				if err := os.Chmod(fresh, 0o777); err != nil {
					t.Fatal(err)
				}
				p = spawnProc(t, fresh, nil)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				select {
				case <-p.exited:
				case <-ctx.Done():
					t.Fatalf("twokey serve on a world-writable data directory did not exit:\n%s", p.out)
				}
				if p.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(p.errs.String(), "chmod 700 "+fresh) {
					t.Fatalf("twokey serve on a 0777 data directory: exit %d\n%s%s", p.cmd.ProcessState.ExitCode(), p.out, p.errs)
				}
			}},
	}
}
