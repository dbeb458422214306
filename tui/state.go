package tui

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// item is one record of a log as the TUI holds it: the record, and either
// the verified message or why it failed.
type item struct {
	rec conversation.Record
	msg *conversation.Message // nil when the record failed verification
	err error
	// disp is the verified payload with its strings made safe to print;
	// it is for drawing only (a digest is always of msg.Payload).
	disp []byte
	// reqID is the request (or proposal) a gate.* (member.*) record is
	// about, as its signed payload names it.
	reqID string
	// note is what the record meant when it arrived ("2/3" for an approval).
	note string
	// refused is why the fold does not believe a verified record (a
	// gate.Violation's reason): it changed nothing, is drawn with the
	// reason, and nothing is signed for it.
	refused string
	// diff is what a member.propose proposes, or a member.changed
	// changes, against the gate the proposal was made in (the fold's
	// Step.Diff; for a record the fold refused, what it asks for or
	// claims against the gate at that point).
	diff *gate.ProposalDiff
	// veto says a gate.reject the fold believed came during its request's
	// cool-off (PROTOCOL 9): it counts toward the veto, not toward early
	// rejection.
	veto bool
}

// reqView is a request as the fold holds it now, with the one thing only
// the TUI knows: the user's own vote while it is on its way ("approval"
// or "rejection"), set when a or r signs it, cleared when the vote's
// record arrives or the server refuses it, so a second key press does not
// send a second vote. It is looked up fresh (convState.request): never
// keep one across records.
type reqView struct {
	*gate.Request
	sending string
}

func (r *reqView) voted(key string) string {
	switch {
	case slices.Contains(r.Vetoes, key):
		return "vetoed"
	case slices.Contains(r.Approvals, key):
		return "approved"
	case slices.Contains(r.Rejections, key):
		return "rejected"
	}
	return ""
}

// status, duration and reason are how the request ended, from its result
// (the reason as drawn: made safe).
func (r *reqView) status() int {
	if r.Result == nil {
		return 0
	}
	return r.Result.Status
}

func (r *reqView) duration() int64 {
	if r.Result == nil {
		return 0
	}
	return r.Result.DurationMS
}

func (r *reqView) reason() string {
	if r.Result == nil {
		return ""
	}
	return safeLine(r.Result.Reason)
}

// propView is a membership proposal as the last record about it left it.
// The fold keeps only the open ones; the TUI keeps every one it saw, to
// draw the cards of those applied (done) or voided since.
type propView struct {
	*gate.Proposal
	done bool // a member.changed applied it
}

// convState is one conversation: its verified log and what the fold of it
// says. The meaning of each record is the fold's; what is kept here is
// only what the TUI draws or does with it.
type convState struct {
	id    string
	name  string
	names map[string]string // display names, learned from members and proposals
	items []*item
	fold  *gate.Fold
	props map[string]*propView // every proposal seen, by id
	// The user's own votes on their way, by request id and by proposal id.
	sendingReq  map[string]string
	sendingProp map[string]bool
	// votes holds, by request id, the votes the fold believed, in order:
	// the request card draws the reasons they give.
	votes map[string][]*item

	ver    conversation.ChainVerifier
	broken string // the first verification failure, shown in the pane title

	loaded   uint64 // the seq at start: records up to it are not unread
	unread   int
	cursor   int  // selected item
	follow   bool // the cursor follows new records
	scroll   int  // line offset inside a card taller than the pane
	expanded map[uint64]bool
	conn     string // "connected", "reconnecting: ...", "stopped: ...", or why the stream ended
	// The stream is restarted after it ends with an error that retrying may
	// cure: retryAt is when the next attempt starts (zero when none is
	// planned), restarts how many have been made since a record last
	// arrived (the backoff grows with it).
	retryAt  time.Time
	restarts int
}

// newConvState starts a conversation whose gateway signs with gateway; M
// is matched with cat, the server's catalog (nil for none: on the service
// and method alone).
func newConvState(s api.Summary, gateway string, cat *api.Catalog) *convState {
	c := &convState{id: s.ID, name: safeLine(s.Name), names: map[string]string{}, fold: gate.NewFold(gateway),
		props: map[string]*propView{}, sendingReq: map[string]string{}, sendingProp: map[string]bool{}, votes: map[string][]*item{},
		loaded: s.Seq, follow: true, expanded: map[uint64]bool{}, ver: conversation.ChainVerifier{Gateway: gateway}}
	c.fold.Resolve = cat.Target
	c.learn(s.Members)
	return c
}

