package client_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/server"
)

const testMgmtKey = "client-test-management-key-7Hq2"

// forcedTLS is a server with a generated certificate whose plain port only
// redirects (tls.force), and the management API on.
func forcedTLS(o *testutil.Options) {
	o.TLS = config.TLS{Mode: server.TLSGenerate, Addr: "127.0.0.1:0", Force: true}
	o.Management.Key = testMgmtKey
}

// pinnedTransport trusts exactly the certificate with fingerprint pin, as
// the CLI's --pin did before the client package built its transports.
func pinnedTransport(pin string) *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // the pin below replaces the CA check
		VerifyConnection: func(cs tls.ConnectionState) error {
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if "sha256:"+hex.EncodeToString(got[:]) != pin {
				return errors.New("certificate does not match the pin")
			}
			return nil
		}}}
}

// assertNothingSecret fails if a credential crossed the relay.
func assertNothingSecret(t *testing.T, relay *testutil.Relay) {
	t.Helper()
	if relay.Conns() == 0 {
		t.Fatal("nothing reached the relay: the test proves nothing")
	}
	seen := relay.Seen()
	for _, needle := range []string{testMgmtKey, "X-Management-Key", "Authorization", "Bearer"} {
		if bytes.Contains(seen, []byte(needle)) {
			t.Errorf("%q crossed the plain port in clear text:\n%s", needle, seen)
		}
	}
}

