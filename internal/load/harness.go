package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/server"
)

// commitTimes notes when each record's commit became durable, from the
// engine's OnCommitted hook: it runs right after the store's commit
// returns and before the records are published to the hub, so a delay
// measured from it includes the whole publish and delivery.
type commitTimes struct {
	on atomic.Bool
	mu sync.Mutex
	at map[commitKey]time.Time
}

type commitKey struct {
	conv string
	seq  uint64
}

func (c *commitTimes) start() {
	c.mu.Lock()
	c.at = map[commitKey]time.Time{}
	c.mu.Unlock()
	c.on.Store(true)
}

func (c *commitTimes) stop() { c.on.Store(false) }

// committed is the engine's hook: records first..last of conv are durable.
func (c *commitTimes) committed(conv string, first, last uint64) {
	if !c.on.Load() {
		return
	}
	now := time.Now()
	c.mu.Lock()
	for seq := first; seq <= last; seq++ {
		c.at[commitKey{conv, seq}] = now
	}
	c.mu.Unlock()
}

func (c *commitTimes) get(conv string, seq uint64) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.at[commitKey{conv, seq}]
	return t, ok
}

// env is one running server with its upstream, the signers, and the
// plumbing the phases share.
type env struct {
	dir     string
	up      *upstream
	d       *server.Daemon
	times   *commitTimes
	base    string
	gw      string
	pool    []*conversation.Identity
	clients []*client.Client
	http    *http.Client
}

// startEnv starts a server on 127.0.0.1:0 over dir, with the fun service
// pointed at up. Its goroutines carry the pprof label side=server.
func startEnv(dir string, up *upstream, pool []*conversation.Identity) (*env, error) {
	e := &env{dir: dir, up: up, pool: pool, times: &commitTimes{at: map[commitKey]time.Time{}}}
	// Lines are formatted as the server's would be (to io.Discard), so
	// logging costs what it costs in production.
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	pprof.Do(context.Background(), pprof.Labels("side", "server"), func(context.Context) {
		cfg := config.Default()
		cfg.Addr, cfg.DataDir, cfg.UpstreamTimeout = "127.0.0.1:0", dir, config.Duration(10*time.Second)
		cfg.Services = map[string]string{"fun": up.url}
		// The load comes from a few identities on one address, by
		// design; only the file descriptor cap stays.
		cfg.Limits.WebSocketsPerToken, cfg.Limits.WebSocketsPerMember = math.MaxInt32, math.MaxInt32
		cfg.Limits.ConnectionsPerAddress = 0 // no cap
		e.d, err = server.Start(cfg, server.Deps{Logger: logger, Out: io.Discard, LockTimeout: 5 * time.Second})
	})
	if err != nil {
		return nil, err
	}
	e.d.Engine().OnCommitted(e.times.committed)
	e.base = e.d.URL()
	e.gw = e.d.Engine().GatewayKey()
	e.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute, DisableCompression: true}}
	for _, id := range pool {
		c := client.New(e.base, id)
		c.HTTP = e.http
		e.clients = append(e.clients, c)
	}
	return e, nil
}

func (e *env) close() error {
	e.http.CloseIdleConnections()
	return e.d.Close()
}

// signed signs payload as kind by id and returns the envelope's JSON and
// the payload's digest.
func signed(id *conversation.Identity, kind string, payload any) ([]byte, string) {
	raw, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	env, err := json.Marshal(conversation.Sign(id, kind, raw))
	if err != nil {
		panic(err)
	}
	return env, conversation.Digest(raw)
}

// post sends an envelope over HTTP and returns the seq it was accepted at.
func (e *env) post(conv string, body []byte) (uint64, error) {
	data, err := e.postRaw(conv, body)
	if err != nil {
		return 0, err
	}
	return parseSeq(data), nil
}

// postRaw sends an envelope over HTTP and returns the record answered.
func (e *env) postRaw(conv string, body []byte) ([]byte, error) {
	resp, err := e.http.Post(e.base+"/v1/conversations/"+conv+"/messages", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("server answered %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	return data, nil
}

// parseSeq reads the first "seq": number of a record or a frame.
func parseSeq(b []byte) uint64 {
	i := bytes.Index(b, []byte(`"seq":`))
	if i < 0 {
		return 0
	}
	b = b[i+6:]
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	n, _ := strconv.ParseUint(string(b[:j]), 10, 64)
	return n
}

// loadSide runs f with the pprof label side=load, so that a profile
// separates the load tool's own work from the server's.
func loadSide(f func()) {
	pprof.Do(context.Background(), pprof.Labels("side", "load"), func(context.Context) { f() })
}