// request returns request id as the fold holds it now, or nil.
func (c *convState) request(id string) *reqView {
	r := c.fold.Requests[id]
	if r == nil {
		return nil
	}
	return &reqView{Request: r, sending: c.sendingReq[id]}
}

// requestOf returns the request whose gate.request record it is, or nil
// (for another record, or one the fold refused).
func (c *convState) requestOf(it *item) *reqView {
	if it == nil || it.msg == nil || it.refused != "" || it.rec.Kind != conversation.KindGateRequest {
		return nil
	}
	if r := c.request(it.reqID); r != nil && r.SubmittedSeq == it.rec.Seq {
		return r
	}
	return nil
}

// proposalOf returns the proposal whose member.propose record it is, or nil.
func (c *convState) proposalOf(it *item) *propView {
	if it == nil || it.msg == nil || it.refused != "" || it.rec.Kind != conversation.KindMemberPropose {
		return nil
	}
	if pr := c.props[it.reqID]; pr != nil && pr.Seq == it.rec.Seq {
		return pr
	}
	return nil
}

// open reports whether a proposal still takes approvals: the fold holds
// the open ones (a member.changed applies one and voids the rest).
func (c *convState) open(pr *propView) bool { return c.fold.Proposals[pr.ID] != nil }

// shown is a request's payload as it is drawn: that of its gate.request
// record, with its strings made safe.
func (c *convState) shown(r *gate.Request) gate.RequestPayload {
	var p gate.RequestPayload
	if it := c.itemAt(r.SubmittedSeq); it != nil {
		_ = json.Unmarshal(it.disp, &p)
	}
	return p
}

// waiting counts the pending requests that wait for key's vote.
func (c *convState) waiting(key string, now time.Time) int {
	n := 0
	for id := range c.fold.Requests {
		r := c.request(id)
		if r.State == gate.StatePending && now.Before(r.ExpiresAt) && r.IsSigner(key) && r.voted(key) == "" &&
			(r.Submitter != key || r.Needs().SubmitterCounts) {
			n++
		}
	}
	return n
}

// add verifies rec and appends it. It reports false for a duplicate (a
// record at or below the last seq already held), which it drops.
func (c *convState) add(rec conversation.Record) bool {
	if len(c.items) > 0 && rec.Seq <= c.items[len(c.items)-1].rec.Seq {
		return false
	}
	it := &item{rec: rec}
	if err := c.ver.Check(rec); err != nil {
		it.err = err
		if c.broken == "" {
			c.broken = err.Error()
		}
		// Judge later records on their own: resume the chain from the value
		// this record claims. The pane title keeps saying the log broke here.
		if ch, perr := conversation.ParseChain(rec.Chain); perr == nil && rec.Seq > c.ver.Seq {
			c.ver.Seq, c.ver.Chain = rec.Seq, ch
		}
	} else {
		m, err := conversation.Verify(rec.Envelope)
		if err != nil { // cannot happen after Check; never trust it if it does
			it.err = err
		} else {
			it.msg, it.disp = m, cleanJSON(m.Payload)
			c.apply(it)
		}
	}
	c.items = append(c.items, it)
	return true
}