// TestNoCredentialCrossesAPlainPortThatRedirects: a real server with
// tls.force behind a relay that records its plain port. The client never
// opens a session there (so no token exists to leak), never sends the
// management key there, and says which URL to use; that URL then works.
func TestNoCredentialCrossesAPlainPortThatRedirects(t *testing.T) {
	srv := testutil.StartServer(t, nil, forcedTLS)
	relay := testutil.NewRelay(t, strings.TrimPrefix(srv.URL(), "http://"))
	want := "the server redirects to " + srv.TLSURL() + "; use --server " + srv.TLSURL()
	ctx := testutil.Ctx(t)
	id := testutil.Identity(t, "alice")

	// A signer's read, with a transport that trusts the server's https
	// certificate: following the redirect would fetch a token over https
	// and then spend it over the plain port.
	c := client.New(relay.URL(), id)
	c.HTTP.Transport = pinnedTransport(srv.Fingerprint())
	if _, err := c.Conversations(ctx); err == nil || err.Error() != want {
		t.Fatalf("conversations through the plain port: %v\nwant: %s", err, want)
	}
	// The same with the client's own transport (no pin: Go's roots).
	c = client.New(relay.URL(), id)
	if _, err := c.Conversations(ctx); err == nil || err.Error() != want {
		t.Fatalf("conversations, default transport: %v\nwant: %s", err, want)
	}
	if err := c.Follow(ctx, "x", 0, client.FollowOptions{}, nil); err == nil || err.Error() != want {
		t.Fatalf("follow: %v", err)
	}

	// The management key: the plain port is asked first without it, and
	// redirects; the key is never sent.
	hc, err := client.HTTPClient(relay.URL(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", relay.URL()+"/v0/management/keys", nil)
	req.Header.Set("X-Management-Key", testMgmtKey)
	var re *client.RedirectError
	if _, err := hc.Do(req); !errors.As(err, &re) || re.Error() != want {
		t.Fatalf("management through the plain port: %v\nwant: %s", err, want)
	}
	assertNothingSecret(t, relay)

	// The URL the error names works.
	c, err = client.Open(srv.TLSURL(), id, client.Options{Pin: srv.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Conversations(ctx); err != nil {
		t.Fatalf("over https: %v", err)
	}
}

// TestCredentialedRedirectIsNotFollowed: a plain port that answers the
// credential-free check but redirects the real request (to a host that
// records what it gets): the client stops, and the redirect's target sees
// nothing.
func TestCredentialedRedirectIsNotFollowed(t *testing.T) {
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	defer thief.Close()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Management-Key") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, thief.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer gw.Close()
	hc, err := client.HTTPClient(gw.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", gw.URL+"/v0/management/keys", nil)
	req.Header.Set("X-Management-Key", testMgmtKey)
	want := "the server redirects to " + thief.URL + "; use --server " + thief.URL
	if _, err := hc.Do(req); err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("got %v, want %s", err, want)
	}
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}

// TestServerURLRefusedBeforeDialing: with a pin or a CA certificate an
// http:// URL is refused, and so is http:// to another host without
// InsecureHTTP; the refusal is Open's, so nothing is ever dialed (the
// relay, pointed at nothing, counts no connection). Loopback http is
// allowed silently; InsecureHTTP allows another host with a warning.
func TestServerURLRefusedBeforeDialing(t *testing.T) {
	relay := testutil.NewRelay(t, "127.0.0.1:1")
	for _, tc := range []struct {
		name, url string
		o         client.Options
		want      string // the whole error; "" for none
	}{
		{"pin and http", relay.URL(), client.Options{Pin: "sha256:" + strings.Repeat("ab", 32)},
			"--pin is set but the server URL " + relay.URL() + " is plain http://, where no certificate is checked and credentials cross in clear text: use the server's https:// URL (--server https://HOST:PORT, the one 'twokey serve' prints as 'listening on https://...')"},
		{"CA certificate and http", relay.URL(), client.Options{CACert: "cert.pem"},
			"--ca-cert is set but the server URL " + relay.URL() + " is plain http://, where no certificate is checked and credentials cross in clear text: use the server's https:// URL (--server https://HOST:PORT, the one 'twokey serve' prints as 'listening on https://...')"},
		{"both and http", "http://localhost:8080", client.Options{Pin: "sha256:00", CACert: "cert.pem", InsecureHTTP: true},
			"--pin and --ca-cert are set but"},
		{"another host", "http://gw.example:8080", client.Options{},
			"the server URL http://gw.example:8080 is plain http:// to gw.example, which is not this machine: session tokens and the management key would cross the network in clear text. Use the server's https:// URL (with --pin or --ca-cert for a self-signed certificate), or give --insecure-http (TWOKEY_INSECURE_HTTP=1) to send them in clear anyway"},
		{"another address", "http://10.1.2.3:8080/", client.Options{}, "is plain http:// to 10.1.2.3, which is not this machine"},
		{"not a URL", "127.0.0.1:8080", client.Options{}, "is not an http:// or https:// URL with a host"},
		{"loopback", relay.URL(), client.Options{}, ""},
		{"localhost", "http://localhost:8080", client.Options{}, ""},
		{"loopback v6", "http://[::1]:8080", client.Options{}, ""},
		{"another host over https", "https://gw.example:8443", client.Options{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warned := 0
			tc.o.Warn = func(string) { warned++ }
			c, err := client.Open(tc.url, nil, tc.o)
			if tc.want == "" {
				if err != nil || warned != 0 {
					t.Fatalf("refused or warned (%d): %v", warned, err)
				}
				return
			}
			var se *client.SettingError
			if !errors.As(err, &se) || c != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (%T)\nwant %s", err, err, tc.want)
			}
			if _, err := client.HTTPClient(tc.url, tc.o); err == nil || err.Error() != se.Error() {
				t.Fatalf("HTTPClient does not refuse alike: %v", err)
			}
		})
	}
	if n := relay.Conns(); n != 0 {
		t.Fatalf("%d connections were dialed", n)
	}

	// --insecure-http lets another host through, with a warning each time.
	var warnings []string
	o := client.Options{InsecureHTTP: true, Warn: func(s string) { warnings = append(warnings, s) }}
	for range 2 {
		if _, err := client.Open("http://gw.example:8080", nil, o); err != nil {
			t.Fatal(err)
		}
	}
	want := "warning: --insecure-http: talking to http://gw.example:8080 over plain http://; session tokens and the management key cross the network in clear text"
	if len(warnings) != 2 || warnings[0] != want {
		t.Fatalf("warnings %q", warnings)
	}
}
