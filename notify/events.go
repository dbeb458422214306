package notify

import (
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
)

// Events a target may want (config.NotificationEvents is the same list).
const (
	RequestCreated    = "request.created"
	RequestApprovedBy = "request.approved_by" // off unless a target names it
	// RequestApproved is a request whose approvals are in under a rule with
	// a cool-off (gate.approved, PROTOCOL 9): it executes at executable_at
	// unless vetoed first. On by default: it is the signers' last chance.
	RequestApproved    = "request.approved"
	RequestExecuted    = "request.executed"
	RequestFailed      = "request.failed"
	RequestRejected    = "request.rejected"
	RequestExpired     = "request.expired"
	RequestCancelled   = "request.cancelled"
	MembershipProposed = "membership.proposed"
	MembershipChanged  = "membership.changed"
	QuorumAtRisk       = "gate.quorum_at_risk"
	// WebhookTest is what a test-send sends; no target subscribes to it.
	WebhookTest = "webhook.test"
)

// Events lists the events a target may ask for, in the order of the docs.
var Events = []string{RequestCreated, RequestApprovedBy, RequestApproved, RequestExecuted, RequestFailed, RequestRejected,
	RequestExpired, RequestCancelled, MembershipProposed, MembershipChanged, QuorumAtRisk}

// defaultEvents are a target's events when it names none.
func defaultEvents() map[string]bool {
	m := map[string]bool{}
	for _, e := range Events {
		m[e] = e != RequestApprovedBy
	}
	return m
}

// SchemaVersion is the version of Event's JSON; a change that breaks a
// reader makes the next one.
const SchemaVersion = 1

