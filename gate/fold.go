package gate

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
)

// Fold is a conversation as its verified records say it stands: members,
// signers, rules, every request with its votes and outcome, the open
// proposals and the stored secrets' metadata. Records go in one at a time,
// in seq order, each already verified (signature, chain); Apply gives each
// its one meaning, with the decision functions the engine uses, and
// refuses a record that the rules do not allow at that point.
//
// Every reader of a log reads it through a Fold: the offline audit, the
// TUI, the CLI's cards, and the agreement test that holds the engine to
// it. What stays in each reader is only how it draws or acts.
type Fold struct {
	// Gateway is the gateway's signing key id: it writes the gateway kinds
	// and the requests it makes for programs.
	Gateway string
	// Resolve gives the target a request's M is matched on: the service,
	// the path of its URL below the service's base URL, the named
	// template's pattern and the method (PROTOCOL 6). An error refuses the
	// request's record (format); a non-empty problem is reported at the
	// first record that signs the request's decision. Nil matches on the
	// service and method alone, for a reader that has no catalog.
	Resolve func(p *RequestPayload) (t Target, problem string, err error) `json:"-"`

	ID, Name, Admin string
	Members         []conversation.Member
	Gate            Config                 // Enabled once gate.enabled is in
	Requests        map[string]*Request    // every request submitted, by id
	Proposals       map[string]*Proposal   // the open proposals
	Secrets         map[string]*SecretInfo // stored and not revoked
	Seq             uint64                 // the last record applied
	At              time.Time              // its received_at

	enabling  *Config
	revoking  []string
	revoker   string
	expect    [][]follow        // groups; the head group's records come next, in any order
	closing   map[string]string // request id -> the reason of the gate.rejected its votes made due
	responded map[string]bool
	used      map[string]bool   // "proposal/ID" and "secret/ID", ever used
	problems  map[string]string // request id -> what is wrong with its target
}

// SecretInfo is what the log says of a stored secret: never its value.
type SecretInfo struct {
	ID             string
	Service        string
	HeaderName     string
	HeaderTemplate string
	ExpiresAt      string // empty for no expiry
	ProvisionedBy  string
	Seq            uint64 // the gate.secret.stored record
}

// follow is a gateway record that must come next, because the gateway
// writes it in the same commit as the record that caused it.
type follow struct {
	kind, id, reason string
}

// The rules a record can break, as Violation.Check names them.
const (
	ViolationFormat    = "format"    // the record cannot be read as its kind
	ViolationAuthority = "authority" // the author may not say this
	ViolationThreshold = "threshold" // an execution or change without the approvals it needs
	ViolationDecision  = "decision"  // the M, rule or endpoint signed is not what the rules give
	ViolationOnce      = "once"      // something that happens once happened twice
	ViolationState     = "state"     // the record contradicts the state at that point
)

// Violation is why Apply refused a record. The fold is left as it was.
type Violation struct {
	Check  string
	Reason string
}

func (v *Violation) Error() string { return v.Reason }

func violate(check, format string, args ...any) error {
	return &Violation{Check: check, Reason: fmt.Sprintf(format, args...)}
}

// Step is what one applied record was about, for a reader to draw.
type Step struct {
	Request  *Request  // the request a gate.* record is about, as it is after it
	Proposal *Proposal // the proposal a member.* record is about, as it is after it
	// Diff is what that proposal changes in the gate it was made in (for
	// member.propose, member.approve and the member.changed that applies
	// it, which changes exactly this).
	Diff *ProposalDiff
}

// NewFold returns an empty fold for a log whose gateway is gateway.
func NewFold(gateway string) *Fold {
	return &Fold{Gateway: gateway, Requests: map[string]*Request{}, Proposals: map[string]*Proposal{},
		Secrets: map[string]*SecretInfo{}, closing: map[string]string{}, responded: map[string]bool{},
		used: map[string]bool{}, problems: map[string]string{}}
}

// Pending lists the consequences the gateway owes: the kinds of the
// gateway records that must come next (the same commit wrote them).
func (f *Fold) Pending() []string {
	var out []string
	for _, g := range f.expect {
		for _, e := range g {
			out = append(out, strings.TrimSpace(e.kind+" "+e.id))
		}
	}
	return out
}

// IsMember reports whether key is a member now.
func (f *Fold) IsMember(key string) bool {
	return slices.ContainsFunc(f.Members, func(m conversation.Member) bool { return m.Key == key })
}

