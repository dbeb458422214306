package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/server"
)

// commitTimes learns when each record was committed from the engine's
// own "accepted" log line, which it writes right after the commit and the
// publish to the hub, in the goroutine that committed. Capturing it needs
// no hook in the engine and adds no scheduling delay.
type commitTimes struct {
	on atomic.Bool
	mu sync.Mutex
	at map[commitKey]time.Time
}

// acceptedMsg is the message of the engine's log line for an accepted
// message (engine/post.go), with the conversation and seq as attributes.
const acceptedMsg = "accepted"

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

func (c *commitTimes) get(conv string, seq uint64) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.at[commitKey{conv, seq}]
	return t, ok
}

// captureHandler formats every line as the server would (to io.Discard,
// so formatting costs what it costs in production) and notes commit times.
type captureHandler struct {
	inner slog.Handler
	times *commitTimes
}

// Enabled lets debug lines through while commit times are being noted
// (the engine writes "accepted" at debug level); Handle passes on only
// what the server's own level would.
func (h captureHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l) || h.times.on.Load()
}

func (h captureHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.times.on.Load() && r.Message == acceptedMsg {
		var k commitKey
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case engine.AttrConv:
				k.conv = a.Value.String()
			case engine.AttrSeq:
				k.seq = a.Value.Uint64()
			}
			return true
		})
		h.times.mu.Lock()
		h.times.at[k] = r.Time
		h.times.mu.Unlock()
	}
	if !h.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return captureHandler{h.inner.WithAttrs(as), h.times}
}

func (h captureHandler) WithGroup(name string) slog.Handler {
	return captureHandler{h.inner.WithGroup(name), h.times}
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
	logger := slog.New(captureHandler{slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}), e.times})
	var err error
	pprof.Do(context.Background(), pprof.Labels("side", "server"), func(context.Context) {
		e.d, err = server.Start(server.Options{Addr: "127.0.0.1:0", DataDir: dir, Logger: logger, Out: io.Discard,
			ServiceOverrides: []string{"fun=" + up.url}, LockTimeout: 5 * time.Second, UpstreamTimeout: 10 * time.Second})
	})
	if err != nil {
		return nil, err
	}
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
	resp, err := e.http.Post(e.base+"/v1/conversations/"+conv+"/messages", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("server answered %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	return parseSeq(data), nil
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