// Event is one notification: the json format's body, and what the slack
// and ntfy formats are drawn from. It carries names, counts and times,
// never a secret, a header value or a request's or response's body.
type Event struct {
	Type      string    `json:"type"`
	Version   int       `json:"version"`
	ID        string    `json:"id"` // the webhook-id of every attempt
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is what an event is about.
type Data struct {
	Conversation Conversation `json:"conversation"`
	Request      *Request     `json:"request,omitempty"`
	Membership   *Membership  `json:"membership,omitempty"`
	Quorum       *Quorum      `json:"quorum,omitempty"`
	// By names who voted (request.approved_by).
	By string `json:"by,omitempty"`
	// Link is the browser app's page of the request (or of the
	// conversation), under public_url; absent without it.
	Link string `json:"link,omitempty"`
	// Params and URL are the request's arguments and resolved URL, only
	// for a target with detail full.
	Params map[string]string `json:"params,omitempty"`
	URL    string            `json:"url,omitempty"`
	// Reason is why the request's submitter asks (gate.request's reason,
	// PROTOCOL 9), on every event of a request that has one. Not the
	// same as request.reason, which says why it closed.
	//
	// Unlike params and the URL it is sent at detail summary too: a
	// submitter writes it for the signers, to be read where they decide,
	// and it is no part of the call. At summary it is clipped to
	// SummaryReasonChars characters (code points, ending in "…"); with
	// detail full it is whole (at most 1,000).
	Reason string `json:"reason,omitempty"`
	// Message is a test-send's text.
	Message string `json:"message,omitempty"`
}

// Conversation names a conversation.
type Conversation struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Request is a request as an event shows it: k approvals of M, names of
// who voted and who has not.
type Request struct {
	ID         string    `json:"id"`
	Template   string    `json:"template,omitempty"`
	Service    string    `json:"service"`
	Method     string    `json:"method"`
	K          int       `json:"k"`
	M          int       `json:"m"`
	Approvals  []string  `json:"approvals"`
	Rejections []string  `json:"rejections"`
	WaitingOn  []string  `json:"waiting_on"`
	ExpiresAt  time.Time `json:"expires_at"`
	Submitter  string    `json:"submitter"`
	Program    string    `json:"program,omitempty"`
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"` // why it closed (failed, rejected, expired, cancelled); "vetoed" for a veto during the cool-off
	Status     int       `json:"status,omitempty"` // the upstream's HTTP status (executed)
	// Policy is what the request needs in one line (PROTOCOL 9,
	// gate.Policy.Describe): "3 approvals, including 1 of finance; 15 min
	// cool-off, 1 veto".
	Policy string `json:"policy,omitempty"`
	// ExecutableAt is, once the approvals are in under a rule with a
	// cool-off, when the call is made unless vetoed first; Veto is how
	// many rejections during the cool-off stop it, Vetoes who vetoed.
	ExecutableAt *time.Time `json:"executable_at,omitempty"`
	Veto         int        `json:"veto,omitempty"`
	Vetoes       []string   `json:"vetoes,omitempty"`
}

// SummaryReasonChars is the most of a request's reason an event carries
// at detail summary (Data.Reason).
const SummaryReasonChars = 200

// clipReason is reason cut to n code points, "…" ending a cut one.
func clipReason(reason string, n int) string {
	rs := []rune(reason)
	if len(rs) <= n {
		return reason
	}
	return string(rs[:n-1]) + "…"
}

// Membership is a proposal (membership.proposed) or the change it made
// (membership.changed).
type Membership struct {
	ProposalID string   `json:"proposal_id"`
	Proposer   string   `json:"proposer,omitempty"`
	Add        []string `json:"add,omitempty"`
	Remove     []string `json:"remove,omitempty"`
	// RequiredApprovals is the M proposed, or the M now.
	RequiredApprovals int  `json:"required_approvals,omitempty"`
	RulesChanged      bool `json:"rules_changed,omitempty"`
	// Needed are who must still approve the proposal.
	Needed []string `json:"needed,omitempty"`
	// Signers are the signers after the change.
	Signers []string `json:"signers,omitempty"`
}

// Quorum says how close a gate is to blocking: Signers signers left and
// a rule (Rule, "default" for the gate's own M) that needs HighestM.
type Quorum struct {
	Signers  int    `json:"signers"`
	HighestM int    `json:"highest_m"`
	Rule     string `json:"rule"`
}

// draft is an event derived from a commit, before it is given an id per
// target: the data both levels of detail share, and what detail full adds.
type draft struct {
	typ    string
	key    string // deliveries of one key go out in order
	data   Data
	params map[string]string
	url    string
	reason string // the request's reason, whole: Puts clips it per target
}

// derive reads the events of a commit.
func derive(c *engine.Commit, publicURL string) []draft {
	st := c.After
	if st == nil {
		return nil
	}
	conv := Conversation{ID: st.ID, Name: st.Name}
	reqs := map[string]*gate.Request{}
	for _, r := range c.Requests {
		reqs[r.ID] = r
	}
	var out []draft
	reqEvent := func(typ string, rec conversation.Record, by string) {
		var p struct {
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(rec.Body, &p) != nil {
			return
		}
		r := reqs[p.RequestID]
		if r == nil {
			return
		}
		d := draft{typ: typ, key: "r/" + st.ID + "/" + r.ID, params: maps.Clone(r.Payload.Params), url: r.Payload.URL, reason: r.Payload.Reason,
			data: Data{Conversation: conv, Request: requestOf(st, r), By: by, Link: config.DeepLink(publicURL, st.ID, r.ID)}}
		out = append(out, d)
	}
	for _, rec := range c.Records {
		switch rec.Kind {
		case conversation.KindGateRequest:
			reqEvent(RequestCreated, rec, "")
		case conversation.KindGateApprove:
			reqEvent(RequestApprovedBy, rec, st.MemberName(rec.Author))
		case conversation.KindGateApproved:
			reqEvent(RequestApproved, rec, "")
		case conversation.KindGateExecuted:
			reqEvent(RequestExecuted, rec, "")
		case conversation.KindGateFailed:
			reqEvent(RequestFailed, rec, "")
		case conversation.KindGateRejected:
			reqEvent(RequestRejected, rec, "")
		case conversation.KindGateExpired:
			reqEvent(RequestExpired, rec, "")
		case conversation.KindGateCancelled:
			reqEvent(RequestCancelled, rec, "")
		case conversation.KindMemberPropose:
			var p gate.ProposePayload
			if json.Unmarshal(rec.Body, &p) != nil {
				continue
			}
			m := &Membership{ProposalID: p.ProposalID, Proposer: st.MemberName(rec.Author),
				RequiredApprovals: p.RequiredApprovals, RulesChanged: p.Rules != nil}
			for _, a := range p.Add {
				m.Add = append(m.Add, nameOr(a.Name, a.Key))
			}
			for _, k := range p.Remove {
				m.Remove = append(m.Remove, c.Before.MemberName(k))
			}
			if prop := c.Proposals[p.ProposalID]; prop != nil {
				for _, k := range prop.Needed {
					if !slices.Contains(prop.Approvals, k) {
						m.Needed = append(m.Needed, st.MemberName(k))
					}
				}
			}
			out = append(out, draft{typ: MembershipProposed, key: "c/" + st.ID,
				data: Data{Conversation: conv, Membership: m, Link: convLink(publicURL, st.ID)}})
		case conversation.KindMemberChanged:
			var p gate.ChangedPayload
			if json.Unmarshal(rec.Body, &p) != nil {
				continue
			}
			m := &Membership{ProposalID: p.ProposalID, RequiredApprovals: p.RequiredApprovals,
				RulesChanged: !gate.RulesEqual(c.GateBefore.Rules, c.GateAfter.Rules)}
			for _, k := range p.Signers {
				m.Signers = append(m.Signers, st.MemberName(k))
				if !slices.Contains(c.GateBefore.Signers, k) {
					m.Add = append(m.Add, st.MemberName(k))
				}
			}
			for _, k := range c.GateBefore.Signers {
				if !slices.Contains(p.Signers, k) {
					m.Remove = append(m.Remove, c.Before.MemberName(k))
				}
			}
			out = append(out, draft{typ: MembershipChanged, key: "c/" + st.ID,
				data: Data{Conversation: conv, Membership: m, Link: convLink(publicURL, st.ID)}})
		}
	}
	if q := atRisk(c.GateAfter); q != nil && gateChanged(c.GateBefore, c.GateAfter) {
		out = append(out, draft{typ: QuorumAtRisk, key: "c/" + st.ID,
			data: Data{Conversation: conv, Quorum: q, Link: convLink(publicURL, st.ID)}})
	}
	return out
}

// atRisk reports a gate whose signers are no more than the highest M of
// its rules (its own M included): one signer lost, or one who will not
// vote, and the calls under that rule can no longer be approved.
func atRisk(g gate.Config) *Quorum {
	if !g.Enabled {
		return nil
	}
	q := &Quorum{Signers: len(g.Signers), HighestM: g.RequiredApprovals, Rule: "default"}
	for _, r := range g.Rules {
		if r.RequiredApprovals > q.HighestM {
			q.HighestM, q.Rule = r.RequiredApprovals, r.Service+" "+r.Method+" "+r.Endpoint
		}
	}
	if q.Signers > q.HighestM {
		return nil
	}
	return q
}

// gateChanged reports whether the signers or an M changed.
func gateChanged(a, b gate.Config) bool {
	return a.Enabled != b.Enabled || a.RequiredApprovals != b.RequiredApprovals ||
		!slices.Equal(a.Signers, b.Signers) || !gate.RulesEqual(a.Rules, b.Rules) || !gate.GroupsEqual(a.Groups, b.Groups)
}

// requestOf is how an event shows r.
func requestOf(st *conversation.State, r *gate.Request) *Request {
	out := &Request{ID: r.ID, Template: r.Payload.Template, Service: r.Payload.Service, Method: strings.ToUpper(r.Payload.Method),
		K: r.Count(), M: r.Required, ExpiresAt: r.ExpiresAt, Submitter: st.MemberName(r.Submitter), Program: r.Program,
		State: r.State, Approvals: []string{}, Rejections: []string{}, WaitingOn: []string{}, Policy: r.Needs().Describe()}
	if r.Program != "" {
		out.Submitter = "program " + r.Program
	}
	for _, k := range r.Approvals {
		out.Approvals = append(out.Approvals, st.MemberName(k))
	}
	for _, k := range r.Rejections {
		out.Rejections = append(out.Rejections, st.MemberName(k))
	}
	// Only a pending request waits on anyone: an approved one has its
	// approvals and waits out its cool-off.
	for _, k := range r.Signers {
		if r.State == gate.StatePending && !slices.Contains(r.Approvals, k) && !slices.Contains(r.Rejections, k) {
			out.WaitingOn = append(out.WaitingOn, st.MemberName(k))
		}
	}
	if !r.ExecutableAt.IsZero() {
		at := r.ExecutableAt.UTC()
		out.ExecutableAt, out.Veto = &at, r.Needs().Veto
	}
	for _, k := range r.Vetoes {
		out.Vetoes = append(out.Vetoes, st.MemberName(k))
	}
	if r.Result != nil {
		out.Reason, out.Status = r.Result.Reason, r.Result.Status
	}
	return out
}

func nameOr(name, key string) string {
	if name != "" {
		return name
	}
	return conversation.ShortKey(key)
}

// convLink is the browser app's page of conversation conv, or "".
func convLink(base, conv string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/#/c/" + url.PathEscape(conv)
}
