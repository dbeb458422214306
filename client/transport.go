package client

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twokey/twokey/conversation"
)

// How credentials travel. A request carries a credential when it has one
// of credentialHeaders (a session token, the management key, a program
// key). The rules, all here so that the CLI, the TUI and the management
// client share them:
//
//   - a redirect is never followed on a request that carries a credential,
//     nor from http:// to https:// on any request (a token fetched over
//     https must not then be spent over http): the client stops with a
//     RedirectError naming the URL to use;
//   - over plain http://, before the first credential goes to a host, the
//     same URL is asked once without it (HEAD): a server that answers with
//     a redirect (tls.force) never sees the credential on its plain port;
//   - Open and HTTPClient refuse, before dialing, an http:// server URL when
//     a pin or CA certificate is configured (they are for https), and one
//     to a host that is not loopback unless Options.InsecureHTTP.

// credentialHeaders are the request headers that hold a credential.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "X-Management-Key", "X-Api-Key", "Cookie"}

func carriesCredential(h http.Header) bool {
	for _, k := range credentialHeaders {
		if h.Get(k) != "" {
			return true
		}
	}
	return false
}

// Options say how a client reaches its server: whom it trusts for https,
// and whether plain HTTP may cross the network.
type Options struct {
	// CACert is a PEM file: the server's certificate must chain to one of
	// its certificates (a self-signed one may be its own CA).
	CACert string
	// Pin is sha256:HEX (colons between bytes allowed), the SHA-256 of the
	// server's leaf certificate, checked on every connection, resumed ones
	// included. The pin replaces the CA check unless CACert is given too;
	// then both must hold.
	Pin string
	// InsecureHTTP allows an http:// server URL to a host that is not
	// loopback. Warn (if set) hears it each time it is used.
	InsecureHTTP bool
	Warn         func(string)
}

// WithEnv returns o with what it leaves unset taken from the environment,
// as every command and the TUI read it: TWOKEY_CA_CERT, TWOKEY_PIN and
// TWOKEY_INSECURE_HTTP (1 or true). A TWOKEY_INSECURE_HTTP that is not a
// boolean is a *SettingError.
func (o Options) WithEnv(getenv func(string) string) (Options, error) {
	if o.CACert == "" {
		o.CACert = getenv("TWOKEY_CA_CERT")
	}
	if o.Pin == "" {
		o.Pin = getenv("TWOKEY_PIN")
	}
	if v := getenv("TWOKEY_INSECURE_HTTP"); v != "" && !o.InsecureHTTP {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return o, settingf("TWOKEY_INSECURE_HTTP=%q: give 1 (or true) to allow plain http:// to another host, or leave it unset", v)
		}
		o.InsecureHTTP = on
	}
	return o, nil
}

// SettingError is a server URL or an option that cannot be used, found
// before anything is sent. Its message names the setting and the fix.
type SettingError struct{ Msg string }

func (e *SettingError) Error() string { return e.Msg }

func settingf(format string, args ...any) error {
	return &SettingError{fmt.Sprintf(format, args...)}
}

// RedirectError is a redirect the client refused to follow (see the rules
// above). To is the server URL the redirect points at.
type RedirectError struct{ To string }

func (e *RedirectError) Error() string {
	return fmt.Sprintf("the server redirects to %s; use --server %s", e.To, e.To)
}

// Open returns a client for the server at base acting as id (nil for the
// public endpoints), reaching it as o says. A URL that o refuses is an
// error here, before anything is dialed.
func Open(base string, id *conversation.Identity, o Options) (*Client, error) {
	hc, err := HTTPClient(base, o)
	if err != nil {
		return nil, err
	}
	c := New(base, id)
	c.HTTP = hc
	return c, nil
}

// HTTPClient returns the HTTP client for the server at base with o's
// trust, for callers that speak to other endpoints than Client's (the
// management API). It follows the rules above; an http:// base that o
// refuses is a *SettingError, before anything is dialed.
func HTTPClient(base string, o Options) (*http.Client, error) {
	if err := checkServer(base, o); err != nil {
		return nil, err
	}
	cfg, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	var tr http.RoundTripper
	if cfg != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg
		tr = t
	}
	return newHTTPClient(base, tr), nil
}

// newHTTPClient wraps tr (nil: Go's default transport) in the rules above.
func newHTTPClient(base string, tr http.RoundTripper) *http.Client {
	if tr == nil {
		tr = http.DefaultTransport
	}
	g := &guard{base: strings.TrimSuffix(base, "/"), next: tr, checked: map[string]bool{}}
	return &http.Client{Timeout: 60 * time.Second, Transport: g, CheckRedirect: g.checkRedirect}
}

// ServerURL reads a server address as the CLI and TUI take it (--server,
// TWOKEY_SERVER): a URL with a scheme is returned as it is; HOST:PORT (or
// HOST) without one gets http:// when HOST is this machine (127.0.0.1,
// ::1, localhost), where 'twokey serve' listens by default, and https://
// otherwise, where a credential must not cross in clear text. assumed is
// then the scheme it chose, for a note to the user; it is "" when s had a
// scheme or is not an address at all (which checkServer then refuses with
// its example).
func ServerURL(s string) (u string, assumed string) {
	if s == "" || strings.Contains(s, "://") {
		return s, ""
	}
	p, err := url.Parse("//" + s)
	if err != nil || p.Host == "" || p.User != nil || p.RawQuery != "" || p.Fragment != "" || strings.ContainsAny(s, " \t") {
		return s, ""
	}
	scheme := "https"
	if isLoopback(p.Hostname()) {
		scheme = "http"
	}
	return scheme + "://" + s, scheme
}

