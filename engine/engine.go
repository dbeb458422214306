// Package engine applies signed messages to conversations, one conversation
// at a time and in order: it verifies each envelope, decides with the gate's
// rules, commits the records durably through the store, publishes them to
// the hub, and makes the approved upstream calls exactly once.
//
// Locking: each conversation has one mutex, held from validation through
// the durable commit to the publish, so a conversation's records are
// decided, numbered and delivered in one order. Different conversations
// proceed in parallel and share fsyncs through the store's group commit.
// State is copied, changed, committed and only then swapped in, so a failed
// commit leaves memory as it was.
package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
	"github.com/twokey/twokey/vault"
)

// Version is the server's protocol and build version.
const Version = "twokey/1"

// Log attribute keys (STYLE 9): never a secret, a sealed blob or a token.
const (
	AttrConv    = "conversation"
	AttrKind    = "kind"
	AttrSeq     = "seq"
	AttrRequest = "request_id"
	AttrAuthor  = "author"
	AttrCode    = "code"
	AttrService = "service"
	AttrStatus  = "status"
	AttrReason  = "reason"
	AttrError   = "error"
	AttrCause   = "cause"
)

// Config assembles an engine.
type Config struct {
	Store   store.Store
	Vault   *vault.Vault
	Catalog *catalog.Catalog
	Gateway *conversation.Identity
	BoxPub  *[32]byte
	BoxPriv *[32]byte
	Clock   clock.Clock
	Logger  *slog.Logger
	Hub     *conversation.Hub
	// TokenKey signs bearer tokens (32 random bytes, kept sealed at rest).
	TokenKey []byte
	// Upstream is the client for approved calls; its Transport is used and
	// redirects are never followed. Nil means a default transport.
	Upstream *http.Client
	// UpstreamTimeout bounds one upstream call (default 30 s).
	UpstreamTimeout time.Duration
	// MaxResponseBytes bounds how much of an upstream body is read (default 10 MiB).
	MaxResponseBytes int64
	// Observer, when set, hears about requests after each commit (metrics);
	// one that is also a Recorder writes the request log in the commit.
	Observer Observer
	// Tap, when set, reads every commit that appends records and writes
	// its puts in it (the webhook outbox).
	Tap Tap
}

// Observer hears about what the engine does, for logs and metrics.
type Observer interface {
	Executed(ex Execution)
	Closed(conv string, req *gate.Request, state, reason string)
	Voted(conv string, req *gate.Request, approve bool)
	Submitted(conv string, req *gate.Request)
}

// Execution describes one finished upstream call.
type Execution struct {
	Time         time.Time
	Conversation string
	Request      *gate.Request
	Service      string
	Status       int
	Duration     time.Duration
	Reason       string // set when the call failed
}

// Engine is the gateway's core.
type Engine struct {
	cfg   Config
	st    store.Store
	hub   *conversation.Hub
	clock clock.Clock
	log   *slog.Logger
	gwKey string
	box   string

	mu    sync.RWMutex
	convs map[string]*conv

	reserved sync.Map // request ids being submitted right now
	nonceMu  sync.Mutex

	pruneMu      sync.Mutex // held while nonces are pruned
	pruneStop    func() bool
	pruneStopped bool

	expiry *expiry
	execWG sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	client *http.Client

	committed atomic.Pointer[func(conv string, first, last uint64)]

	legacySeen atomic.Bool // the replay window holds keys of the old form (see seenKey)

	// On a shared store (cluster.go): the follower's and the
	// executor's state, whether this node leads, and their goroutines.
	cl      *clusterState
	leading atomic.Bool
	bg      sync.WaitGroup
}

// OnCommitted installs f, called with the seqs of each commit's records
// right after the commit is durable and before they are published: the
// bench times fan-out from there. f runs under the conversation's lock.
func (e *Engine) OnCommitted(f func(conv string, first, last uint64)) { e.committed.Store(&f) }

