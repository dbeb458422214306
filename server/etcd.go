package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/google/uuid"

	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/store"
)

// openEtcd connects to the shared store configured in c (store: etcd).
func openEtcd(c config.Config) (*store.Etcd, error) {
	e := c.Etcd
	node := e.Node
	if node == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(c.Addr)
		node = host + ":" + port
		if port == "0" || port == "" {
			// A free port is chosen later: a random name keeps two such
			// nodes on one host apart.
			node = host + "-" + uuid.NewString()[:8]
		}
	}
	var tc *tls.Config
	if e.CAFile != "" || e.CertFile != "" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
		if e.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("etcd.cert_file %s and etcd.key_file %s: %w", e.CertFile, e.KeyFile, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		if e.CAFile != "" {
			pem, err := os.ReadFile(e.CAFile)
			if err != nil {
				return nil, fmt.Errorf("etcd.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("etcd.ca_file %s holds no PEM certificate", e.CAFile)
			}
			tc.RootCAs = pool
		}
	}
	eps := make([]string, 0, len(e.Endpoints))
	for _, ep := range e.Endpoints {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	return store.OpenEtcd(store.EtcdOptions{Endpoints: eps, Prefix: e.Prefix, TLS: tc, Username: e.Username,
		Password: e.Password, Node: node, LeaseTTL: e.LeaseTTL.D()})
}
