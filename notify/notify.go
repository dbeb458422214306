// Package notify sends twokey's webhook notifications: what happens to
// requests and memberships, to the targets the operator configures (in
// twokey.yaml or through the management API), as signed JSON (Standard
// Webhooks), Slack messages or ntfy messages (docs/operations.md,
// Notifications).
//
// What it promises:
//
//   - Durable: a notification is written to the outbox in the very
//     commit of the records that cause it (it is an engine.Tap), so a
//     crash between the commit and the send loses nothing, and nothing is
//     sent for a record that did not commit. At start the outbox is
//     loaded and delivery resumes.
//   - At least once, with the same webhook-id on every attempt: a
//     receiver deduplicates by it. Failed attempts are retried with
//     exponential backoff and jitter (5 s doubling to 1 h) for 24 h, then
//     dead-lettered.
//   - In order per request (and per conversation for membership events):
//     an entry is not started while an earlier one of its request is
//     queued or in flight for that target.
//   - Never in the way: the engine only hands over entries; up to Workers
//     attempts per target run in goroutines of their own, each bounded by
//     a timeout, so a slow or dead receiver delays neither approvals nor
//     other targets.
//   - Never a secret to a receiver: events carry names, counts, times and
//     the deep link, never a secret, a header value or a body; params and
//     the URL only for a target with detail full. A request's reason,
//     written by its submitter for the signers, goes at either detail:
//     clipped to 200 characters at summary, whole at full.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/store"
)

// Sealer seals the targets' secrets at rest (*vault.Vault is one).
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(blob, aad []byte) ([]byte, error)
}

// Log attribute keys (never a secret, a URL or a body).
const (
	AttrTarget = "webhook"
	AttrEvent  = "event"
	AttrID     = "webhook_id"
	AttrStatus = "status"
	AttrError  = "error"
)

// Defaults.
const (
	DefaultWorkers        = 4
	DefaultAttemptTimeout = 10 * time.Second
	DefaultRetryFor       = 24 * time.Hour
	DefaultKeep           = 1000
	DefaultGrace          = 24 * time.Hour
	firstBackoff          = 5 * time.Second
	maxBackoff            = time.Hour
	maxRead               = 4 << 10 // of a receiver's answer
)

// Config assembles a Notifier.
type Config struct {
	Store  store.Store
	Sealer Sealer
	Clock  clock.Clock
	Logger *slog.Logger
	// PublicURL is where people open the browser app; events link there
	// (none without it).
	PublicURL string
	// Targets are twokey.yaml's, read-only through the API.
	Targets []config.Notification
	// HTTP sends (its Transport is used; redirects are never followed).
	// Nil: a client of its own.
	HTTP *http.Client
	// Workers bounds the attempts in flight per target (default 4).
	Workers int
	// AttemptTimeout bounds one attempt (default 10 s).
	AttemptTimeout time.Duration
	// RetryFor is how long a notification is retried before it is
	// dead-lettered (default 24 h).
	RetryFor time.Duration
	// Keep is how many delivered and dead notifications are kept per
	// target (default 1000).
	Keep int
}

// Notifier delivers notifications. It is an engine.Tap.
type Notifier struct {
	// nodeBits (1 to 4096) sets this node's orders apart on a shared
	// store; 0 on a store of one node.
	nodeBits uint64
	cfg      Config
	st       store.Store
	clock    clock.Clock
	log      *slog.Logger
	client   *http.Client
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	order    atomic.Uint64 // the last ORDER given
	stats    *stats

	mu      sync.Mutex
	idle    *sync.Cond // broadcast whenever an attempt ends
	closed  bool
	targets map[string]*target
	staged  map[string]staged // by conversation: what Puts made, for Committed
}

// staged is what Puts made for one commit.
type staged struct {
	c       *engine.Commit
	entries []*entry
}

var _ engine.Tap = (*Notifier)(nil)