// conv is one conversation's state in memory, guarded by mu.
type conv struct {
	mu        sync.Mutex
	st        *conversation.State
	gate      gate.Config
	proposals map[string]*gate.Proposal
	requests  map[string]*gate.Request // open: pending or executing, decoded
	// lazy holds the pending requests loaded at start and not decoded
	// yet, with their expiry: req decodes one from the store when it is
	// first needed, so 100,000 of them cost a restart and the heap little.
	lazy    map[string]time.Time
	secrets map[string]*vault.Secret // stored and not revoked
}

// snapshot is a conversation's state as kept in the store.
type snapshot struct {
	State     *conversation.State       `json:"state"`
	Gate      gate.Config               `json:"gate"`
	Proposals map[string]*gate.Proposal `json:"proposals,omitempty"`
}

// New loads every conversation and open request from the store, fails any
// request found executing (it may have been sent before a crash: it is never
// sent again) and starts the expiry scheduler.
func New(cfg Config) (*Engine, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Hub == nil {
		cfg.Hub = conversation.NewHub(256)
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = 30 * time.Second
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 10 << 20
	}
	if len(cfg.TokenKey) < 32 {
		return nil, errors.New("engine: token key must be at least 32 bytes")
	}
	client := &http.Client{}
	if cfg.Upstream != nil {
		client.Transport = cfg.Upstream.Transport
	} else {
		// No proxy from the environment: an HTTP proxy would see the
		// injected key. Keep connections to upstreams warm.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		t.MaxIdleConnsPerHost = 64
		client.Transport = t
	}
	// A redirect is returned as the response, never followed: following
	// one could carry the injected key to another host.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e := &Engine{
		cfg: cfg, st: cfg.Store, hub: cfg.Hub, clock: cfg.Clock, log: cfg.Logger,
		gwKey: cfg.Gateway.KeyID(), box: base64.RawURLEncoding.EncodeToString(cfg.BoxPub[:]),
		convs: map[string]*conv{}, client: client,
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.expiry = newExpiry(cfg.Clock, e.expireDue)
	if cs, ok := cfg.Store.(store.Cluster); ok {
		e.cl = &clusterState{st: cs}
	}
	if err := e.load(); err != nil {
		return nil, err
	}
	legacy, err := e.hasLegacySeen()
	if err != nil {
		return nil, err
	}
	e.legacySeen.Store(legacy)
	e.pruneTick()
	if e.cl != nil {
		e.startCluster()
	}
	return e, nil
}

// GatewayKey returns the gateway's signing key id.
func (e *Engine) GatewayKey() string { return e.gwKey }

// BoxKey returns the gateway's X25519 box key, base64url.
func (e *Engine) BoxKey() string { return e.box }

// Hub returns the hub records are published to.
func (e *Engine) Hub() *conversation.Hub { return e.hub }

// Catalog returns the service catalog.
func (e *Engine) Catalog() *catalog.Catalog { return e.cfg.Catalog }

// Now returns the engine's clock time.
func (e *Engine) Now() time.Time { return e.clock.Now() }

// Close stops scheduling, waits for calls in flight to finish and record
// their outcome, and leaves the store open for its owner to close.
func (e *Engine) Close() {
	e.pruneMu.Lock()
	e.pruneStopped = true
	if e.pruneStop != nil {
		e.pruneStop()
	}
	e.pruneMu.Unlock()
	e.expiry.stop()
	e.cancel()
	e.bg.Wait()
	e.execWG.Wait()
}

