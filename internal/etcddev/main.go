// Command etcddev runs a 3-member etcd cluster in-process on loopback for make demo-ha (development only; production runs etcd itself, docs/ha.md).
//
// It keeps the members' data under --dir, picks free client and peer
// ports, prints one line "endpoints 127.0.0.1:P1,127.0.0.1:P2,..." once
// every member is ready, and runs until SIGINT or SIGTERM.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

const readyTimeout = 30 * time.Second

func main() {
	dir := flag.String("dir", "", "directory for the members' data (required)")
	n := flag.Int("members", 3, "number of members")
	flag.Parse()
	if *dir == "" || *n < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: etcddev --dir DIR [--members N]")
		os.Exit(2)
	}
	es, eps, err := start(*dir, *n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcddev:", err)
		closeAll(es)
		os.Exit(1)
	}
	fmt.Println("endpoints " + strings.Join(eps, ","))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	closeAll(es)
}

// start launches n members one after another without waiting (no member
// is ready before a quorum runs), then waits until all are ready. It
// returns the members started, even on error, so that they can be closed.
func start(dir string, n int) ([]*embed.Etcd, []string, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, nil, fmt.Errorf("picking free ports: %w", err)
	}
	clients := make([]url.URL, n)
	peers := make([]url.URL, n)
	initial := make([]string, n)
	eps := make([]string, n)
	for i := range n {
		clients[i] = url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])}
		peers[i] = url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		initial[i] = fmt.Sprintf("m%d=%s", i, peers[i].String())
		eps[i] = clients[i].Host
	}
	token := fmt.Sprintf("etcddev-%d", time.Now().UnixNano())

	var es []*embed.Etcd
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		cfg.ListenClientUrls = []url.URL{clients[i]}
		cfg.AdvertiseClientUrls = []url.URL{clients[i]}
		cfg.ListenPeerUrls = []url.URL{peers[i]}
		cfg.AdvertisePeerUrls = []url.URL{peers[i]}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = token
		cfg.ClusterState = embed.ClusterStateFlagNew
		cfg.TickMs = 50
		cfg.ElectionMs = 500
		cfg.MaxTxnOps = 10000
		cfg.MaxRequestBytes = 16 << 20
		cfg.UnsafeNoFsync = true // dev data, thrown away after the demo
		cfg.ListenMetricsUrls = nil
		cfg.EnablePprof = false
		cfg.Logger = "zap"
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			return es, nil, fmt.Errorf("member %s: %w", cfg.Name, err)
		}
		es = append(es, e)
	}

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, e := range es {
		wg.Go(func() {
			timer := time.NewTimer(readyTimeout)
			defer timer.Stop()
			select {
			case <-e.Server.ReadyNotify():
			case err, ok := <-e.Err():
				if !ok || err == nil {
					err = errors.New("stopped before it was ready")
				}
				errs[i] = fmt.Errorf("member m%d: %w", i, err)
			case <-e.Server.StopNotify():
				errs[i] = fmt.Errorf("member m%d: stopped before it was ready", i)
			case <-timer.C:
				errs[i] = fmt.Errorf("member m%d: not ready after %v", i, readyTimeout)
			}
		})
	}
	wg.Wait()
	return es, eps, errors.Join(errs...)
}

// closeAll stops every member's raft server hard, then closes them, so
// that no stopping leader waits to hand its lead to peers also stopping.
func closeAll(es []*embed.Etcd) {
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

// freePorts returns n distinct free TCP ports on 127.0.0.1.
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