// New loads the targets (twokey.yaml's and the API's), their secrets
// (making and sealing one for a yaml target that has none) and the
// outbox, and starts delivering.
func New(cfg Config) (*Notifier, error) {
	if cfg.Store == nil || cfg.Sealer == nil {
		return nil, errors.New("notify: a store and a sealer are needed")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	client := &http.Client{}
	if cfg.HTTP != nil {
		*client = *cfg.HTTP
	}
	client.Timeout = 0 // each attempt has its own context
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	n := &Notifier{cfg: cfg, st: cfg.Store, clock: cfg.Clock, log: cfg.Logger, client: client,
		targets: map[string]*target{}, staged: map[string]staged{}, stats: newStats()}
	if cl, ok := cfg.Store.(store.Cluster); ok {
		h := fnv.New32a()
		h.Write([]byte(cl.Node()))
		n.nodeBits = uint64(h.Sum32())%4095 + 1
	}
	n.idle = sync.NewCond(&n.mu)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.loadTargets(); err != nil {
		return nil, err
	}
	if err := n.loadOutbox(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	for _, t := range n.targets {
		n.kick(t)
	}
	n.mu.Unlock()
	return n, nil
}

// nextOrder gives the next ORDER of an outbox key. On a store several
// nodes share (docs/ha.md) each node's orders are its own: the time in
// microseconds, then 12 bits of the node's name, so that two nodes
// writing outbox entries at once never take one key, and the orders of
// two nodes still follow the time they were made.
func (n *Notifier) nextOrder() uint64 {
	if n.nodeBits == 0 {
		return n.order.Add(1)
	}
	for {
		prev := n.order.Load()
		base := max(prev>>12+1, uint64(time.Now().UnixMicro()))
		next := base<<12 | n.nodeBits&0xfff
		if n.order.CompareAndSwap(prev, next) {
			return next
		}
	}
}

// loadOutbox reads the queues and the history, seeds the order counter
// past every key found, and drops what belongs to no target.
func (n *Notifier) loadOutbox() error {
	var drop []store.Put
	var high uint64
	err := n.st.ForEach(store.Outbox, func(k string, v []byte) error {
		e, err := decodeEntry(k, v)
		if err != nil {
			n.log.Warn("dropping an outbox entry that does not decode", AttrError, err.Error())
			drop = append(drop, store.Put{Bucket: store.Outbox, Key: k})
			return nil
		}
		high = max(high, e.Order)
		t := n.targets[e.Target]
		if t == nil {
			drop = append(drop, store.Put{Bucket: store.Outbox, Key: k})
			return nil
		}
		t.queue = append(t.queue, e) // ForEach is in key order: in order
		return nil
	})
	if err != nil {
		return fmt.Errorf("notify: read the outbox: %w", err)
	}
	err = n.st.ForEach(store.Deliveries, func(k string, v []byte) error {
		d, order, err := decodeDelivery(k, v)
		if err != nil {
			drop = append(drop, store.Put{Bucket: store.Deliveries, Key: k})
			return nil
		}
		high = max(high, order)
		t := n.targets[d.Target]
		if t == nil || !strings.HasPrefix(k, d.Target+"/") {
			drop = append(drop, store.Put{Bucket: store.Deliveries, Key: k})
			return nil
		}
		t.addHistory(order, d.State == api.DeliveryDead)
		return nil
	})
	if err != nil {
		return fmt.Errorf("notify: read the deliveries: %w", err)
	}
	n.order.Store(high)
	if len(drop) > 0 {
		if err := n.st.Commit(&store.Write{Puts: drop}); err != nil {
			return fmt.Errorf("notify: drop what belongs to no target: %w", err)
		}
	}
	return nil
}

// Close stops delivering: attempts in flight are cancelled and stay
// queued, to be sent again (with the same id) after the next start.
func (n *Notifier) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	for _, t := range n.targets {
		t.stopTimer()
	}
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
	return nil
}

// Quiet waits until no attempt is in flight and none is due now: what is
// queued waits for its next time (tests move a fake clock to it).
func (n *Notifier) Quiet(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		n.mu.Lock()
		n.idle.Broadcast()
		n.mu.Unlock()
	})
	defer stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		busy := false
		for _, t := range n.targets {
			busy = busy || t.running > 0 || (!n.closed && t.ready(n.clock.Now()))
		}
		if !busy {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n.idle.Wait()
	}
}

// Puts derives the commit's events and returns an outbox entry per target
// that wants each, to be written in the commit. Quick, and no store.
func (n *Notifier) Puts(c *engine.Commit) []store.Put {
	n.mu.Lock()
	none := len(n.targets) == 0
	n.mu.Unlock()
	if none {
		return nil // no target: no record is read (most servers, every commit)
	}
	drafts := derive(c, n.cfg.PublicURL)
	if len(drafts) == 0 {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	// Even once closed: what is in the outbox is sent after the next start.
	var puts []store.Put
	var made []*entry
	names := make([]string, 0, len(n.targets))
	for name := range n.targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, d := range drafts {
		for _, name := range names {
			t := n.targets[name]
			if !t.wants(d.typ, c.After.ID, c.After.Name) {
				continue
			}
			e := &entry{V: entryVersion, Target: name, Order: n.nextOrder(), Key: d.key,
				Event: Event{Type: d.typ, Version: SchemaVersion, ID: newID(), Timestamp: c.Time.UTC(), Data: d.data}}
			if t.hook.Detail == api.DetailFull {
				e.Event.Data.Params, e.Event.Data.URL = d.params, d.url
				e.Event.Data.Reason = d.reason
			} else if d.reason != "" {
				e.Event.Data.Reason = clipReason(d.reason, SummaryReasonChars)
			}
			b, err := json.Marshal(e)
			if err != nil {
				n.log.Error("cannot encode a notification", AttrTarget, name, AttrEvent, d.typ, AttrError, err.Error())
				continue
			}
			puts = append(puts, store.Put{Bucket: store.Outbox, Key: orderKey(name, e.Order), Value: b})
			made = append(made, e)
		}
	}
	// Under the conversation's lock: a Puts whose commit failed is
	// replaced by the next one of its conversation.
	n.staged[c.After.ID] = staged{c: c, entries: made}
	return puts
}

// Committed queues what Puts made for c, now durable, and starts sending.
func (n *Notifier) Committed(c *engine.Commit) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.staged[c.After.ID]
	if !ok || s.c != c {
		return
	}
	delete(n.staged, c.After.ID)
	if n.closed {
		return // in the outbox: sent after the next start
	}
	var orphans []store.Put
	touched := map[*target]bool{}
	for _, e := range s.entries {
		t := n.targets[e.Target]
		if t == nil {
			// Deleted between Puts and now.
			orphans = append(orphans, store.Put{Bucket: store.Outbox, Key: orderKey(e.Target, e.Order)})
			continue
		}
		t.enqueue(e)
		touched[t] = true
	}
	for t := range touched {
		n.kick(t)
	}
	if len(orphans) > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.st.Commit(&store.Write{Puts: orphans}); err != nil {
				n.log.Warn("cannot drop the notifications of a deleted target", AttrError, err.Error())
			}
		}()
	}
}