func (e *Engine) load() error {
	var snaps []snapshot
	err := e.st.ForEach(store.Convs, func(k string, v []byte) error {
		var s snapshot
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("conversation %s: corrupt snapshot: %w", k, err)
		}
		snaps = append(snaps, s)
		return nil
	})
	if err != nil {
		return err
	}
	for _, s := range snaps {
		c := &conv{st: s.State, gate: s.Gate, proposals: s.Proposals,
			requests: map[string]*gate.Request{}, lazy: map[string]time.Time{}, secrets: map[string]*vault.Secret{}}
		if c.proposals == nil {
			c.proposals = map[string]*gate.Proposal{}
		}
		if err := e.catchUp(c.st); err != nil {
			return err
		}
		e.convs[c.st.ID] = c
		e.hub.Init(c.st.ID, c.st.Seq)
	}
	err = e.st.ForEach(store.Secrets, func(k string, v []byte) error {
		var s vault.Secret
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("secret %s: %w", k, err)
		}
		if c := e.convs[s.Conversation]; c != nil {
			c.secrets[s.ID] = &s
		}
		return nil
	})
	if err != nil {
		return err
	}
	// A pending request's mark says its conversation, state and expiry:
	// those are all a restart needs of it (see conv.lazy). The rest, a
	// mark of the older form (its conversation alone) or a request found
	// executing, is decoded now.
	var ids []string
	var lazy []expItem
	err = e.st.ForEach(store.Pending, func(id string, v []byte) error {
		if conv, state, exp, ok := parsePendingMark(v); ok && state == gate.StatePending {
			c := e.convs[conv]
			if c == nil {
				return fmt.Errorf("request %s names unknown conversation %s", id, conv)
			}
			c.lazy[id] = exp
			lazy = append(lazy, expItem{at: exp, conv: c.st.ID, id: id})
			return nil
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return err
	}
	// The open requests are read a chunk at a time in one transaction and
	// decoded on every core: decoding is most of a restart's work.
	var interrupted, pending, approved []*gate.Request
	in := interner{}
	const chunk = 4096
	for len(ids) > 0 {
		part := ids[:min(chunk, len(ids))]
		ids = ids[len(part):]
		raws, err := e.st.GetAll(store.Requests, part)
		if err != nil {
			return err
		}
		reqs := make([]*gate.Request, len(part))
		errs := make([]error, len(part))
		var wg sync.WaitGroup
		for w, n := 0, runtime.GOMAXPROCS(0); w < n; w++ {
			wg.Go(func() {
				for i := w; i < len(part); i += n {
					if raws[i] == nil {
						errs[i] = fmt.Errorf("pending request %s has no record", part[i])
						continue
					}
					var r gate.Request
					if err := json.Unmarshal(raws[i], &r); err != nil {
						errs[i] = fmt.Errorf("request %s: %w", part[i], err)
						continue
					}
					reqs[i] = &r
				}
			})
		}
		wg.Wait()
		for _, r := range reqs {
			if r != nil {
				in.request(r)
			}
		}
		for i, r := range reqs {
			if errs[i] != nil {
				return errs[i]
			}
			c := e.convs[r.Conversation]
			if c == nil {
				return fmt.Errorf("request %s names unknown conversation %s", part[i], r.Conversation)
			}
			c.requests[r.ID] = r
			switch r.State {
			case gate.StateExecuting:
				interrupted = append(interrupted, r)
			case gate.StatePending:
				pending = append(pending, r)
			case gate.StateApproved:
				approved = append(approved, r)
			}
		}
	}
	// Timers are armed only once every map is filled: an overdue request's
	// timer fires at once, and its expiry takes the conversation's lock,
	// which the loading above does not hold.
	for _, r := range pending {
		e.expiry.add(r.ExpiresAt, r.Conversation, r.ID)
	}
	for _, it := range lazy {
		e.expiry.add(it.at, it.conv, it.id)
	}
	// An approved request executes at executable_at; one whose cool-off
	// passed while the server was down executes now. Nothing was sent
	// for it yet: no executing mark was written (PROTOCOL 9).
	for _, r := range approved {
		e.expiry.add(r.ExecutableAt, r.Conversation, r.ID)
	}
	if e.cl != nil {
		// On a shared store the executor decides what became of an
		// executing request (takeover): this node may not lead, and the
		// request's call may be running on the node that does.
		interrupted = nil
	}
	for _, r := range interrupted {
		c := e.convs[r.Conversation]
		c.mu.Lock()
		err := e.closeRequest(c, r.ID, gate.StateFailed, gate.ReasonInterrupted, 0)
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("fail interrupted request %s: %w", r.ID, err)
		}
		e.log.Warn("request was executing when the server stopped; marked failed, not re-sent",
			AttrConv, r.Conversation, AttrRequest, r.ID)
	}
	return nil
}