// apply folds one verified record in. What it means is the fold's; this
// keeps only what the TUI draws: what the record is about, its note, the
// names it teaches and the proposals the fold no longer holds.
func (c *convState) apply(it *item) {
	m := it.msg
	var about struct {
		RequestID  string `json:"request_id"`
		ProposalID string `json:"proposal_id"`
	}
	_ = json.Unmarshal(m.Payload, &about)
	switch m.Kind {
	case conversation.KindMemberPropose, conversation.KindMemberApprove, conversation.KindMemberChanged:
		it.reqID = about.ProposalID
	default:
		it.reqID = about.RequestID // a gate.* kind about a request; "" for any other
	}
	var before gate.Config
	if m.Kind == conversation.KindMemberPropose || m.Kind == conversation.KindMemberChanged {
		before = c.fold.Gate.Clone()
		defer func() {
			if it.diff == nil {
				it.diff = claimedDiff(before, m.Kind, it.disp)
			}
		}()
	}
	at, err := conversation.ParseTime(it.rec.ReceivedAt)
	if err != nil {
		it.refused = "received_at: " + twokey.ErrorMessage(err)
		return
	}
	inCoolOff := false
	if r := c.fold.Requests[it.reqID]; r != nil && m.Kind == conversation.KindGateReject {
		inCoolOff = r.State == gate.StateApproved
	}
	step, err := c.fold.Apply(m, it.rec.Seq, at)
	it.diff = step.Diff
	if err != nil {
		var v *gate.Violation
		if errors.As(err, &v) {
			it.refused = v.Reason
		} else {
			it.refused = twokey.ErrorMessage(err)
		}
		return
	}
	c.learn(c.fold.Members)
	if m.Kind == conversation.KindConversationCreate && c.fold.Name != "" {
		c.name = safeLine(c.fold.Name)
	}
	if r := step.Request; r != nil {
		switch m.Kind {
		case conversation.KindGateRequest, conversation.KindGateApprove, conversation.KindGateReject:
			it.note = fmt.Sprintf("%d/%d", len(r.Approvals), r.Required)
		}
		switch m.Kind {
		case conversation.KindGateApprove, conversation.KindGateReject:
			c.votes[r.ID] = append(c.votes[r.ID], it)
			if inCoolOff {
				it.veto = true
				it.note = fmt.Sprintf("%d of %d vetoes", len(r.Vetoes), r.Needs().Veto)
			}
		}
	}
	if pr := step.Proposal; pr != nil {
		switch m.Kind {
		case conversation.KindMemberPropose:
			c.props[pr.ID] = &propView{Proposal: pr}
			for _, a := range pr.Payload.Add {
				if a.Name != "" && c.names[a.Key] == "" {
					c.names[a.Key] = safeLine(a.Name)
				}
			}
		case conversation.KindMemberApprove:
			c.props[pr.ID] = &propView{Proposal: pr}
			it.note = fmt.Sprintf("%d/%d", len(pr.Approvals), len(pr.Needed))
		case conversation.KindMemberChanged:
			c.props[pr.ID] = &propView{Proposal: pr, done: true}
		}
	}
}

// claimedDiff is what a member.propose or member.changed the fold refused
// asks for or claims, against before, the gate at that point; disp is its
// payload as drawn (its strings made safe), since what it names is not
// believed to be a key or a name.
func claimedDiff(before gate.Config, kind string, disp []byte) *gate.ProposalDiff {
	var d gate.ProposalDiff
	if kind == conversation.KindMemberPropose {
		var p gate.ProposePayload
		_ = json.Unmarshal(disp, &p)
		d = gate.DiffProposal(before, p)
	} else {
		var p gate.ChangedPayload
		_ = json.Unmarshal(disp, &p)
		d = gate.DiffConfig(before, gate.Config{Signers: p.Signers, RequiredApprovals: p.RequiredApprovals, Rules: p.Rules, Groups: p.Groups})
	}
	return &d
}

func (c *convState) learn(ms []conversation.Member) {
	for _, m := range ms {
		if m.Name != "" {
			c.names[m.Key] = safeLine(m.Name)
		}
	}
}

func findService(cat *api.Catalog, name string) *catalog.Service {
	if cat == nil {
		return nil
	}
	for _, s := range cat.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (c *convState) selected() *item {
	if c.cursor < 0 || c.cursor >= len(c.items) {
		return nil
	}
	return c.items[c.cursor]
}

// itemAt returns the item holding the record with seq, or nil.
func (c *convState) itemAt(seq uint64) *item {
	i, ok := slices.BinarySearchFunc(c.items, seq, func(it *item, seq uint64) int {
		return cmp.Compare(it.rec.Seq, seq)
	})
	if !ok {
		return nil
	}
	return c.items[i]
}

// lastSeq is the seq of the last record held (0 for none).
func (c *convState) lastSeq() uint64 {
	if len(c.items) == 0 {
		return 0
	}
	return c.items[len(c.items)-1].rec.Seq
}