// checkServer refuses a server URL over which o would send credentials in
// clear text, or where o's TLS trust could not apply.
func checkServer(base string, o Options) error {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return settingf("the server URL %q is not an http:// or https:// URL with a host, e.g. https://127.0.0.1:8443; set it with --server or TWOKEY_SERVER", base)
	}
	if u.Scheme == "https" {
		return nil
	}
	var trust []string
	if o.Pin != "" {
		trust = append(trust, "--pin")
	}
	if o.CACert != "" {
		trust = append(trust, "--ca-cert")
	}
	if len(trust) > 0 {
		t, verb := strings.Join(trust, " and "), "is"
		if len(trust) > 1 {
			verb = "are"
		}
		return settingf("%s %s set but the server URL %s is plain http://, where no certificate is checked and credentials cross in clear text: use the server's https:// URL (--server https://HOST:PORT, the one 'twokey serve' prints as 'listening on https://...')", t, verb, u.Redacted())
	}
	if !isLoopback(u.Hostname()) {
		if !o.InsecureHTTP {
			return settingf("the server URL %s is plain http:// to %s, which is not this machine: session tokens and the management key would cross the network in clear text. Use the server's https:// URL (with --pin or --ca-cert for a self-signed certificate), or give --insecure-http (TWOKEY_INSECURE_HTTP=1) to send them in clear anyway", u.Redacted(), u.Hostname())
		}
		if o.Warn != nil {
			o.Warn(fmt.Sprintf("warning: --insecure-http: talking to %s over plain http://; session tokens and the management key cross the network in clear text", u.Redacted()))
		}
	}
	return nil
}

// isLoopback reports whether host is this machine by name or address,
// without asking DNS.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig is the TLS configuration o asks for, or nil for Go's default.
func tlsConfig(o Options) (*tls.Config, error) {
	if o.CACert == "" && o.Pin == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACert != "" {
		pemBytes, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, settingf("--ca-cert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, settingf("--ca-cert %s holds no PEM certificate", o.CACert)
		}
		cfg.RootCAs = pool
	}
	if o.Pin != "" {
		want, err := ParsePin(o.Pin)
		if err != nil {
			return nil, err
		}
		// The pin replaces the CA check unless CACert asks for both.
		cfg.InsecureSkipVerify = o.CACert == ""
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("the server's certificate sha256:%x does not match --pin; it may not be your server", got)
			}
			return nil
		}
	}
	return cfg, nil
}

// ParsePin reads sha256:HEX (colons between bytes allowed, as openssl
// prints them).
func ParsePin(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	if !ok {
		h, ok = strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256/")
	}
	b, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
	if !ok || err != nil || len(b) != sha256.Size {
		return nil, settingf("--pin %q: give sha256: and the 64 hex digits 'twokey serve' printed", s)
	}
	return b, nil
}

// guard is the transport that keeps credentials off a plain port that
// redirects (see the rules above).
type guard struct {
	base string
	next http.RoundTripper

	mu      sync.Mutex
	checked map[string]bool // http hosts whose plain port answered without a redirect
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && carriesCredential(req.Header) {
		if err := g.check(req.Context(), req.URL, req.Host); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}
	return g.next.RoundTrip(req)
}

// check asks u once per host, with HEAD and no credential, whether the
// plain port answers or redirects.
func (g *guard) check(ctx context.Context, u *url.URL, host string) error {
	g.mu.Lock()
	done := g.checked[u.Host]
	g.mu.Unlock()
	if done {
		return nil
	}
	probe, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
	if err != nil {
		return err
	}
	probe.Host = host
	resp, err := g.next.RoundTrip(probe)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		to, err := u.Parse(resp.Header.Get("Location"))
		if err != nil || resp.Header.Get("Location") == "" {
			to = u
		}
		return &RedirectError{To: g.serverURL(u, to)}
	}
	g.mu.Lock()
	g.checked[u.Host] = true
	g.mu.Unlock()
	return nil
}

// checkRedirect is the http.Client's CheckRedirect: see the rules above.
func (g *guard) checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0]
	if carriesCredential(first.Header) || req.URL.Scheme != first.URL.Scheme {
		return &RedirectError{To: g.serverURL(first.URL, req.URL)}
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// serverURL is the server URL that a redirect of from (a URL below g.base)
// to to implies: to's origin, and the base's path when to keeps the rest.
func (g *guard) serverURL(from, to *url.URL) string {
	out := url.URL{Scheme: to.Scheme, Host: to.Host}
	if b, err := url.Parse(g.base); err == nil {
		rest := strings.TrimPrefix(from.Path, strings.TrimSuffix(b.Path, "/"))
		if p, ok := strings.CutSuffix(to.Path, rest); ok && rest != "" {
			out.Path = strings.TrimSuffix(p, "/")
		}
	}
	return out.String()
}

// tlsConfigOf returns the TLS configuration of rt, or nil.
func tlsConfigOf(rt http.RoundTripper) *tls.Config {
	switch t := rt.(type) {
	case *http.Transport:
		return t.TLSClientConfig
	case *guard:
		return tlsConfigOf(t.next)
	}
	return nil
}