// pendingMark is the value of an open request's key in the Pending bucket:
// "2|STATE|EXPIRES|CONVERSATION", what a restart needs to schedule it
// without decoding it. Marks of the older form are the conversation alone.
func pendingMark(r *gate.Request) []byte {
	return []byte("2|" + r.State + "|" + r.ExpiresAt.UTC().Format(time.RFC3339Nano) + "|" + r.Conversation)
}

func parsePendingMark(v []byte) (conv, state string, exp time.Time, ok bool) {
	f := strings.SplitN(string(v), "|", 4)
	if len(f) != 4 || f[0] != "2" {
		return "", "", time.Time{}, false
	}
	exp, err := time.Parse(time.RFC3339Nano, f[2])
	if err != nil {
		return "", "", time.Time{}, false
	}
	return f[3], f[1], exp, true
}

// req returns c's open request id, decoding it from the store when it was
// loaded lazily; nil when c has no such open request. Called with c.mu
// held.
func (e *Engine) req(c *conv, id string) (*gate.Request, error) {
	if r := c.requests[id]; r != nil {
		return r, nil
	}
	if _, ok := c.lazy[id]; !ok {
		return nil, nil
	}
	raw, err := e.st.Get(store.Requests, id)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("pending request %s has no record", id)
	}
	r, err := decodeRequest(raw)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", id, err)
	}
	if r.Conversation != c.st.ID {
		return nil, fmt.Errorf("request %s is marked pending in %s but names %s", id, c.st.ID, r.Conversation)
	}
	delete(c.lazy, id)
	if r.Terminal() {
		return nil, nil
	}
	c.requests[id] = r
	return r, nil
}

// reqAll decodes every request of c loaded lazily, for the readers that
// walk all of c's open requests. Called with c.mu held.
func (e *Engine) reqAll(c *conv) error {
	for id := range c.lazy {
		if _, err := e.req(c, id); err != nil {
			return err
		}
	}
	return nil
}

// catchUp sets where st's log stands (seq, chain, time) from its last
// record: a snapshot is written only when more than that changes.
func (e *Engine) catchUp(st *conversation.State) error {
	last, err := e.st.LastSeq(st.ID)
	if err != nil || last == st.Seq {
		return err
	}
	if last < st.Seq {
		return fmt.Errorf("conversation %s: its snapshot stands at seq %d but its log ends at %d", st.ID, st.Seq, last)
	}
	recs, err := e.st.Records(st.ID, last-1, 1)
	if err != nil {
		return err
	}
	if len(recs) != 1 {
		return fmt.Errorf("conversation %s: record %d cannot be read", st.ID, last)
	}
	r := recs[0]
	chain, err := conversation.ParseChain(r.Chain)
	if err != nil {
		return fmt.Errorf("conversation %s: record %d: %w", st.ID, last, err)
	}
	at, err := conversation.ParseTime(r.ReceivedAt)
	if err != nil {
		return fmt.Errorf("conversation %s: record %d: %w", st.ID, last, err)
	}
	st.Seq, st.Chain, st.LastAt = r.Seq, chain, at.UTC()
	return nil
}

// interner shares one copy of the strings that many open requests repeat
// (the conversation, the signers' key ids, the service) among those
// decoded at start (marks of the older form, requests found executing).
type interner map[string]string

func (in interner) s(p *string) {
	if v, ok := in[*p]; ok {
		*p = v
	} else {
		in[*p] = *p
	}
}

