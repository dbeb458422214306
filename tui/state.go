package tui

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

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
	// reqID is the request (or proposal) a gate.* (member.*) record is about.
	reqID string
	// note is what the record meant when it arrived ("2/3" for an approval).
	note string
}

// reqView is a request as the verified log tells it.
type reqView struct {
	id        string
	seq       uint64 // the gate.request record
	p         gate.RequestPayload
	digest    string // of the verified gate.request payload bytes
	submitter string
	signers   []string
	m         int
	rule      *gate.Rule
	approvals []string
	rejects   []string
	state     string
	reason    string
	status    int
	duration  int64
	expires   time.Time
	// sending is the user's own vote while it is on its way ("approval" or
	// "rejection"): set when a or r signs it, cleared when the vote's record
	// arrives or the server refuses it, so a second key press does not
	// send a second vote.
	sending string
}

func (r *reqView) voted(key string) string {
	switch {
	case slices.Contains(r.approvals, key):
		return "approved"
	case slices.Contains(r.rejects, key):
		return "rejected"
	}
	return ""
}

// propView is a membership proposal as the verified log tells it.
type propView struct {
	id        string
	seq       uint64
	p         gate.ProposePayload
	digest    string
	proposer  string
	needed    []string
	approvals []string
	done      bool
	sending   bool // the user's approval is on its way (as reqView.sending)
}

// convState is one conversation: its verified log and what follows from it.
type convState struct {
	id      string
	name    string
	admin   string
	members []conversation.Member
	names   map[string]string
	gate    gate.Config
	items   []*item
	reqs    map[string]*reqView
	props   map[string]*propView

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

func newConvState(s api.Summary, gateway string) *convState {
	c := &convState{id: s.ID, name: safeLine(s.Name), names: map[string]string{}, reqs: map[string]*reqView{},
		props: map[string]*propView{}, loaded: s.Seq, follow: true, expanded: map[uint64]bool{},
		ver: conversation.ChainVerifier{Gateway: gateway}}
	c.learn(s.Members)
	return c
}

func (c *convState) isSigner(key string) bool { return c.gate.IsSigner(key) }

// waiting counts the pending requests that wait for key's vote.
func (c *convState) waiting(key string, now time.Time) int {
	n := 0
	for _, r := range c.reqs {
		if r.state == gate.StatePending && now.Before(r.expires) && slices.Contains(r.signers, key) && r.voted(key) == "" {
			n++
		}
	}
	return n
}

// add verifies rec and appends it. It reports false for a duplicate (a
// record at or below the last seq already held), which it drops.
func (c *convState) add(rec conversation.Record, cat *api.Catalog) bool {
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
			c.apply(it, cat)
		}
	}
	c.items = append(c.items, it)
	return true
}

