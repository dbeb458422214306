package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestServerWithoutScheme (issue 18): --server HOST:PORT (and
// TWOKEY_SERVER) without a scheme is read as http:// on this machine and
// https:// elsewhere, said once on stderr however many calls follow; the
// plain-http rules still hold for what it becomes.
func TestServerWithoutScheme(t *testing.T) {
	fx := newOperatorFixture(t)
	hostPort := strings.TrimPrefix(fx.srv.URL(), "http://")
	port := hostPort[strings.LastIndex(hostPort, ":")+1:]
	for _, tc := range []struct{ name, server, from, shown string }{
		{"--server 127.0.0.1:PORT", hostPort, "--server", hostPort},
		{"--server localhost:PORT", "localhost:" + port, "--server", "localhost:" + port},
		{"TWOKEY_SERVER 127.0.0.1:PORT", "", "TWOKEY_SERVER", hostPort},
	} {
		env := map[string]string{"TWOKEY_HOME": fx.env["TWOKEY_HOME"], "TWOKEY_SERVER": hostPort}
		args := []string{"conv", "ls"}
		if tc.server != "" {
			env["TWOKEY_SERVER"] = "http://127.0.0.1:1" // the flag wins
			args = append([]string{"--server", tc.server}, args...)
		}
		code, out, errs := run(t, env, args...)
		note := "twokey: note: " + tc.from + " " + tc.shown + " has no scheme; using http://" + tc.shown +
			" (plain http, as 'twokey serve' listens on this machine by default; write the scheme to say which)\n"
		if code != 0 || errs != note || !strings.Contains(out, "ops") {
			t.Errorf("%s: exit %d\n%s%s\nwant on stderr only: %s", tc.name, code, out, errs, note)
		}
	}
	// Another host gets https://, never plain http (no dialing needed to
	// see it: there is no identity, so the command stops after the note).
	code, _, errs := run(t, map[string]string{"TWOKEY_HOME": t.TempDir()}, "--server", "gw.example:8443", "conv", "ls")
	if code == 0 || !strings.HasPrefix(errs, "twokey: note: --server gw.example:8443 has no scheme; using https://gw.example:8443 (another host is reached over https only; write the scheme to say which)\n") {
		t.Errorf("another host: exit %d\n%s", code, errs)
	}
	// What is not HOST:PORT is refused as before, with an example.
	code, _, errs = run(t, map[string]string{"TWOKEY_HOME": t.TempDir()}, "--server", "not a url", "templates")
	if code != 2 || !strings.Contains(errs, `the server URL "not a url" is not an http:// or https:// URL with a host`) {
		t.Errorf("not a URL: exit %d\n%s", code, errs)
	}
}

// TestNotATwokeyServer (issue 18): a server that answers, but not as
// twokey (404 with no error body, or HTML), is named as such: it gave no
// version at /v1/gateway, with what to check; exit 3.
func TestNotATwokeyServer(t *testing.T) {
	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>welcome</html>"))
	}))
	t.Cleanup(html.Close)
	fx := newOperatorFixture(t) // an identity to sign in with
	check := "Check --server (or TWOKEY_SERVER): it is the URL 'twokey serve' prints as 'listening on ...' (by default http://127.0.0.1:8080), not an upstream's or another service's"
	for _, tc := range []struct {
		name, server string
		args         []string
		want         string
	}{
		{"sign-in to a 404 server", other.URL, []string{"conv", "ls"},
			"the server at " + other.URL + " is not a twokey server: it answered 404 Not Found to POST /v1/sessions, and GET /v1/gateway gave 404 Not Found and no twokey version. "},
		{"public call to a 404 server", other.URL, []string{"templates"},
			"it answered 404 Not Found to GET /v1/catalog, and GET /v1/gateway gave 404 Not Found and no twokey version. "},
		{"an HTML page", html.URL, []string{"templates"},
			"the server at " + html.URL + " is not a twokey server: it answered with what is not twokey's JSON (decode answer of GET /v1/catalog: invalid character '<' looking for beginning of value), and GET /v1/gateway gave no twokey version. "},
	} {
		env := map[string]string{"TWOKEY_HOME": fx.env["TWOKEY_HOME"], "TWOKEY_SERVER": tc.server}
		code, _, errs := run(t, env, tc.args...)
		if code != 3 || !strings.Contains(errs, tc.want+check) || !strings.HasSuffix(errs, "(unavailable)\n") {
			t.Errorf("%s: exit %d\n%s\nwant exit 3 and: %s%s", tc.name, code, errs, tc.want, check)
		}
	}
	// A twokey server's own refusals are not mistaken for another server's.
	code, _, errs := run(t, fx.env, "say", "nope", "hi")
	if code != 1 || strings.Contains(errs, "not a twokey server") {
		t.Errorf("a twokey refusal: exit %d %s", code, errs)
	}
}

// TestSayNamesTheTextLimit (issue 18): 40,000 and 50,000 bytes (the
// second over the 64 KiB envelope once encoded) are refused in the same
// words, naming the text limit, before anything is sent.
func TestSayNamesTheTextLimit(t *testing.T) {
	fx := newOperatorFixture(t)
	for _, n := range []int{16<<10 + 1, 40000, 50000, 70000} {
		code, _, errs := run(t, fx.env, "say", "ops", strings.Repeat("a", n))
		want := "over the limit of 16384 bytes (16 KiB) for a message's text: shorten it or split it into several messages (too_large)\n"
		if code != 1 || !strings.HasSuffix(errs, want) || !strings.Contains(errs, "the text is ") || strings.Contains(errs, "envelope") {
			t.Errorf("%d bytes: exit %d %s\nwant: %s", n, code, errs, want)
		}
	}
	if code, out, errs := run(t, fx.env, "say", "ops", strings.Repeat("a", 16<<10)); code != 0 {
		t.Errorf("16 KiB exactly: exit %d %s%s", code, out, errs)
	}
}