func (in interner) all(ss []string) {
	for i := range ss {
		in.s(&ss[i])
	}
}

func (in interner) request(r *gate.Request) {
	for _, p := range []*string{&r.Conversation, &r.Submitter, &r.Program, &r.KeyPrefix, &r.Pattern, &r.State,
		&r.Payload.Conversation, &r.Payload.Gateway, &r.Payload.Service, &r.Payload.Method, &r.Payload.Template, &r.Payload.Program} {
		in.s(p)
	}
	in.all(r.Signers)
	in.all(r.Approvals)
	in.all(r.Rejections)
}

func (e *Engine) lookup(id string) (*conv, error) {
	e.mu.RLock()
	c := e.convs[id]
	e.mu.RUnlock()
	if c == nil {
		c = e.adopt(id)
	}
	if c == nil {
		return nil, twokey.Errorf(twokey.EUnknownConversation, "no conversation %q on this server", twokey.Clip(id))
	}
	return c, nil
}

// change is a set of edits to one conversation built under its lock and
// applied only after it commits.
type change struct {
	c         *conv
	st        *conversation.State // the state after the change (a copy)
	gate      *gate.Config
	proposals map[string]*gate.Proposal
	records   []conversation.Record
	puts      []store.Put              // written in place with the records
	derived   []store.Put              // follows from the records (see commit)
	requests  map[string]*gate.Request // changed requests (copies)
	secrets   map[string]*vault.Secret // changed secrets; nil value = removed
	after     []func()                 // run after a successful commit, under the lock
	abort     []func()                 // run when the change is dropped instead
	events    []Event                  // for the Recorder: written in this commit
}

// drop undoes what building the change reserved outside it.
func (ch *change) drop() {
	for _, f := range ch.abort {
		f()
	}
	ch.abort = nil
}

func (e *Engine) begin(c *conv) *change {
	return &change{c: c, st: c.st.Clone(), requests: map[string]*gate.Request{}, secrets: map[string]*vault.Secret{}}
}

// append numbers a verified message as the next record.
// stamp is the received_at the next record appended at now gets.
func (ch *change) stamp(now time.Time) time.Time {
	// received_at never goes back along a log, whatever the clock does.
	now = now.UTC().Truncate(time.Millisecond)
	if now.Before(ch.st.LastAt) {
		now = ch.st.LastAt
	}
	return now
}

func (ch *change) append(m *conversation.Message, now time.Time) conversation.Record {
	now = ch.stamp(now)
	r := conversation.NewRecord(ch.st.Seq+1, conversation.FormatTime(now), m, ch.st.Chain)
	next, _ := conversation.ParseChain(r.Chain)
	ch.st.Seq, ch.st.Chain, ch.st.LastAt = r.Seq, next, now
	ch.records = append(ch.records, r)
	return r
}

// gatewayRecord signs payload as the gateway and appends it.
func (e *Engine) gatewayRecord(ch *change, kind string, payload any) (conversation.Record, error) {
	return e.gatewayRecordAt(ch, kind, payload, e.clock.Now())
}

// gatewayRecordAt is gatewayRecord received at now (a time the payload
// itself states, as gate.approved's executable_at does).
func (e *Engine) gatewayRecordAt(ch *change, kind string, payload any, now time.Time) (conversation.Record, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return conversation.Record{}, err
	}
	env := conversation.Sign(e.cfg.Gateway, kind, raw)
	m := &conversation.Message{Envelope: env, Kind: kind, Author: e.gwKey, Payload: raw}
	return ch.append(m, now), nil
}

// header returns the common fields of a gateway payload.
func (e *Engine) header(conv string) conversation.Header {
	return conversation.Header{Conversation: conv, CreatedAt: conversation.FormatTime(e.clock.Now()), Gateway: e.gwKey}
}

func (ch *change) putRequest(r *gate.Request) {
	ch.requests[r.ID] = r
}