// Apply folds in record seq, received at at, whose verified message is m.
// On a *Violation the fold is unchanged and the record changes nothing.
func (f *Fold) Apply(m *conversation.Message, seq uint64, at time.Time) (Step, error) {
	if f.ID == "" {
		if err := f.create(m); err != nil {
			return Step{}, err
		}
		f.Seq, f.At = seq, at
		return Step{}, nil
	}
	saved := f.saveExpect()
	if err := f.followUp(m); err != nil {
		return Step{}, err
	}
	program := m.Author == f.Gateway && conversation.ProgramRequest(m)
	var step Step
	var err error
	if !program && !conversation.GatewayKind(m.Kind) && !f.IsMember(m.Author) {
		err = violate(ViolationAuthority, "its author %s is not a member at this point", m.Author)
	} else {
		step, err = f.apply(m, seq, at)
	}
	if err != nil {
		f.expect = saved
		return Step{}, err
	}
	f.Seq, f.At = seq, at
	return step, nil
}

func (f *Fold) saveExpect() [][]follow {
	out := make([][]follow, len(f.expect))
	for i, g := range f.expect {
		out[i] = slices.Clone(g)
	}
	return out
}

func (f *Fold) create(m *conversation.Message) error {
	if m.Kind != conversation.KindConversationCreate {
		return violate(ViolationState, "the first record is a %s, not conversation.create", m.Kind)
	}
	st, _, err := conversation.NewState(m.Header.Conversation, m)
	if err != nil {
		return violate(ViolationState, "%s", twokey.ErrorMessage(err))
	}
	f.ID, f.Name, f.Admin, f.Members = st.ID, st.Name, st.Admin, st.Members
	return nil
}

// followUp checks that the gateway's consequences of earlier records come
// next, as the gateway writes them in the same commit.
func (f *Fold) followUp(m *conversation.Message) error {
	if len(f.expect) == 0 {
		return nil
	}
	var p struct {
		RequestID  string `json:"request_id"`
		ProposalID string `json:"proposal_id"`
		Reason     string `json:"reason"`
	}
	_ = json.Unmarshal(m.Payload, &p)
	id := p.RequestID
	if m.Kind == conversation.KindMemberChanged {
		id = p.ProposalID
	}
	group := f.expect[0]
	for i, e := range group {
		if e.kind == m.Kind && (e.id == "" || e.id == id) && (e.reason == "" || e.reason == p.Reason) {
			f.expect[0] = slices.Delete(group, i, i+1)
			if len(f.expect[0]) == 0 {
				f.expect = f.expect[1:]
			}
			return nil
		}
	}
	want := group[0]
	return violate(ViolationState, "the gateway should have written %s %s right after the record that caused it (the same commit); found a %s", want.kind, want.id, m.Kind)
}

func decode(m *conversation.Message, out any) error {
	if err := json.Unmarshal(m.Payload, out); err != nil {
		return violate(ViolationState, "its payload has a field of the wrong type: %v", err)
	}
	return nil
}

