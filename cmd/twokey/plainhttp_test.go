package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/server"
)

// TestCLIKeepsCredentialsOffThePlainPort replays issue 20: a server with
// tls: {mode: generate, force: true}, a relay that logs its plain port,
// and the CLI pointed at the relay. With a pin (the report's command) the
// http:// URL is refused before anything is dialed; without one the CLI
// stops at the redirect and names the https URL. Neither the management
// key nor a bearer token crosses the relay, and the named URL works.
func TestCLIKeepsCredentialsOffThePlainPort(t *testing.T) {
	fx := newOperatorFixture(t, func(o *testutil.Options) {
		o.TLS = config.TLS{Mode: server.TLSGenerate, Addr: "127.0.0.1:0", Force: true}
	})
	relay := testutil.NewRelay(t, strings.TrimPrefix(fx.srv.URL(), "http://"))
	env := map[string]string{"TWOKEY_SERVER": relay.URL(), "TWOKEY_HOME": fx.env["TWOKEY_HOME"], "TWOKEY_MANAGEMENT_KEY": testMgmtKey}

	// The start-up lines name only the https URLs.
	out := fx.srv.Out.String()
	if strings.Contains(out, "http://") || !strings.Contains(out, "listening on "+fx.srv.TLSURL()+"\n") ||
		!strings.Contains(out, "management API at "+fx.srv.TLSURL()+"/v0/management/") {
		t.Fatalf("start-up lines with tls.force:\n%s", out)
	}

	// The report: TWOKEY_SERVER=http://… TWOKEY_PIN=… twokey keys ls.
	env["TWOKEY_PIN"] = fx.srv.Fingerprint()
	refused := "twokey: --pin is set but the server URL " + relay.URL() + " is plain http://, where no certificate is checked and " +
		"credentials cross in clear text: use the server's https:// URL (--server https://HOST:PORT, the one 'twokey serve' prints as " +
		"'listening on https://...')\nRun 'twokey --help' for usage.\n"
	for _, args := range [][]string{{"keys", "ls"}, {"conv", "ls"}, {"templates"}, {"calls"}} {
		if code, out, errs := run(t, env, args...); code != 2 || errs != refused || out != "" {
			t.Fatalf("twokey %s with a pin over http: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
	}
	delete(env, "TWOKEY_PIN")
	cert := filepath.Join(fx.srv.DataDir, "ssl", "cert.pem")
	if code, _, errs := run(t, env, "--ca-cert", cert, "keys", "ls"); code != 2 || !strings.HasPrefix(errs, "twokey: --ca-cert is set but the server URL "+relay.URL()+" is plain http://") {
		t.Fatalf("--ca-cert over http: exit %d %s", code, errs)
	}
	if n := relay.Conns(); n != 0 {
		t.Fatalf("a refused URL was dialed %d times", n)
	}

	// Without a pin the CLI reaches the plain port, which redirects: it
	// stops there, credentials unsent, and says what to use.
	redirect := "twokey: the server redirects to " + fx.srv.TLSURL() + "; use --server " + fx.srv.TLSURL() + "\n"
	for _, args := range [][]string{{"keys", "ls"}, {"conv", "ls"}, {"say", "ops", "hello"}} {
		if code, out, errs := run(t, env, args...); code != 1 || errs != redirect || out != "" {
			t.Fatalf("twokey %s through the plain port: exit %d\n%s%s\nwant: %s", strings.Join(args, " "), code, out, errs, redirect)
		}
	}
	if relay.Conns() == 0 {
		t.Fatal("nothing reached the relay: the test proves nothing")
	}
	seen := relay.Seen()
	for _, needle := range []string{testMgmtKey, "X-Management-Key", "Authorization", "Bearer"} {
		if bytes.Contains(seen, []byte(needle)) {
			t.Errorf("%q crossed the plain port in clear text:\n%s", needle, seen)
		}
	}

	// The URL the error names, with the pin, works.
	env["TWOKEY_SERVER"], env["TWOKEY_PIN"] = fx.srv.TLSURL(), fx.srv.Fingerprint()
	if out := mustRun(t, env, "keys", "ls"); !strings.Contains(out, "no program keys") {
		t.Fatalf("keys ls over https:\n%s", out)
	}
	if out := mustRun(t, env, "conv", "ls"); !strings.Contains(out, "ops") {
		t.Fatalf("conv ls over https:\n%s", out)
	}
}

// TestCLIPlainHTTPToAnotherHost: an http:// URL to a host that is not
// loopback is refused (a usage error, before any dialing) unless
// --insecure-http or TWOKEY_INSECURE_HTTP=1, which warn on stderr each
// run; loopback http stays silent.
func TestCLIPlainHTTPToAnotherHost(t *testing.T) {
	home := t.TempDir() // no identity: a command that passes the check stops there, undialed
	remote := "http://gw.example:8080"
	warning := "twokey: warning: --insecure-http: talking to " + remote + " over plain http://; session tokens and the management key cross the network in clear text\n"
	noID := "no identity at " + filepath.Join(home, "identity.json")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flag", map[string]string{"TWOKEY_HOME": home, "TWOKEY_SERVER": remote}, []string{"--insecure-http", "conv", "ls"}},
		{"variable", map[string]string{"TWOKEY_HOME": home, "TWOKEY_SERVER": remote, "TWOKEY_INSECURE_HTTP": "1"}, []string{"conv", "ls"}},
	} {
		code, _, errs := run(t, tc.env, tc.args...)
		if code != 1 || !strings.HasPrefix(errs, warning) || !strings.Contains(errs, noID) || strings.Count(errs, "warning") != 1 {
			t.Fatalf("%s: exit %d\n%s", tc.name, code, errs)
		}
	}

	refused := "twokey: the server URL " + remote + " is plain http:// to gw.example, which is not this machine: session tokens and " +
		"the management key would cross the network in clear text. Use the server's https:// URL (with --pin or --ca-cert for a " +
		"self-signed certificate), or give --insecure-http (TWOKEY_INSECURE_HTTP=1) to send them in clear anyway\nRun 'twokey --help' for usage.\n"
	env := map[string]string{"TWOKEY_HOME": home, "TWOKEY_SERVER": remote, "TWOKEY_MANAGEMENT_KEY": testMgmtKey}
	for _, args := range [][]string{{"conv", "ls"}, {"keys", "ls"}, {"templates"}, {"--server", remote, "tui"}} {
		if code, out, errs := run(t, env, args...); code != 2 || errs != refused || out != "" {
			t.Fatalf("twokey %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
	}
	env["TWOKEY_INSECURE_HTTP"] = "maybe"
	if code, _, errs := run(t, env, "conv", "ls"); code != 2 || !strings.Contains(errs, `TWOKEY_INSECURE_HTTP="maybe"`) {
		t.Fatalf("a bad TWOKEY_INSECURE_HTTP: exit %d %s", code, errs)
	}

	// Loopback http: no warning, no refusal.
	fx := newOperatorFixture(t)
	if code, _, errs := run(t, fx.env, "keys", "ls"); code != 0 || errs != "" {
		t.Fatalf("loopback http: exit %d %q", code, errs)
	}
}
