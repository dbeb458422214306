package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/twokey/twokey/config"
)

// TLS modes.
const (
	TLSOff      = "off"
	TLSGenerate = "generate"
	TLSFiles    = "files"
)

// certLifetime is how long a generated certificate is valid; it is made
// anew at start when less than certRenewBefore is left.
const (
	certLifetime    = 397 * 24 * time.Hour
	certRenewBefore = 30 * 24 * time.Hour
)

// Fingerprint is how a certificate is pinned: sha256: and the lower-case
// hex SHA-256 of its DER bytes (the form --pin takes).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// tlsSetup is the outcome of loading or making the certificate.
type tlsSetup struct {
	config      *tls.Config
	fingerprint string
	note        string // what happened, for the start-up output
}

// setupTLS loads the configured certificate, or for generate the one in
// <data>/ssl, making it when it is missing, expiring, or lacks a name.
func setupTLS(o config.TLS, dataDir string, now time.Time) (*tlsSetup, error) {
	var cert tls.Certificate
	var note string
	switch o.Mode {
	case TLSFiles:
		c, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.mode files: load %s and %s: %w", o.CertFile, o.KeyFile, err)
		}
		cert, note = c, "using certificate "+o.CertFile
	case TLSGenerate:
		dir := filepath.Join(dataDir, "ssl")
		c, made, why, err := generatedCert(dir, o.Names, now)
		if err != nil {
			return nil, err
		}
		cert = c
		if made {
			note = fmt.Sprintf("created self-signed certificate %s and key %s (mode 0600)%s", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), why)
		} else {
			note = "using self-signed certificate " + filepath.Join(dir, "cert.pem")
		}
	default:
		return nil, fmt.Errorf("tls.mode %q: use off, generate or files", o.Mode)
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("the TLS certificate file holds no certificate")
	}
	return &tlsSetup{config: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		fingerprint: Fingerprint(cert.Certificate[0]), note: note}, nil
}

// certNames returns the SANs a generated certificate carries.
func certNames(extra []string) (dns []string, ips []net.IP) {
	dns = []string{"localhost"}
	ips = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	for _, n := range extra {
		if ip := net.ParseIP(n); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(dns, n) {
			dns = append(dns, n)
		}
	}
	return dns, ips
}

// generatedCert reuses dir/cert.pem and dir/key.pem when they are valid
// for long enough and name everything asked for, and otherwise writes new
// ones (the key with mode 0600). A key.pem open to other users is refused.
func generatedCert(dir string, extra []string, now time.Time) (tls.Certificate, bool, string, error) {
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	dns, ips := certNames(extra)
	why := ""
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 && runtime.GOOS != "windows" {
		return tls.Certificate{}, false, "", fmt.Errorf("tls: the private key %s has mode %04o, open to other users; run 'chmod 600 %s' and start again, or delete %s and %s to make a new pair (clients then pin the new fingerprint)",
			keyPath, fi.Mode().Perm(), keyPath, keyPath, certPath)
	}
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		leaf, perr := x509.ParseCertificate(c.Certificate[0])
		switch {
		case perr != nil:
			why = " (the old one did not parse)"
		case now.Add(certRenewBefore).After(leaf.NotAfter):
			why = " (the old one expires " + leaf.NotAfter.UTC().Format(time.DateOnly) + ")"
		case !covers(leaf, dns, ips):
			why = " (the old one lacks a configured name)"
		default:
			return c, false, "", nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		why = fmt.Sprintf(" (the old pair did not load: %v)", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, false, "", fmt.Errorf("create %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, false, "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, false, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "twokey gateway", Organization: []string{"twokey"}},
		DNSNames:              dns,
		IPAddresses:           ips,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, false, "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, false, "", err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	clear(keyDER)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, "", err
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, "", err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	clear(keyPEM)
	return c, true, why, err
}

func covers(leaf *x509.Certificate, dns []string, ips []net.IP) bool {
	for _, d := range dns {
		if !slices.Contains(leaf.DNSNames, d) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// writeFileAtomic writes data to a temp file with mode perm in path's
// directory, syncs it and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// redirectToTLS answers every request with a 308 to the same path on the
// HTTPS port, at the host the client asked for.
func redirectToTLS(port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" || strings.ContainsAny(host, "/\\@ ") {
			host = "localhost"
		}
		http.Redirect(w, r, "https://"+net.JoinHostPort(host, port)+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
