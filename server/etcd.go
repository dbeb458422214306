package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/programs"
	"github.com/twokey/twokey/store"
)

// healthz answers GET /healthz: on a shared store, 503 when this node
// cannot reach it, so that a load balancer sends it no clients.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	ci := a.eng.Cluster()
	if ci == nil {
		writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
		return
	}
	exec := a.eng.Executing()
	h := api.Health{Status: "ok", Node: ci.Node, Executing: &exec}
	if err := a.eng.Ready(); err != nil {
		h.Status, h.Error = "unavailable", twokey.Clip(err.Error())
		writeJSON(w, http.StatusServiceUnavailable, h)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// clusterStatus answers GET /v0/management/cluster.
func (o *operator) clusterStatus(w http.ResponseWriter, r *http.Request) {
	ci := o.eng.ClusterStatus()
	if ci == nil {
		writeJSON(w, http.StatusOK, api.ClusterStatus{Store: "bolt", Executing: true})
		return
	}
	out := api.ClusterStatus{Store: "etcd", Node: ci.Node, Executing: ci.Executing, Executor: ci.Health.Executor, LagMS: ci.Lag.Milliseconds()}
	for _, e := range ci.Health.Endpoints {
		out.Endpoints = append(out.Endpoints, api.ClusterEndpoint{Endpoint: e.Endpoint, Healthy: e.Healthy, Leader: e.Leader, Revision: e.Revision, Error: e.Error})
	}
	for _, n := range ci.Health.Nodes {
		out.Nodes = append(out.Nodes, api.ClusterNode{Node: n.Node, LagMS: n.LagMS, Reported: n.Reported})
	}
	writeJSON(w, http.StatusOK, out)
}

// clusterGauges are the metrics of a node on a shared store.
func clusterGauges(eng *engine.Engine) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "twokey_cluster_executor",
			Help: "1 while this node is the executor (holds the election's lease), else 0."}, func() float64 {
			if eng.Executing() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "twokey_cluster_watch_lag_seconds",
			Help: "How long after its commit this node's follower last saw another node's record."}, func() float64 {
			return eng.Cluster().Lag.Seconds()
		}),
	}
}

// syncPrograms reads the program keys from the shared store every second,
// so that a key made, rotated, disabled or deleted on another node holds
// on this one within a second (docs/ha.md).
func syncPrograms(st store.Store, reg *programs.Registry, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if loaded, err := loadPrograms(st); err == nil {
			reg.Sync(loaded)
		}
	}
}

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

// MigrateToEtcd copies the bbolt file of c's data directory into the etcd
// store c names (twokey migrate --to etcd). The file must not be in use
// and is left as it was; the etcd prefix must be empty.
func MigrateToEtcd(c *config.Config, out io.Writer) error {
	if len(c.Etcd.Endpoints) == 0 {
		return fmt.Errorf("migrate --to etcd needs the cluster's endpoints: --etcd-endpoints host:2379,... (or etcd.endpoints in twokey.yaml)")
	}
	path := filepath.Join(c.DataDir, "twokey.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no database to migrate at %s (%w); point --data-dir at the server's data directory", path, err)
	}
	src, err := store.Open(path, 2*time.Second)
	if err != nil {
		return fmt.Errorf("%w; stop 'twokey serve' on this data directory first", err)
	}
	defer src.Close()
	if src.Legacy() {
		return fmt.Errorf("%s is of an older layout: start 'twokey serve' on it once with this version (it converts the file), stop it, then migrate", path)
	}
	dst, err := openEtcd(*c)
	if err != nil {
		return err
	}
	defer dst.Close()
	n, err := dst.CopyBolt(src)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "copied %d conversations (%d records) and %d keys from %s to etcd %s under %s\n",
		n.Conversations, n.Records, n.Keys, path, strings.Join(c.Etcd.Endpoints, ","), dst.Prefix())
	fmt.Fprintf(out, "start every node with --store etcd and the same etcd settings, and this data directory's master key (%s, or TWOKEY_MASTER_KEY); the file is unchanged\n",
		filepath.Join(c.DataDir, "master.key"))
	return nil
}
