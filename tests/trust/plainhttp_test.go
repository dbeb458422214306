package trust_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/server"
)

func init() { attackSets = append(attackSets, plainHTTPAttacks) }

// plainHTTPAttacks: credentials must not cross a plain port in clear text
// (issue 20).
func plainHTTPAttacks() []attack {
	return []attack{
		{"credentials over plain HTTP", "docs/operations.md (the CLI and http:// URLs): an http:// URL is refused with a pin or CA certificate, " +
			"and to another host without --insecure-http; a credential is never sent to a plain port that redirects, nor a redirect followed",
			"client/transport.go checkServer, guard.RoundTrip, guard.checkRedirect", func(t *testing.T) {
				needBinary(t)
				const mgmtKey = "trust-plain-http-management-key"
				srv := testutil.StartServer(t, nil, func(o *testutil.Options) {
					o.TLS = config.TLS{Mode: server.TLSGenerate, Addr: "127.0.0.1:0", Force: true}
					o.Management.Key = mgmtKey
				})
				relay := testutil.NewRelay(t, strings.TrimPrefix(srv.URL(), "http://"))
				dir := t.TempDir()
				id := filepath.Join(dir, "alice.json")
				if err := testutil.Identity(t, "alice").Save(id); err != nil {
					t.Fatal(err)
				}
				twokey := func(extra []string, args ...string) (int, string) {
					t.Helper()
					cmd := exec.Command(bin, args...)
					cmd.Env = cleanEnv(append([]string{"TWOKEY_IDENTITY=" + id, "TWOKEY_MANAGEMENT_KEY=" + mgmtKey, "HOME=" + dir}, extra...)...)
					var out bytes.Buffer
					cmd.Stdout, cmd.Stderr = &out, &out
					err := cmd.Run()
					code := 0
					if ee, ok := err.(*exec.ExitError); ok {
						code = ee.ExitCode()
					} else if err != nil {
						t.Fatal(err)
					}
					return code, out.String()
				}
				// The report's command: an http:// URL with a pin, refused
				// before anything is dialed.
				plain := []string{"TWOKEY_SERVER=" + relay.URL()}
				pinned := append(plain, "TWOKEY_PIN="+srv.Fingerprint())
				for _, args := range [][]string{{"keys", "ls"}, {"conv", "ls"}} {
					if code, out := twokey(pinned, args...); code != 2 || !strings.Contains(out, "--pin is set but the server URL "+relay.URL()+" is plain http://") {
						t.Fatalf("twokey %s with a pin over http: exit %d\n%s", strings.Join(args, " "), code, out)
					}
				}
				if relay.Conns() != 0 {
					t.Fatal("a refused URL was dialed")
				}
				// Without the pin: the plain port redirects, the CLI stops.
				want := "twokey: the server redirects to " + srv.TLSURL() + "; use --server " + srv.TLSURL() + "\n"
				for _, args := range [][]string{{"keys", "ls"}, {"conv", "ls"}} {
					if code, out := twokey(plain, args...); code != 1 || out != want {
						t.Fatalf("twokey %s through the plain port: exit %d\n%s", strings.Join(args, " "), code, out)
					}
				}
				seen := relay.Seen()
				if relay.Conns() == 0 {
					t.Fatal("nothing reached the relay")
				}
				for _, needle := range []string{mgmtKey, "X-Management-Key", "Authorization", "Bearer"} {
					if bytes.Contains(seen, []byte(needle)) {
						t.Fatalf("%q crossed the plain port in clear text:\n%s", needle, seen)
					}
				}
				// The URL it names works.
				https := []string{"TWOKEY_SERVER=" + srv.TLSURL(), "TWOKEY_PIN=" + srv.Fingerprint()}
				for _, args := range [][]string{{"keys", "ls"}, {"conv", "ls"}} {
					if code, out := twokey(https, args...); code != 0 {
						t.Fatalf("twokey %s over https: exit %d\n%s", strings.Join(args, " "), code, out)
					}
				}
			}},
	}
}