// apply gives one record its meaning.
func (f *Fold) apply(m *conversation.Message, seq uint64, at time.Time) (Step, error) {
	switch m.Kind {
	case conversation.KindConversationCreate:
		return Step{}, violate(ViolationState, "a second conversation.create")
	case conversation.KindChatMessage:
		return Step{}, nil
	case conversation.KindMemberAdd, conversation.KindMemberRemove:
		if f.Gate.Enabled {
			return Step{}, violate(ViolationState, "with the gateway on, members change only through a proposal")
		}
		if m.Author != f.Admin {
			return Step{}, violate(ViolationAuthority, "only the admin %s may change members", f.Admin)
		}
		st := &conversation.State{ID: f.ID, Admin: f.Admin, Members: f.Members}
		members, err := st.ApplyMember(m)
		if err != nil {
			return Step{}, violate(ViolationState, "%s", twokey.ErrorMessage(err))
		}
		f.Members = members
		return Step{}, nil
	case conversation.KindGateEnable:
		if m.Author != f.Admin {
			return Step{}, violate(ViolationAuthority, "only the admin %s may enable the gateway", f.Admin)
		}
		if f.Gate.Enabled {
			return Step{}, violate(ViolationState, "the gateway is already on")
		}
		var p EnablePayload
		if err := decode(m, &p); err != nil {
			return Step{}, err
		}
		keys := make([]string, len(f.Members))
		for i, mb := range f.Members {
			keys[i] = mb.Key
		}
		cfg, err := Enable(p, keys)
		if err != nil {
			return Step{}, violate(ViolationState, "%s", twokey.ErrorMessage(err))
		}
		f.enabling = &cfg
		f.expect = append(f.expect, []follow{{kind: conversation.KindGateEnabled}})
		return Step{}, nil
	case conversation.KindGateEnabled:
		var p EnabledPayload
		if err := decode(m, &p); err != nil {
			return Step{}, err
		}
		if f.enabling == nil {
			return Step{}, violate(ViolationState, "no gate.enable by the admin comes before it")
		}
		c := f.enabling
		if !slices.Equal(p.Signers, c.Signers) || p.RequiredApprovals != c.RequiredApprovals || !RulesEqual(p.Rules, c.Rules) || !GroupsEqual(p.Groups, c.Groups) {
			return Step{}, violate(ViolationState, "it states signers, M, rules or groups other than the admin's gate.enable and the members (M %d, want %d)", p.RequiredApprovals, c.RequiredApprovals)
		}
		f.Gate, f.enabling = *c, nil
		return Step{}, nil
	case conversation.KindCheckpoint, conversation.KindSessionOpen:
		return Step{}, violate(ViolationState, "a %s is never a record", m.Kind)
	}
	if conversation.GatewayKind(m.Kind) {
		return f.gatewayRecord(m, seq, at)
	}
	// Every other member kind is a gate.* or member.* kind.
	if !f.Gate.Enabled {
		return Step{}, violate(ViolationState, "the gateway is not on")
	}
	if !f.Gate.IsSigner(m.Author) && m.Author != f.Gateway {
		return Step{}, violate(ViolationAuthority, "its author %s is not a signer", m.Author)
	}
	switch m.Kind {
	case conversation.KindGateSecret:
		return Step{}, violate(ViolationState, "a gate.secret carries a sealed key and is never logged")
	case conversation.KindGateSecretRevoke:
		return Step{}, f.revoke(m)
	case conversation.KindGateRequest:
		return f.submit(m, seq, at)
	case conversation.KindGateApprove, conversation.KindGateReject:
		return f.vote(m, at)
	case conversation.KindGateCancel:
		var p CancelPayload
		if err := decode(m, &p); err != nil {
			return Step{}, err
		}
		r := f.Requests[p.RequestID]
		if r == nil {
			return Step{}, violate(ViolationState, "it cancels request %s, which this log never submitted", twokey.Clip(p.RequestID))
		}
		if err := r.CheckCancel(m.Author, at); err != nil {
			if twokey.ErrorCode(err) == twokey.EForbidden {
				return Step{}, violate(ViolationAuthority, "only the submitter may cancel request %s", r.ID)
			}
			return Step{}, violate(ViolationState, "request %s is %s, not pending", r.ID, r.State)
		}
		f.expect = append(f.expect, []follow{{kind: conversation.KindGateCancelled, id: r.ID, reason: ReasonCancelled}})
		return Step{Request: r}, nil
	case conversation.KindMemberPropose:
		var p ProposePayload
		if err := decode(m, &p); err != nil {
			return Step{}, err
		}
		if p.ProposalID == "" || f.Proposals[p.ProposalID] != nil || f.used["proposal/"+p.ProposalID] {
			return Step{}, violate(ViolationOnce, "proposal id %q is empty or was already used: a proposal id is accepted once", twokey.Clip(p.ProposalID))
		}
		prop, _, _, err := Propose(f.Gate, f.Members, m.Author, p, m.PayloadDigest())
		if err != nil {
			return Step{}, violate(ViolationState, "%s", twokey.ErrorMessage(err))
		}
		prop.Seq = seq
		f.used["proposal/"+p.ProposalID] = true
		f.Proposals[prop.ID] = prop
		if prop.Done() {
			f.expect = append(f.expect, []follow{{kind: conversation.KindMemberChanged, id: prop.ID}})
		}
		return f.proposalStep(prop), nil
	case conversation.KindMemberApprove:
		var p MemberApprovePayload
		if err := decode(m, &p); err != nil {
			return Step{}, err
		}
		prop := f.Proposals[p.ProposalID]
		if prop == nil {
			return Step{}, violate(ViolationState, "it approves proposal %s, which is not open", twokey.Clip(p.ProposalID))
		}
		if err := prop.CheckApprove(m.Author, p.ProposalDigest); err != nil {
			switch twokey.ErrorCode(err) {
			case twokey.EDigestMismatch:
				return Step{}, violate(ViolationState, "its proposal_digest does not match proposal %s's signed payload", prop.ID)
			case twokey.ENotSigner:
				return Step{}, violate(ViolationAuthority, "proposal %s does not need %s's approval", prop.ID, m.Author)
			}
			return Step{}, violate(ViolationThreshold, "%s approves proposal %s a second time", m.Author, prop.ID)
		}
		prop = prop.Approve(m.Author)
		f.Proposals[prop.ID] = prop
		if prop.Done() {
			f.expect = append(f.expect, []follow{{kind: conversation.KindMemberChanged, id: prop.ID}})
		}
		return f.proposalStep(prop), nil
	}
	return Step{}, violate(ViolationState, "kind %s is not one the gateway accepts from members", m.Kind)
}

// proposalStep is the step of a record about the open proposal prop: an
// open proposal was made in the gate as it is now.
func (f *Fold) proposalStep(prop *Proposal) Step {
	d := DiffProposal(f.Gate, prop.Payload)
	return Step{Proposal: prop, Diff: &d}
}

func ruleText(r *Rule) string {
	if r == nil {
		return "the conversation's default"
	}
	return "rule " + r.String()
}
