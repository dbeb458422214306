package engine

// Several gateways on one shared store (store.Cluster, etcd).
//
// Every node serves reads, accepts posts and appends: a commit compares
// the conversation's last seq, so a node whose memory is behind the log is
// refused (store.ErrConflict), reads what it missed (refresh) and decides
// again (attempt). A follower applies every other node's commits to memory
// and publishes their records to this node's hub, so that a subscriber on
// any node sees every record in seq order.
//
// One node at a time, the executor, holds the election's lease: only it
// makes upstream calls and fires expiry and cool-off timers. Before a
// call it commits a claim under its lease guard (store.Write.Guard); a
// node that takes the lead fails every executing request that has a claim
// and no outcome (gate.failed, interrupted: it may have been sent, it is
// never sent again) and claims and sends those without one, which no node
// has sent. docs/ha.md has the timeline of a failover.

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
	"github.com/twokey/twokey/vault"
)

// clusterState is what an engine on a shared store keeps beside its
// conversations.
type clusterState struct {
	st       store.Cluster
	inflight sync.Map // request id → true while this node's call runs

	lagMu    sync.Mutex
	lag      time.Duration // how far behind the log's last commit the follower was
	lagAt    time.Time
	reported time.Time
}

// ClusterInfo is what this node knows of the cluster, for status and
// metrics.
type ClusterInfo struct {
	Node      string
	Executing bool          // this node is the executor
	Lag       time.Duration // the follower's last lag
	Health    store.ClusterHealth
}

// Cluster reports this node's name and role without asking the store, or
// nil on a store of one node.
func (e *Engine) Cluster() *ClusterInfo {
	if e.cl == nil {
		return nil
	}
	e.cl.lagMu.Lock()
	lag := e.cl.lag
	e.cl.lagMu.Unlock()
	return &ClusterInfo{Node: e.cl.st.Node(), Executing: e.leading.Load(), Lag: lag}
}

// ClusterStatus is Cluster with the store's health: every endpoint
// asked, every node's report read.
func (e *Engine) ClusterStatus() *ClusterInfo {
	ci := e.Cluster()
	if ci != nil {
		ci.Health = e.cl.st.Health(e.ctx)
	}
	return ci
}

// Ready checks that this node reaches its store (on a shared one: that
// etcd answers a read); nil on a store of one node.
func (e *Engine) Ready() error {
	if e.cl == nil {
		return nil
	}
	_, err := e.st.LastSeq("healthz")
	return err
}

// Executing reports whether this node makes the upstream calls: always
// on a store of one node, on a shared one only while it holds the lead.
func (e *Engine) Executing() bool { return e.cl == nil || e.leading.Load() }

// startCluster starts the follower and the campaign for the lead.
func (e *Engine) startCluster() {
	e.bg.Add(2)
	go func() {
		defer e.bg.Done()
		e.cl.st.Follow(e.ctx, e.follow)
	}()
	go func() {
		defer e.bg.Done()
		e.campaign()
	}()
}

