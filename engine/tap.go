package engine

import (
	"sort"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

// Tap reads every commit that appends records and may add puts to it: the
// webhook outbox (package notify) is written in the very transaction of
// the records that cause its events, so that an event is never lost by a
// crash and never sent for a record that did not commit.
//
// Puts runs under the conversation's lock right before the commit: it
// must be quick and must not use the store. Committed runs once the
// commit is durable, also under the lock (to wake whatever sends); it is
// not called for a commit that failed.
type Tap interface {
	Puts(c *Commit) []store.Put
	Committed(c *Commit)
}

// Commit is one commit as a Tap reads it. It and what it points to belong
// to the engine: read it during the call, copy what you keep, change
// nothing.
type Commit struct {
	Time time.Time // the engine's clock when the commit was built
	// Before and After are the conversation as the commit found it and
	// as it leaves it (members, name, seq).
	Before, After *conversation.State
	// GateBefore and GateAfter are its gate before and after.
	GateBefore, GateAfter gate.Config
	// Records are the records the commit appends, in seq order.
	Records []conversation.Record
	// Requests are the requests the commit changes, as it leaves them, by
	// submission seq.
	Requests []*gate.Request
	// Proposals are the open membership proposals after the commit.
	Proposals map[string]*gate.Proposal
}

// tapCommit builds what the tap reads of ch, or nil without a tap or
// records.
func (e *Engine) tapCommit(ch *change, cfg gate.Config, props map[string]*gate.Proposal) *Commit {
	if e.cfg.Tap == nil || len(ch.records) == 0 {
		return nil
	}
	reqs := make([]*gate.Request, 0, len(ch.requests))
	for _, r := range ch.requests {
		reqs = append(reqs, r)
	}
	sort.Slice(reqs, func(i, j int) bool {
		if reqs[i].SubmittedSeq != reqs[j].SubmittedSeq {
			return reqs[i].SubmittedSeq < reqs[j].SubmittedSeq
		}
		return reqs[i].ID < reqs[j].ID
	})
	return &Commit{Time: e.clock.Now(), Before: ch.c.st, After: ch.st, GateBefore: ch.c.gate, GateAfter: cfg,
		Records: ch.records, Requests: reqs, Proposals: props}
}
