package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/server"
)

func withTLS(force bool, names ...string) testutil.Option {
	return func(o *testutil.Options) {
		o.TLS = config.TLS{Mode: server.TLSGenerate, Addr: "127.0.0.1:0", Force: force, Names: names}
	}
}

// pinned is an HTTPS client that trusts exactly the certificate whose
// SHA-256 is pin, as the CLI's --pin does.
func pinned(pin string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // the pin below replaces the CA check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || server.Fingerprint(cs.PeerCertificates[0].Raw) != pin {
				return errors.New("certificate does not match the pin")
			}
			return nil
		}}}}
}

func TestTLSGenerate(t *testing.T) {
	srv := testutil.StartServer(t, nil, withTLS(false, "gw.example", "10.1.2.3"))
	dir := filepath.Join(srv.DataDir, "ssl")
	fi, err := os.Stat(filepath.Join(dir, "key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v %v", fi.Mode(), err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
	block, _ := pem.Decode(raw)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("not ECDSA P-256: %T", cert.PublicKey)
	}
	ips := []string{}
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(cert.DNSNames, []string{"localhost", "gw.example"}) || !slices.Equal(ips, []string{"127.0.0.1", "::1", "10.1.2.3"}) {
		t.Fatalf("SANs %v %v", cert.DNSNames, ips)
	}
	pin := server.Fingerprint(cert.Raw)
	if srv.Fingerprint() != pin || !strings.Contains(srv.Out.String(), "tls certificate "+pin) ||
		!strings.Contains(srv.Out.String(), "listening on "+srv.TLSURL()) {
		t.Fatalf("fingerprint not printed:\n%s", srv.Out.String())
	}

	// A Go client accepts the server with the pin, or with the cert as CA.
	resp, err := pinned(pin).Get(srv.TLSURL() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pinned client: %v", err)
	}
	resp.Body.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(raw)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.TLSURL(), "https://"))
	ca := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		resp, err := ca.Get("https://" + net.JoinHostPort(host, port) + "/v1/gateway")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CA client via %s: %v", host, err)
		}
		resp.Body.Close()
	}
	// Anything else is refused.
	if _, err := pinned("sha256:" + strings.Repeat("0", 64)).Get(srv.TLSURL() + "/healthz"); err == nil {
		t.Fatal("a wrong pin was accepted")
	}
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(srv.TLSURL() + "/healthz"); err == nil {
		t.Fatal("the self-signed certificate passed the system roots")
	}
	// Plain HTTP still serves when tls.force is off.
	if r := call(t, "GET", srv.URL()+"/healthz", nil, nil); r.status != 200 {
		t.Fatalf("http: %d", r.status)
	}

	// A restart reuses the certificate.
	srv = srv.Restart(t, withTLS(false, "gw.example", "10.1.2.3"))
	if srv.Fingerprint() != pin || !strings.Contains(srv.Out.String(), "using self-signed certificate") {
		t.Fatalf("restart made a new certificate:\n%s", srv.Out.String())
	}
	// A new name makes a new one.
	srv = srv.Restart(t, withTLS(false, "gw.example", "10.1.2.3", "other.example"))
	if srv.Fingerprint() == pin || !strings.Contains(srv.Out.String(), "lacks a configured name") {
		t.Fatalf("a new name kept the old certificate:\n%s", srv.Out.String())
	}
}

func TestTLSForceRedirects(t *testing.T) {
	srv := testutil.StartServer(t, nil, withTLS(true))
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(srv.URL() + "/v1/catalog?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := srv.TLSURL() + "/v1/catalog?x=1"
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("http answered %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// A pinned client follows the redirect, POST included (308 keeps the method).
	c := pinned(srv.Fingerprint())
	resp, err = c.Get(srv.URL() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("following the redirect: %v", err)
	}
	resp.Body.Close()
}

func TestTLSFiles(t *testing.T) {
	// Make a pair with generate, then serve it as files from elsewhere.
	first := testutil.StartServer(t, nil, withTLS(false))
	pin := first.Fingerprint()
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem"} {
		b, _ := os.ReadFile(filepath.Join(first.DataDir, "ssl", f))
		os.WriteFile(filepath.Join(dir, f), b, 0o600)
	}
	first.Stop(t)
	srv := testutil.StartServer(t, nil, func(o *testutil.Options) {
		o.TLS = config.TLS{Mode: server.TLSFiles, Addr: "127.0.0.1:0", CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	})
	if srv.Fingerprint() != pin {
		t.Fatal("files mode serves another certificate")
	}
	resp, err := pinned(pin).Get(srv.TLSURL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := os.Stat(filepath.Join(srv.DataDir, "ssl")); !os.IsNotExist(err) {
		t.Fatal("files mode wrote into <data>/ssl")
	}
}

// TestTLSKeyModeOnReuse: a generated key.pem that other users may read is
// refused at the next start, naming the file and the fix; restoring 0600
// serves the same certificate again.
func TestTLSKeyModeOnReuse(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	srv := testutil.StartServer(t, nil, withTLS(false))
	pin, dir := srv.Fingerprint(), srv.DataDir
	srv.Stop(t)
	keyPath := filepath.Join(dir, "ssl", "key.pem")
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Addr, cfg.DataDir, cfg.TLS = "127.0.0.1:0", dir, config.TLS{Mode: server.TLSGenerate, Addr: "127.0.0.1:0"}
	d, err := server.Start(cfg, server.Deps{Out: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		d.Close()
		t.Fatal("a key.pem open to other users was reused")
	}
	if !strings.Contains(err.Error(), keyPath) || !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("error: %v", err)
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o644 {
		t.Fatal("the refused start changed the key file")
	}
	if err := os.Chmod(keyPath, 0o600); err != nil {
		t.Fatal(err)
	}
	srv = testutil.StartServer(t, nil, withTLS(false), testutil.WithDataDir(dir))
	if srv.Fingerprint() != pin {
		t.Fatal("after chmod 600 the certificate changed")
	}
}