// apply updates the conversation from one verified record.
func (c *convState) apply(it *item, cat *api.Catalog) {
	m, payload := it.msg, it.disp
	switch m.Kind {
	case conversation.KindConversationCreate:
		var p conversation.CreatePayload
		if json.Unmarshal(payload, &p) != nil {
			return
		}
		if p.Name != "" {
			c.name = safeLine(p.Name)
		}
		c.admin = m.Author
		c.members = slices.Clone(p.Members)
		if !slices.ContainsFunc(c.members, func(x conversation.Member) bool { return x.Key == m.Author }) {
			c.members = append([]conversation.Member{{Key: m.Author}}, c.members...)
		}
		c.learn(c.members)
	case conversation.KindMemberAdd:
		var p conversation.MemberPayload
		if json.Unmarshal(payload, &p) == nil {
			c.members = append(c.members, conversation.Member{Key: p.Key, Name: p.Name})
			c.learn([]conversation.Member{{Key: p.Key, Name: p.Name}})
		}
	case conversation.KindMemberRemove:
		var p conversation.MemberPayload
		if json.Unmarshal(payload, &p) == nil {
			c.members = slices.DeleteFunc(c.members, func(x conversation.Member) bool { return x.Key == p.Key })
		}
	case conversation.KindGateEnabled:
		var p gate.EnabledPayload
		if json.Unmarshal(payload, &p) == nil {
			c.gate = gate.Config{Enabled: true, Signers: p.Signers, RequiredApprovals: p.RequiredApprovals, Rules: p.Rules}
		}
	case conversation.KindMemberChanged:
		var p gate.ChangedPayload
		if json.Unmarshal(payload, &p) == nil {
			c.gate = gate.Config{Enabled: true, Signers: p.Signers, RequiredApprovals: p.RequiredApprovals, Rules: p.Rules}
			c.members = slices.Clone(p.Members)
			c.learn(p.Members)
			it.reqID = p.ProposalID
			if pr := c.props[p.ProposalID]; pr != nil {
				pr.done = true
			}
		}
	case conversation.KindGateRequest:
		var p gate.RequestPayload
		if json.Unmarshal(payload, &p) != nil || p.RequestID == "" {
			return
		}
		if c.reqs[p.RequestID] != nil {
			// The server refuses a second request with an id already used
			// (duplicate_request); one in the log anyway is not believed, and
			// its card cannot pass for the first one's.
			return
		}
		it.reqID = p.RequestID
		r := &reqView{id: p.RequestID, seq: it.rec.Seq, p: p, digest: m.PayloadDigest(), submitter: m.Author,
			signers: slices.Clone(c.gate.Signers), state: gate.StatePending}
		r.expires, _ = conversation.ParseTime(p.ExpiresAt)
		r.m, r.rule = threshold(c.gate, cat, p)
		if p.Program == "" {
			r.approvals = []string{m.Author}
		}
		if len(r.approvals) >= r.m && r.m > 0 {
			r.state = gate.StateExecuting
		}
		c.reqs[p.RequestID] = r
		it.note = approvalsNote(r)
	case conversation.KindGateApprove, conversation.KindGateReject:
		var p gate.VotePayload
		if json.Unmarshal(payload, &p) != nil {
			return
		}
		it.reqID = p.RequestID
		r := c.reqs[p.RequestID]
		if r == nil || r.state != gate.StatePending || p.RequestDigest != r.digest || !slices.Contains(r.signers, m.Author) || r.voted(m.Author) != "" {
			return
		}
		if m.Kind == conversation.KindGateApprove {
			r.approvals = append(r.approvals, m.Author)
			if len(r.approvals) >= r.m {
				r.state = gate.StateExecuting
			}
		} else {
			r.rejects = append(r.rejects, m.Author)
		}
		it.note = approvalsNote(r)
	case conversation.KindGateCancel:
		var p gate.CancelPayload
		if json.Unmarshal(payload, &p) == nil {
			it.reqID = p.RequestID
		}
	case conversation.KindGateExecuted:
		var p gate.ExecutedPayload
		if json.Unmarshal(payload, &p) != nil {
			return
		}
		it.reqID = p.RequestID
		if r := c.reqs[p.RequestID]; r != nil {
			r.state, r.status, r.duration = gate.StateExecuted, p.Status, p.DurationMS
		}
	case conversation.KindGateResponse:
		var p gate.ResponsePayload
		if json.Unmarshal(payload, &p) == nil {
			it.reqID = p.RequestID
		}
	case conversation.KindGateFailed, conversation.KindGateExpired, conversation.KindGateRejected, conversation.KindGateCancelled:
		var p gate.ClosedPayload
		if json.Unmarshal(payload, &p) != nil {
			return
		}
		it.reqID = p.RequestID
		if r := c.reqs[p.RequestID]; r != nil {
			r.state, r.reason = closedState(m.Kind), p.Reason
		}
	case conversation.KindMemberPropose:
		var p gate.ProposePayload
		if json.Unmarshal(payload, &p) != nil || p.ProposalID == "" || c.props[p.ProposalID] != nil {
			return
		}
		it.reqID = p.ProposalID
		pr := &propView{id: p.ProposalID, seq: it.rec.Seq, p: p, digest: m.PayloadDigest(), proposer: m.Author,
			needed: neededFor(c.gate.Signers, p), approvals: []string{m.Author}}
		c.props[p.ProposalID] = pr
		for _, a := range p.Add {
			if a.Name != "" && c.names[a.Key] == "" {
				c.names[a.Key] = safeLine(a.Name)
			}
		}
	case conversation.KindMemberApprove:
		var p gate.MemberApprovePayload
		if json.Unmarshal(payload, &p) != nil {
			return
		}
		it.reqID = p.ProposalID
		if pr := c.props[p.ProposalID]; pr != nil && !pr.done && p.ProposalDigest == pr.digest && !slices.Contains(pr.approvals, m.Author) {
			pr.approvals = append(pr.approvals, m.Author)
			it.note = fmt.Sprintf("%d/%d", len(pr.approvals), len(pr.needed))
		}
	}
}

func closedState(kind string) string {
	switch kind {
	case conversation.KindGateFailed:
		return gate.StateFailed
	case conversation.KindGateExpired:
		return gate.StateExpired
	case conversation.KindGateRejected:
		return gate.StateRejected
	}
	return gate.StateCancelled
}

// neededFor is whose approval a proposal needs (PROTOCOL 5): every signer,
// but for a pure removal every signer other than those removed.
func neededFor(signers []string, p gate.ProposePayload) []string {
	if len(p.Add) > 0 || p.RequiredApprovals != 0 || p.Rules != nil {
		return slices.Clone(signers)
	}
	var out []string
	for _, s := range signers {
		if !slices.Contains(p.Remove, s) {
			out = append(out, s)
		}
	}
	return out
}

func (c *convState) learn(ms []conversation.Member) {
	for _, m := range ms {
		if m.Name != "" {
			c.names[m.Key] = safeLine(m.Name)
		}
	}
}

// threshold is M for a request, from the conversation's gate as the log
// tells it and the catalog (for the endpoint below the service's base URL
// and the template's pattern), as the gateway computes it (PROTOCOL 6).
func threshold(g gate.Config, cat *api.Catalog, p gate.RequestPayload) (int, *gate.Rule) {
	t := gate.Target{Service: p.Service, Method: p.Method}
	if cat != nil {
		for _, s := range cat.Services {
			if s.Name == p.Service {
				t.Path, _ = s.EndpointOf(p.URL)
			}
		}
		for _, tm := range cat.Templates {
			if p.Template != "" && tm.Name == p.Template {
				t.Pattern = tm.Endpoint
			}
		}
	}
	return gate.Threshold(g.RequiredApprovals, g.Rules, t)
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

// requestFor returns the request an item is about, if any.
func (c *convState) requestFor(it *item) *reqView {
	if it == nil || it.reqID == "" {
		return nil
	}
	return c.reqs[it.reqID]
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