// campaign holds the lead whenever etcd's election gives it, until the
// engine closes.
func (e *Engine) campaign() {
	for e.ctx.Err() == nil {
		lost, err := e.cl.st.Lead(e.ctx)
		if err != nil {
			if e.ctx.Err() == nil {
				e.log.Warn("cannot campaign for the executor's lease; trying again", AttrError, err.Error())
				select {
				case <-e.ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
			continue
		}
		e.leading.Store(true)
		e.log.Info("this node is the executor now", "node", e.cl.st.Node())
		e.takeover()
		select {
		case <-lost:
			e.log.Warn("this node lost the executor's lease; another node executes", "node", e.cl.st.Node())
		case <-e.ctx.Done():
		}
		e.leading.Store(false)
	}
}

// takeover makes this node's memory the log's, then arms every open
// request's timer, fails the executing requests a former executor claimed
// and sends those no node claimed.
func (e *Engine) takeover() {
	e.follow("", 0)
	type open struct{ conv, id, state string }
	var all []open
	err := e.st.ForEach(store.Pending, func(id string, v []byte) error {
		conv, state, _, ok := parsePendingMark(v)
		if !ok {
			conv, state = string(v), ""
		}
		all = append(all, open{conv, id, state})
		return nil
	})
	if err != nil {
		e.log.Error("cannot read the open requests at takeover; the follower's resync retries", AttrError, err.Error())
		return
	}
	for _, o := range all {
		c, err := e.lookup(o.conv)
		if err != nil {
			continue
		}
		c.mu.Lock()
		e.arm(c, o.id, true)
		c.mu.Unlock()
	}
}

// arm schedules what this node, the executor, owes an open request of c:
// its expiry, its execution after the cool-off, or its call. Called with
// c.mu held. At a takeover, a claimed executing request that is not this
// node's own call in flight was claimed by a former executor and fails.
func (e *Engine) arm(c *conv, id string, takeover bool) {
	if !e.Executing() {
		return
	}
	r, err := e.req(c, id)
	if err != nil || r == nil {
		return
	}
	switch r.State {
	case gate.StatePending:
		e.expiry.add(r.ExpiresAt, c.st.ID, id)
	case gate.StateApproved:
		e.expiry.add(r.ExecutableAt, c.st.ID, id)
	case gate.StateExecuting:
		if _, mine := e.cl.inflight.Load(id); mine {
			return
		}
		claim, err := e.st.Get(store.Claims, id)
		if err != nil {
			e.log.Error("cannot read a request's claim; the next resync retries", AttrConv, c.st.ID, AttrRequest, id, AttrError, err.Error())
			return
		}
		if claim == nil {
			e.claim(c, r)
			return
		}
		if takeover || string(claim) != e.cl.st.Node() {
			if err := e.closeRequest(c, id, gate.StateFailed, gate.ReasonInterrupted, 0); err != nil {
				e.log.Error("cannot fail an interrupted request", AttrConv, c.st.ID, AttrRequest, id, AttrError, err.Error())
				return
			}
			e.log.Warn("request was executing on a former executor (claimed by "+twokey.Clip(string(claim))+"); marked failed, not re-sent",
				AttrConv, c.st.ID, AttrRequest, id)
		}
	}
}

// claim commits this node's claim on executing request r under its lease
// guard, then makes the call. Called with c.mu held.
func (e *Engine) claim(c *conv, r *gate.Request) {
	if _, busy := e.cl.inflight.LoadOrStore(r.ID, true); busy {
		return
	}
	err := e.st.Commit(&store.Write{Guard: true,
		Puts:     []store.Put{{Bucket: store.Claims, Key: r.ID, Value: []byte(e.cl.st.Node())}},
		IfAbsent: []store.Put{{Bucket: store.Claims, Key: r.ID}}})
	if err != nil {
		e.cl.inflight.Delete(r.ID)
		e.log.Warn("request not claimed; this node does not send it", AttrConv, c.st.ID, AttrRequest, r.ID, AttrError, err.Error())
		return
	}
	e.execWG.Add(1)
	go e.execute(c.st.ID, r.Clone())
}

// follow applies the growth of conv's log to memory; conv "" reads every
// conversation again.
func (e *Engine) follow(conv string, last uint64) {
	if conv == "" {
		var ids []string
		if err := e.st.ForEach(store.Convs, func(k string, _ []byte) error {
			ids = append(ids, k)
			return nil
		}); err != nil {
			e.log.Warn("cannot list the conversations to resync", AttrError, err.Error())
		}
		for _, id := range ids {
			e.follow(id, 0)
		}
		return
	}
	c, err := e.lookup(conv)
	if err != nil {
		return // not created yet as far as reads show, or unreadable: the next growth retries
	}
	c.mu.Lock()
	if last == 0 || last > c.st.Seq {
		if _, err := e.refresh(c); err != nil {
			e.log.Warn("cannot read another node's records; the next growth retries", AttrConv, conv, AttrError, err.Error())
		}
	}
	c.mu.Unlock()
}

// noteLag keeps how long after its commit the follower saw a record, and
// reports it to the cluster at most once a second.
func (e *Engine) noteLag(r conversation.Record) {
	at, err := conversation.ParseTime(r.ReceivedAt)
	if err != nil {
		return
	}
	now := time.Now()
	lag := max(0, now.Sub(at))
	e.cl.lagMu.Lock()
	e.cl.lag, e.cl.lagAt = lag, now
	due := now.Sub(e.cl.reported) >= time.Second
	if due {
		e.cl.reported = now
	}
	e.cl.lagMu.Unlock()
	if due {
		go e.cl.st.Report(lag)
	}
}

// sync refreshes c when the log holds records memory does not; it reports
// whether it did. Called with c.mu held.
func (e *Engine) sync(c *conv) (bool, error) {
	if e.cl == nil {
		return false, nil
	}
	last, err := e.st.LastSeq(c.st.ID)
	if err != nil || last <= c.st.Seq {
		return false, err
	}
	return e.refresh(c)
}

// attempt runs op (a decision and its commit) under c.mu; on a shared
// store, when op fails and c's log has moved on since memory read it
// (another node appended), c is refreshed and op runs again.
func (e *Engine) attempt(c *conv, op func() error) error {
	for i := 0; ; i++ {
		err := op()
		if err == nil || e.cl == nil || i == 8 {
			return err
		}
		moved, rerr := e.sync(c)
		if rerr != nil || !moved {
			return err
		}
	}
}

// refresh reads the records of c's log that memory does not hold, and
// the state that follows from them, publishes the records and arms what
// the executor owes the requests they touch. Called with c.mu held.
func (e *Engine) refresh(c *conv) (bool, error) { return e.refreshArm(c, true) }

// refreshArm is refresh; arm false leaves the timers and calls to the
// caller (a conversation not yet in e.convs).
func (e *Engine) refreshArm(c *conv, arm bool) (bool, error) {
	id := c.st.ID
	var recs []conversation.Record
	var snap snapshot
	// The snapshot is taken between two reads of where the log ends that
	// agree, so that it is the state of exactly those records.
	for try := 0; ; try++ {
		var err error
		if recs, err = e.st.Records(id, c.st.Seq, 1<<30); err != nil {
			return false, err
		}
		if len(recs) == 0 {
			return false, nil
		}
		raw, err := e.st.Get(store.Convs, id)
		if err != nil {
			return false, err
		}
		if raw == nil {
			return false, fmt.Errorf("conversation %s has records but no snapshot", id)
		}
		snap = snapshot{}
		if err := json.Unmarshal(raw, &snap); err != nil {
			return false, fmt.Errorf("conversation %s: corrupt snapshot: %w", id, err)
		}
		last, err := e.st.LastSeq(id)
		if err != nil {
			return false, err
		}
		if last == recs[len(recs)-1].Seq {
			break
		}
		if try == 20 {
			return false, fmt.Errorf("conversation %s: its log kept moving while it was read", id)
		}
	}
	top := recs[len(recs)-1]
	chain, err := conversation.ParseChain(top.Chain)
	if err != nil {
		return false, err
	}
	at, err := conversation.ParseTime(top.ReceivedAt)
	if err != nil {
		return false, err
	}
	st := snap.State
	st.Seq, st.Chain, st.LastAt = top.Seq, chain, at.UTC()
	// The requests the records touch: those submitted in them (the
	// conversation's request index) and those they name.
	touched := map[string]bool{}
	if err := e.st.Scan(store.ConvReqs, reqIndexKey(id, c.st.Seq+1), reqIndexKey(id, 1<<62), false, func(_, v []byte) bool {
		touched[string(v)] = true
		return true
	}); err != nil {
		return false, err
	}
	for _, r := range recs {
		var p struct {
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(r.Body, &p) == nil && p.RequestID != "" {
			touched[p.RequestID] = true
		}
	}
	ids := make([]string, 0, len(touched))
	for rid := range touched {
		ids = append(ids, rid)
	}
	raws, err := e.st.GetAll(store.Requests, ids)
	if err != nil {
		return false, err
	}
	reqs := map[string]*gate.Request{}
	for i, raw := range raws {
		if raw == nil {
			continue
		}
		r, err := decodeRequest(raw)
		if err != nil {
			return false, fmt.Errorf("request %s: %w", ids[i], err)
		}
		if r.Conversation == id {
			reqs[ids[i]] = r
		}
	}
	secrets := map[string]*vault.Secret{}
	if err := e.st.Scan(store.Secrets, id+"/", id+"0", false, func(_, v []byte) bool {
		var s vault.Secret
		if json.Unmarshal(v, &s) == nil {
			secrets[s.ID] = &s
		}
		return true
	}); err != nil {
		return false, err
	}
	// Everything was read: swap it in.
	c.st, c.gate, c.proposals, c.secrets = st, snap.Gate, snap.Proposals, secrets
	if c.proposals == nil {
		c.proposals = map[string]*gate.Proposal{}
	}
	for rid, r := range reqs {
		delete(c.lazy, rid)
		if r.Terminal() {
			delete(c.requests, rid)
		} else {
			c.requests[rid] = r
		}
	}
	e.hub.Publish(id, recs...)
	e.noteLag(top)
	if arm {
		for rid := range reqs {
			e.arm(c, rid, false)
		}
	}
	return true, nil
}

// loadConv reads conversation id from the store (created on another
// node): its snapshot, where its log stands, its secrets and its open
// requests.
func (e *Engine) loadConv(id string) (*conv, error) {
	raw, err := e.st.Get(store.Convs, id)
	if err != nil || raw == nil {
		return nil, err
	}
	var s snapshot
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("conversation %s: corrupt snapshot: %w", id, err)
	}
	c := &conv{st: &conversation.State{ID: id}, proposals: map[string]*gate.Proposal{},
		requests: map[string]*gate.Request{}, lazy: map[string]time.Time{}, secrets: map[string]*vault.Secret{}}
	// Read from the first record, as a refresh: the snapshot, the secrets
	// and the requests of all of the log.
	if _, err := e.refreshArm(c, false); err != nil {
		return nil, err
	}
	if c.st.Seq == 0 {
		return nil, nil
	}
	// The refresh read the requests the records name; the index has them
	// all (a request submitted and closed alike).
	return c, nil
}

// adopt finds a conversation another node created: nil when the store
// has none.
func (e *Engine) adopt(id string) *conv {
	if e.cl == nil || ValidID("conversation", id) != nil {
		return nil
	}
	c, err := e.loadConv(id)
	if err != nil {
		e.log.Warn("cannot read a conversation from the shared store", AttrConv, id, AttrError, err.Error())
		return nil
	}
	if c == nil {
		return nil
	}
	e.mu.Lock()
	if old := e.convs[id]; old != nil {
		e.mu.Unlock()
		return old
	}
	e.convs[id] = c
	c.mu.Lock()
	e.mu.Unlock()
	defer c.mu.Unlock()
	for rid := range c.requests {
		e.arm(c, rid, false)
	}
	return c
}

// conflictErr is the error of a conversation.create whose id another node
// took first.
func conflictErr(err error, id string) error {
	if errors.Is(err, store.ErrConflict) {
		return twokey.Errorf(twokey.EBadPayload, "conversation %s already exists; make a new id", id)
	}
	return err
}