// commit writes the change durably, then swaps it into memory and
// publishes its records. Called with ch.c.mu held.
func (e *Engine) commit(ch *change) error {
	c := ch.c
	cfg := c.gate
	if ch.gate != nil {
		cfg = *ch.gate
	}
	props := c.proposals
	if ch.proposals != nil {
		props = ch.proposals
	}
	// The log is the truth: what follows from the records is derived
	// state, kept with them and put in place at the store's next
	// checkpoint. The snapshot is derived only when more than where the
	// log stands changed (its seq, chain and time are read from the last
	// record at load).
	derived := ch.derived
	if snapshotChanged(c, ch) {
		snap, err := json.Marshal(snapshot{State: ch.st, Gate: cfg, Proposals: props})
		if err != nil {
			return err
		}
		derived = append(derived, store.Put{Bucket: store.Convs, Key: c.st.ID, Value: snap})
	}
	puts := append(ch.puts, e.recordPuts(ch)...)
	tc := e.tapCommit(ch, cfg, props)
	if tc != nil {
		puts = append(puts, e.cfg.Tap.Puts(tc)...)
	}
	for id, r := range ch.requests {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		derived = append(derived, store.Put{Bucket: store.Requests, Key: id, Value: b})
		if r.Terminal() {
			derived = append(derived, store.Put{Bucket: store.Pending, Key: id})
		} else if old := c.requests[id]; old == nil || old.State != r.State {
			// Only a request that was not open yet, or whose state moved
			// (pending to executing), needs its pending mark written.
			derived = append(derived, store.Put{Bucket: store.Pending, Key: id, Value: pendingMark(r)})
		}
	}
	for id, s := range ch.secrets {
		key := secretKey(c.st.ID, id)
		if s == nil {
			puts = append(puts, store.Put{Bucket: store.Secrets, Key: key})
			continue
		}
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		puts = append(puts, store.Put{Bucket: store.Secrets, Key: key, Value: b})
	}
	if err := e.st.Commit(&store.Write{Conv: c.st.ID, After: c.st.Seq, Records: ch.records, Derived: derived, Puts: puts}); err != nil {
		attrs := []any{AttrConv, c.st.ID, AttrError, err.Error()}
		if cause := errors.Unwrap(err); cause != nil {
			// The client's message is generic; the operator needs the
			// cause (a full disk, a failing device).
			attrs = append(attrs, AttrCause, cause.Error())
		}
		e.log.Error("commit failed; nothing applied", attrs...)
		ch.drop()
		return err
	}
	ch.abort = nil
	if f := e.committed.Load(); f != nil && *f != nil && len(ch.records) > 0 {
		(*f)(c.st.ID, ch.records[0].Seq, ch.records[len(ch.records)-1].Seq)
	}
	c.st = ch.st
	c.gate = cfg
	c.proposals = props
	for id, r := range ch.requests {
		if r.Terminal() {
			delete(c.requests, id)
		} else {
			c.requests[id] = r
		}
	}
	for id, s := range ch.secrets {
		if s == nil {
			delete(c.secrets, id)
		} else {
			c.secrets[id] = s
		}
	}
	e.hub.Publish(c.st.ID, ch.records...)
	if tc != nil {
		e.cfg.Tap.Committed(tc)
	}
	for _, f := range ch.after {
		f()
	}
	return nil
}

func secretKey(conv, id string) string { return conv + "/" + id }

// snapshotChanged reports whether ch changes c's snapshot beyond where its
// log stands: a new conversation, its name, admin or members, its gate or
// its proposals.
func snapshotChanged(c *conv, ch *change) bool {
	old, now := c.st, ch.st
	return ch.gate != nil || ch.proposals != nil || old.Seq == 0 || old.Name != now.Name || old.Admin != now.Admin ||
		old.CreatedAt != now.CreatedAt || !slices.Equal(old.Members, now.Members)
}
