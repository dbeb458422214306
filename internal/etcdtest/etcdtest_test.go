package etcdtest

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestCluster1(t *testing.T) {
	c := Start(t, 1)
	if got := c.Endpoints(); len(got) != 1 || !strings.HasPrefix(got[0], "127.0.0.1:") {
		t.Fatalf("Endpoints() = %v, want one 127.0.0.1:PORT", got)
	}
	if got := c.ClientURLs(); len(got) != 1 || !strings.HasPrefix(got[0], "http://127.0.0.1:") {
		t.Fatalf("ClientURLs() = %v, want one http://127.0.0.1:PORT", got)
	}
	if l := c.Leader(t); l != 0 {
		t.Fatalf("Leader() = %d, want 0", l)
	}
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("fresh cluster has %d keys, want 0", len(resp.Kvs))
	}
	c.Stop(0)
	c.Stop(0) // idempotent
	if c.Running(0) {
		t.Fatal("member 0 running after Stop")
	}
	if got := c.Endpoints(); len(got) != 0 {
		t.Fatalf("Endpoints() after Stop = %v, want none", got)
	}
	c.Close()
	c.Close()
}

func TestCluster3(t *testing.T) {
	start := time.Now()
	c := Start(t, 3)
	t.Logf("3-member cluster ready in %v", time.Since(start))
	if got := c.Endpoints(); len(got) != 3 {
		t.Fatalf("Endpoints() = %v, want 3", got)
	}
	cli := c.Client(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v1"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	resp, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("Get k = %v, want v1", resp.Kvs)
	}

	old := c.Leader(t)
	t.Logf("leader is member %d", old)
	stop := time.Now()
	c.Stop(old)
	t.Logf("Stop(%d) took %v", old, time.Since(stop))
	if c.Running(old) {
		t.Fatalf("member %d running after Stop", old)
	}
	if got := c.Endpoints(); len(got) != 2 {
		t.Fatalf("Endpoints() after Stop = %v, want 2", got)
	}

	elect := time.Now()
	lead := c.Leader(t)
	t.Logf("new leader is member %d after %v", lead, time.Since(elect))
	if lead == old || !c.Running(lead) {
		t.Fatalf("new leader %d, old leader %d, running %v", lead, old, c.Running(lead))
	}
	putUntil(t, cli, "k", "v2")

	restart := time.Now()
	c.Restart(t, old)
	t.Logf("Restart(%d) took %v", old, time.Since(restart))
	if !c.Running(old) {
		t.Fatalf("member %d not running after Restart", old)
	}

	// A client on only the restarted member must see the write it missed.
	one, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{c.Endpoint(old)},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client on member %d: %v", old, err)
	}
	defer one.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		gctx, gcancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := one.Get(gctx, "k", clientv3.WithSerializable())
		gcancel()
		if err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted member %d: Get k = %v, %v; want v2", old, resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And a linearizable Get through it works too.
	if _, err := one.Get(ctx, "k"); err != nil {
		t.Fatalf("linearizable Get on restarted member %d: %v", old, err)
	}
	if l := c.Leader(t); !c.Running(l) {
		t.Fatalf("leader %d not running", l)
	}
	t.Logf("test body took %v", time.Since(start))
}

// putUntil puts key=val, retrying for up to 10 s while the cluster settles.
func putUntil(t *testing.T, cli *clientv3.Client, key, val string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Put(ctx, key, val)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Put %s: %v", key, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
