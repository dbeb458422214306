// Package etcdtest starts real etcd clusters in-process, on loopback ports and temp dirs, for tests.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

const (
	// readyTimeout bounds how long a member may take to become ready.
	readyTimeout = 30 * time.Second
	// leaderTimeout bounds how long Leader waits for an elected leader.
	leaderTimeout = 10 * time.Second
	// pollInterval is the sleep between polls in bounded wait loops.
	pollInterval = 10 * time.Millisecond
	// dialTimeout is the DialTimeout of clients made by Client.
	dialTimeout = 2 * time.Second

	tickMs          = 10
	electionMs      = 100
	maxTxnOps       = 10000
	maxRequestBytes = 16 << 20

	// logEnv, when set to an etcd log level ("debug", "info", "warn",
	// "error"), sends the members' logs to stderr at that level instead
	// of discarding them. Useful when debugging a failing test.
	logEnv = "ETCDTEST_LOG"
)

// member is one etcd member of a Cluster: its fixed identity (name, data
// dir, URLs) and, while it runs, its embed.Etcd.
type member struct {
	name      string
	dir       string
	clientURL url.URL
	peerURL   url.URL
	etcd      *embed.Etcd // nil when stopped
}

// Cluster is an in-process etcd cluster whose members listen on
// 127.0.0.1 and keep their data under a test's temp dir. Its methods are
// safe for concurrent use.
type Cluster struct {
	token          string
	initialCluster string

	mu      sync.Mutex
	members []*member
}

// Start starts an n-member cluster (n = 1 or 3 typically) whose data lives
// under t.TempDir(); it is stopped by t.Cleanup. It fails the test
// (t.Fatal) with etcd's own error when a member cannot start. It waits
// until the cluster has a leader and serves a Put.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: cluster size must be >= 1, got %d", n)
	}
	// TempDir before Cleanup: cleanups run last-in first-out, so the
	// members are closed before their data dir is removed.
	base := t.TempDir()

	ports, err := freePorts(2 * n)
	if err != nil {
		t.Fatalf("etcdtest: picking free ports: %v", err)
	}
	c := &Cluster{token: fmt.Sprintf("etcdtest-%d", time.Now().UnixNano())}
	peers := make([]string, n)
	for i := range n {
		m := &member{
			name:      fmt.Sprintf("m%d", i),
			clientURL: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])},
			peerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])},
		}
		m.dir = filepath.Join(base, m.name)
		c.members = append(c.members, m)
		peers[i] = m.name + "=" + m.peerURL.String()
	}
	c.initialCluster = strings.Join(peers, ",")
	t.Cleanup(c.Close)

	// In a multi-member cluster no member is ready before a quorum has
	// started, so all are launched before any is waited for. StartEtcd
	// itself returns without waiting for peers; calling it in member order
	// (rather than all at once) keeps each member's "already bootstrapped?"
	// probe of its peers fast: a peer is either serving already or not
	// listening yet, while one that listens but does not yet serve would
	// cost etcd's 1 s bootstrap timeout per peer.
	es := make([]*embed.Etcd, n)
	for i := range n {
		e, err := c.launch(i)
		if err != nil {
			t.Fatalf("etcdtest: starting %d-member cluster: %v", n, err)
		}
		es[i] = e
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, e := range es {
		wg.Go(func() { errs[i] = c.waitReady(i, e) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("etcdtest: starting %d-member cluster: %v", n, err)
	}

	c.Leader(t)

	// Prove that writes go through, then leave the keyspace empty (the
	// revision is no longer 1, though).
	cli := c.Client(t)
	const probe = "etcdtest/ready"
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Put(ctx, probe, "1")
		if err == nil {
			_, err = cli.Delete(ctx, probe)
		}
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcdtest: cluster does not serve a Put: %v", err)
		}
		time.Sleep(pollInterval)
	}
	return c
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. All listeners
// stay open until every port is picked, so the ports are distinct.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// config returns the embed.Config of member m. It is the same for the
// first start and for restarts: at a restart the data dir already holds a
// WAL, so etcd ignores the initial cluster settings and rejoins.
func (c *Cluster) config(m *member) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenClientUrls = []url.URL{m.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{m.clientURL}
	cfg.ListenPeerUrls = []url.URL{m.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.peerURL}
	cfg.InitialCluster = c.initialCluster
	cfg.InitialClusterToken = c.token
	cfg.ClusterState = embed.ClusterStateFlagNew

	cfg.TickMs = tickMs
	cfg.ElectionMs = electionMs
	cfg.MaxTxnOps = maxTxnOps
	cfg.MaxRequestBytes = maxRequestBytes
	cfg.UnsafeNoFsync = true

	cfg.ListenMetricsUrls = nil
	cfg.EnablePprof = false

	cfg.Logger = "zap"
	if lvl := os.Getenv(logEnv); lvl != "" {
		cfg.LogLevel = lvl
		cfg.LogOutputs = []string{embed.StdErrLogOutput}
	} else {
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	}
	return cfg
}

// launch starts member i without waiting for it to be ready. It returns
// etcd's error when the member cannot start.
func (c *Cluster) launch(i int) (*embed.Etcd, error) {
	c.mu.Lock()
	m := c.members[i]
	if m.etcd != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("member %d (%s) is already running", i, m.name)
	}
	cfg := c.config(m)
	c.mu.Unlock()

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("member %d (%s): %w", i, m.name, err)
	}
	c.mu.Lock()
	m.etcd = e
	c.mu.Unlock()
	return e, nil
}

// waitReady waits until e, the embed.Etcd of member i, is ready. It
// returns etcd's error when the member fails first or is not ready within
// 30 s; the member is then stopped.
func (c *Cluster) waitReady(i int, e *embed.Etcd) error {
	name := c.members[i].name // immutable
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err, ok := <-e.Err():
		if !ok || err == nil {
			err = errors.New("etcd stopped before it was ready")
		}
		c.stopEtcd(i, e)
		return fmt.Errorf("member %d (%s): %w", i, name, err)
	case <-e.Server.StopNotify():
		c.stopEtcd(i, e)
		return fmt.Errorf("member %d (%s): etcd server stopped before it was ready", i, name)
	case <-timer.C:
		c.stopEtcd(i, e)
		return fmt.Errorf("member %d (%s): not ready after %v", i, name, readyTimeout)
	}
}

// stopEtcd closes e, the embed.Etcd of member i, and marks the member
// stopped unless it has been stopped (or restarted) meanwhile.
func (c *Cluster) stopEtcd(i int, e *embed.Etcd) {
	c.mu.Lock()
	if c.members[i].etcd != e {
		c.mu.Unlock()
		return
	}
	c.members[i].etcd = nil
	c.mu.Unlock()
	e.Close()
}

// Endpoints returns the client addresses of the running members, in
// "127.0.0.1:PORT" form (no scheme), in member order.
func (c *Cluster) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var eps []string
	for _, m := range c.members {
		if m.etcd != nil {
			eps = append(eps, m.clientURL.Host)
		}
	}
	return eps
}

// ClientURLs returns the client URLs of the running members, in
// "http://127.0.0.1:PORT" form, in member order.
func (c *Cluster) ClientURLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var urls []string
	for _, m := range c.members {
		if m.etcd != nil {
			urls = append(urls, m.clientURL.String())
		}
	}
	return urls
}

// Endpoint returns the client address of member i, "127.0.0.1:PORT",
// whether or not it is running; it does not change across restarts.
func (c *Cluster) Endpoint(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].clientURL.Host
}

// Client returns a client on the endpoints of all members (stopped ones
// included, so it reaches them again after Restart), with DialTimeout 2 s.
// It is closed at cleanup of t. It fails the test if the client cannot be
// created.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c.mu.Lock()
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.clientURL.Host
	}
	c.mu.Unlock()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: dialTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcdtest: client on %v: %v", eps, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Leader returns the index of the running member that is the raft leader
// now. It waits up to 10 s for one and fails the test if there is none.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(leaderTimeout)
	for {
		if i := c.leader(); i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcdtest: no leader among running members after %v", leaderTimeout)
		}
		time.Sleep(pollInterval)
	}
}

// leader returns the index of a running member that considers itself the
// leader and is acknowledged by every other running member, or -1.
func (c *Cluster) leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	lead := -1
	for i, m := range c.members {
		if m.etcd == nil {
			continue
		}
		if m.etcd.Server.Leader() == m.etcd.Server.MemberID() {
			lead = i
			break
		}
	}
	if lead < 0 {
		return -1
	}
	id := c.members[lead].etcd.Server.MemberID()
	for _, m := range c.members {
		if m.etcd != nil && m.etcd.Server.Leader() != id {
			return -1
		}
	}
	return lead
}

// Stop stops member i (Close of its embed.Etcd). Stopping a stopped member
// does nothing. The stop is etcd's graceful one: a stopping leader first
// hands its leadership to a connected peer, so a new leader is usually in
// place when Stop returns. It takes about 1 s, as etcd waits up to that
// long for its peer connections to drain.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	m := c.members[i]
	e := m.etcd
	m.etcd = nil
	c.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart starts member i again, on the same ports and data dir, so that
// it rejoins the cluster, and waits until it is ready (which needs a quorum
// of running members, itself included). It fails the test if member i is
// running or cannot start.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	e, err := c.launch(i)
	if err == nil {
		err = c.waitReady(i, e)
	}
	if err != nil {
		t.Fatalf("etcdtest: restart: %v", err)
	}
}

// Running reports whether member i is running.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].etcd != nil
}

// Close stops all members. It is also done at cleanup of the test that
// started the cluster, and is safe to call more than once.
//
// Unlike Stop, Close does not let a stopping leader hand its leadership
// over: etcd's graceful stop would wait its request timeout (about 5 s)
// for a transfer to members that are stopping too. So Close first stops
// every member's raft server hard, then closes the members concurrently.
func (c *Cluster) Close() {
	c.mu.Lock()
	var es []*embed.Etcd
	for _, m := range c.members {
		if m.etcd != nil {
			es = append(es, m.etcd)
			m.etcd = nil
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range es {
		wg.Go(e.Server.HardStop)
	}
	wg.Wait()
	for _, e := range es {
		wg.Go(e.Close)
	}
	wg.Wait()
}
