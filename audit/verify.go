package audit

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// Check names the rule a failing record breaks.
type Check string

// The checks, in the order a record meets them.
const (
	CheckFormat     Check = "format"     // the export itself is malformed or incomplete
	CheckSeq        Check = "seq"        // a record is missing, repeated or out of order
	CheckSignature  Check = "signature"  // the envelope does not verify
	CheckRecord     Check = "record"     // kind, author, body or time disagree with the envelope
	CheckChain      Check = "chain"      // the chain value is not SHA-256(prev || SHA-256(PAE))
	CheckGateway    Check = "gateway"    // a gateway kind not signed by the gateway, or the reverse
	CheckBinding    Check = "binding"    // the payload names another conversation or gateway
	CheckAuthority  Check = "authority"  // the author may not say this (not a member, signer, admin...)
	CheckThreshold  Check = "threshold"  // an execution or change without the approvals it needs
	CheckDecision   Check = "decision"   // the M, rule or endpoint the gateway signed is not what the rules, URL and catalog give
	CheckOnce       Check = "once"       // something that happens once happened twice
	CheckState      Check = "state"      // the record contradicts the gate's state at that point
	CheckCheckpoint Check = "checkpoint" // the chain differs from one the gateway signed or the auditor kept
)

// Failure is the first thing that does not hold.
type Failure struct {
	Seq    uint64 // the first record that fails; 0 for the export as a whole
	Kind   string // that record's kind, when known
	Check  Check
	Reason string
}

func (f *Failure) Error() string {
	if f.Seq == 0 {
		return fmt.Sprintf("%s check failed: %s", f.Check, f.Reason)
	}
	if f.Kind == "" {
		return fmt.Sprintf("record %d fails the %s check: %s", f.Seq, f.Check, f.Reason)
	}
	return fmt.Sprintf("record %d (%s) fails the %s check: %s", f.Seq, f.Kind, f.Check, f.Reason)
}

// Anchor is a chain value the auditor kept (from an earlier export, a
// checkpoint, or a record seen live): the export must agree with it.
type Anchor struct {
	Seq   uint64
	Chain string
	From  string // where it came from, for messages
}

// Options tune Verify.
type Options struct {
	// Gateway pins the gateway's signing key id: the export must name it.
	// Without it the export's own claim is used (and printed, to compare).
	Gateway string
	// Checkpoints are earlier gateway checkpoints the auditor kept; each
	// must be signed by the gateway and match the chain at its seq.
	Checkpoints []Checkpoint
	// Anchors are chain values the auditor kept.
	Anchors []Anchor
}

// Report summarizes a log that verified.
type Report struct {
	Conversation string
	Name         string
	Gateway      string
	Records      uint64
	Chain        string
	Members      int
	Signers      int
	Required     int
	Rules        int

	Requests    int
	Executed    int
	Failed      int
	Interrupted int
	Expired     int
	Rejected    int
	Cancelled   int
	Pending     int
	Executing   int
	// Approvals counts the distinct valid approvals behind every request
	// that reached execution (executed, or failed once executing).
	Approvals          int
	MembershipChanges  int
	Checkpoints        []uint64 // seqs of signed checkpoints that matched
	Anchors            []uint64 // seqs of kept chain values that matched
	CheckpointCoverage uint64   // the highest seq a gateway checkpoint covers
	// Shadows are the final rule set's rules that override a stricter,
	// broader rule (legal, but worth saying).
	Shadows []gate.Shadow
	// Executions are the requests that reached execution (executed, or
	// failed once executing), in log order, with the decision facts the
	// gateway signed and the audit re-derived.
	Executions []Execution
}

// Execution is one request that reached execution.
type Execution struct {
	Seq       uint64 // the gateway record that closed it
	RequestID string
	Service   string
	Method    string
	Endpoint  string     // as the gateway signed it, checked against the URL and the export
	Required  int        // M, as signed and as the rules in force at submission give it
	Rule      *gate.Rule // the rule that set M; nil for the conversation's default
	Approvals int        // distinct valid approvals
	Outcome   string     // "executed", or "failed <reason>"
}

// RuleText is the rule that set M, or "default".
func (e Execution) RuleText() string {
	if e.Rule == nil {
		return "default"
	}
	return "rule " + e.Rule.String()
}

// Summary is the report as lines for a person.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "conversation %s (%s)\n", r.Name, r.Conversation)
	fmt.Fprintf(&b, "gateway      %s\n", r.Gateway)
	fmt.Fprintf(&b, "records      1..%d: every signature, author and body verified; hash chain recomputed from record 1 (%s)\n", r.Records, r.Chain)
	fmt.Fprintf(&b, "membership   %d members, %d signers, default M %d, %d rules, %d governed changes (each approved by every signer it needed)\n",
		r.Members, r.Signers, r.Required, r.Rules, r.MembershipChanges)
	fmt.Fprintf(&b, "requests     %d submitted: %d executed, %d failed (%d interrupted), %d expired, %d rejected, %d cancelled, %d pending, %d executing\n",
		r.Requests, r.Executed, r.Failed, r.Interrupted, r.Expired, r.Rejected, r.Cancelled, r.Pending, r.Executing)
	fmt.Fprintf(&b, "executions   each had M distinct valid approvals under the rule and membership of its time (%d approvals in all); none ran twice\n", r.Approvals)
	for _, e := range r.Executions {
		fmt.Fprintf(&b, "execution    record %d: request %s %s %s %s: M %d by %s, %d approval%s, %s\n",
			e.Seq, e.RequestID, e.Method, e.Service, e.Endpoint, e.Required, e.RuleText(), e.Approvals, plural(e.Approvals), e.Outcome)
	}
	for _, s := range r.Checkpoints {
		fmt.Fprintf(&b, "checkpoint   seq %d, signed by the gateway, matches the chain\n", s)
	}
	for _, s := range r.Anchors {
		fmt.Fprintf(&b, "anchor       seq %d, a chain value you kept, matches\n", s)
	}
	for _, s := range r.Shadows {
		fmt.Fprintf(&b, "rules        note: %s\n", s)
	}
	if r.CheckpointCoverage < r.Records {
		fmt.Fprintf(&b, "note         records %d..%d came after the newest checkpoint: verified, but not yet vouched for by one\n", r.CheckpointCoverage+1, r.Records)
	}
	b.WriteString("OK\n")
	return b.String()
}

// Verify re-checks x and returns a report, or the first *Failure.
func Verify(x *Export, opt Options) (*Report, error) {
	v := &verifier{x: x, gw: x.Gateway, anchors: map[uint64][]Anchor{},
		proposals: map[string]*gate.Proposal{}, requests: map[string]*request{}, secrets: map[string]string{},
		responded: map[string]bool{}, once: map[string]bool{}}
	if err := v.prepare(opt); err != nil {
		return nil, err
	}
	v.decided = signedEndpoints(x)
	for i := range x.Records {
		if err := v.record(&x.Records[i]); err != nil {
			return nil, err
		}
	}
	return v.finish()
}

// request is a request as the log says it stands.
type request struct {
	p          gate.RequestPayload
	digest     string
	submitter  string
	signers    []string
	required   int
	approvals  []string
	rejections []string
	state      string
	expires    time.Time
	seq        uint64
	// closing is set when a vote made M unreachable: gate.rejected must
	// follow in the same commit.
	closing bool
	// endpoint is the path M was matched on: the one the gateway signed
	// when it closed the request, else (still open) the export's; rule is
	// the rule that set required (nil: the default). problem is what is
	// wrong with the signed endpoint, reported at the record that signs it.
	endpoint string
	pattern  string // the named template's pattern M was matched with
	rule     *gate.Rule
	problem  string
}

func (r *request) count() int {
	n := 0
	for i, a := range r.approvals {
		if slices.Contains(r.signers, a) && !slices.Contains(r.approvals[:i], a) {
			n++
		}
	}
	return n
}

// follow is a gateway record that must come next, because the gateway
// writes it in the same commit as the record that caused it.
type follow struct {
	kind, id, reason string
}

type verifier struct {
	x       *Export
	gw      string
	anchors map[uint64][]Anchor
	rep     Report

	seq   uint64
	chain conversation.Chain
	rec   *conversation.Record
	m     *conversation.Message
	at    time.Time

	st        *conversation.State
	gateOn    bool
	cfg       gate.Config
	enabling  *gate.Config
	revoking  []string
	revoker   string
	proposals map[string]*gate.Proposal
	requests  map[string]*request
	decided   map[string]signedFacts // request id -> what the gateway's first closing record of it signs
	secrets   map[string]string      // secret id -> service
	expect    [][]follow             // groups; the head group's records come next, in any order
	responded map[string]bool
	// once holds what the server accepts once (PROTOCOL 2): each member's
	// signed payloads ("author/digest"), and every proposal and secret id
	// ever used ("proposal/ID", "secret/ID"), open, applied or revoked.
	once map[string]bool
}

func (v *verifier) fail(check Check, format string, args ...any) error {
	f := &Failure{Check: check, Reason: fmt.Sprintf(format, args...)}
	if v.rec != nil {
		f.Seq, f.Kind = v.rec.Seq, v.rec.Kind
	}
	return f
}

// prepare checks the gateway key and every checkpoint's signature.
func (v *verifier) prepare(opt Options) error {
	if _, err := conversation.ParseKeyID(v.gw); err != nil {
		return v.fail(CheckFormat, "the export's gateway key %q is not a key id: %s", twokey.Clip(v.gw), twokey.ErrorMessage(err))
	}
	if opt.Gateway != "" && opt.Gateway != v.gw {
		return v.fail(CheckGateway, "the export names gateway %s, but you pinned %s: it comes from another gateway or was re-signed", v.gw, opt.Gateway)
	}
	v.rep.Gateway = v.gw
	cps := slices.Clone(opt.Checkpoints)
	if v.x.Checkpoint != nil {
		cps = append([]Checkpoint{*v.x.Checkpoint}, cps...)
	}
	for i, cp := range cps {
		from := "the export's checkpoint"
		if v.x.Checkpoint == nil || i > 0 {
			from = "a checkpoint you kept"
		}
		m, err := conversation.Verify(cp.Envelope)
		if err != nil {
			return v.fail(CheckCheckpoint, "%s does not verify: %s", from, twokey.ErrorMessage(err))
		}
		if m.Kind != conversation.KindCheckpoint || m.Author != v.gw {
			return v.fail(CheckCheckpoint, "%s is a %s signed by %s, not a checkpoint signed by the gateway %s", from, m.Kind, m.Author, v.gw)
		}
		var p struct {
			Conversation string `json:"conversation"`
			Seq          uint64 `json:"seq"`
			Chain        string `json:"chain"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Conversation != v.x.Conversation || p.Seq != cp.Seq || p.Chain != cp.Chain {
			return v.fail(CheckCheckpoint, "%s's signed payload (conversation %s, seq %d) does not match its fields or this conversation", from, twokey.Clip(p.Conversation), p.Seq)
		}
		if cp.Seq == 0 {
			return v.fail(CheckCheckpoint, "%s is at seq 0", from)
		}
		v.anchors[cp.Seq] = append(v.anchors[cp.Seq], Anchor{Seq: cp.Seq, Chain: cp.Chain, From: from + " (signed by the gateway)"})
	}
	for _, a := range opt.Anchors {
		if a.From == "" {
			a.From = "a chain value you kept"
		}
		if a.Seq == 0 {
			return v.fail(CheckFormat, "an anchor at seq 0")
		}
		v.anchors[a.Seq] = append(v.anchors[a.Seq], a)
	}
	return nil
}

// record checks one record: integrity first, then what it says.
func (v *verifier) record(r *conversation.Record) error {
	v.rec = r
	if r.Seq != v.seq+1 {
		if r.Seq <= v.seq {
			return v.fail(CheckSeq, "seq %d comes after %d: a record is repeated or out of order", r.Seq, v.seq)
		}
		return v.fail(CheckSeq, "expected seq %d: %d record(s) are missing", v.seq+1, r.Seq-v.seq-1)
	}
	m, err := conversation.Verify(r.Envelope)
	if err != nil {
		return v.fail(CheckSignature, "%s", twokey.ErrorMessage(err))
	}
	v.m = m
	if m.Kind != r.Kind {
		return v.fail(CheckRecord, "the record says kind %q but its envelope is a %s", twokey.Clip(r.Kind), m.Kind)
	}
	if m.Author != r.Author {
		return v.fail(CheckRecord, "the record names author %s but the envelope is signed by %s", twokey.Clip(r.Author), m.Author)
	}
	if !conversation.SameJSON(r.Body, m.Payload) {
		return v.fail(CheckRecord, "its body is not the signed payload")
	}
	at, err := conversation.ParseTime(r.ReceivedAt)
	if err != nil {
		return v.fail(CheckRecord, "received_at: %s", twokey.ErrorMessage(err))
	}
	// received_at is the server's and unsigned, but bounded: the server
	// stamps records in order, and refuses a message signed more than
	// MaxFutureSkew ahead of its clock. (Within those bounds a dishonest
	// server could still shift it; the approval-before-expiry check
	// rests on it.)
	if v.seq > 0 && at.Before(v.at) {
		return v.fail(CheckRecord, "received_at %s is before the previous record's %s: the server stamps records in order, so a time was edited",
			r.ReceivedAt, conversation.FormatTime(v.at))
	}
	if !m.CreatedAt.IsZero() && at.Before(m.CreatedAt.Add(-twokey.MaxFutureSkew)) {
		return v.fail(CheckRecord, "received_at %s is more than %s before the signed created_at %s: the server refuses messages from that far ahead, so received_at was edited",
			r.ReceivedAt, twokey.MaxFutureSkew, m.Header.CreatedAt)
	}
	if !conversation.GatewayKind(m.Kind) && m.Author != v.gw {
		// PROTOCOL 2 (freshness and replay): the server accepts a member's
		// envelope only while its created_at is within the window, and
		// each one once.
		if !m.CreatedAt.IsZero() && at.After(m.CreatedAt.Add(twokey.MaxPastSkew)) {
			return v.fail(CheckRecord, "received_at %s is more than %s after the signed created_at %s: the server accepts only fresh envelopes, so this one was replayed or received_at was edited",
				r.ReceivedAt, twokey.MaxPastSkew, m.Header.CreatedAt)
		}
		key := m.Author + "/" + m.PayloadDigest()
		if v.once[key] {
			return v.fail(CheckOnce, "its signed payload was already accepted earlier in this log: a replayed envelope")
		}
		v.once[key] = true
	}
	v.at = at
	next := v.chain.Next(conversation.PAE(r.Envelope.PayloadType, m.Payload))
	if next.String() != r.Chain {
		return v.fail(CheckChain, "its chain value is not SHA-256 of the previous one and its envelope: the log up to here was changed")
	}
	v.seq, v.chain = r.Seq, next
	for _, a := range v.anchors[r.Seq] {
		if a.Chain != r.Chain {
			return v.fail(CheckCheckpoint, "the chain at seq %d is %s, but %s says %s: the log up to here was rewritten", r.Seq, r.Chain, a.From, twokey.Clip(a.Chain))
		}
		if strings.Contains(a.From, "signed by the gateway") {
			v.rep.Checkpoints = append(v.rep.Checkpoints, r.Seq)
			v.rep.CheckpointCoverage = max(v.rep.CheckpointCoverage, r.Seq)
		} else {
			v.rep.Anchors = append(v.rep.Anchors, r.Seq)
		}
	}
	// Who may sign what.
	program := m.Author == v.gw && conversation.ProgramRequest(m)
	switch {
	case conversation.GatewayKind(m.Kind) && m.Author != v.gw:
		return v.fail(CheckGateway, "it is a record only the gateway writes, but it is signed by %s, not the gateway %s", m.Author, v.gw)
	case !conversation.GatewayKind(m.Kind) && m.Author == v.gw && !program:
		return v.fail(CheckGateway, "the gateway signed a %s, which only members write", m.Kind)
	}
	if r.Seq == 1 {
		return v.create()
	}
	if m.Header.Conversation != v.st.ID {
		return v.fail(CheckBinding, "its payload is for conversation %s, not %s", twokey.Clip(m.Header.Conversation), v.st.ID)
	}
	if conversation.NeedsGateway(m.Kind) && m.Author != v.gw && m.Header.Gateway != v.gw {
		return v.fail(CheckBinding, "its payload is bound to gateway %q, not %s", twokey.Clip(m.Header.Gateway), v.gw)
	}
	if conversation.GatewayKind(m.Kind) && m.Header.Gateway != "" && m.Header.Gateway != v.gw {
		return v.fail(CheckBinding, "the gateway's record names gateway %q", twokey.Clip(m.Header.Gateway))
	}
	if err := v.followUp(); err != nil {
		return err
	}
	if !program && !conversation.GatewayKind(m.Kind) && !v.st.IsMember(m.Author) {
		return v.fail(CheckAuthority, "its author %s is not a member at this point", m.Author)
	}
	return v.apply()
}

// followUp checks that the gateway's consequences of the previous record
// come next, as the gateway writes them in the same commit.
func (v *verifier) followUp() error {
	if len(v.expect) == 0 {
		return nil
	}
	var p struct {
		RequestID  string `json:"request_id"`
		ProposalID string `json:"proposal_id"`
		Reason     string `json:"reason"`
	}
	_ = json.Unmarshal(v.m.Payload, &p)
	id := p.RequestID
	if v.m.Kind == conversation.KindMemberChanged {
		id = p.ProposalID
	}
	group := v.expect[0]
	for i, f := range group {
		if f.kind == v.m.Kind && (f.id == "" || f.id == id) && (f.reason == "" || f.reason == p.Reason) {
			v.expect[0] = slices.Delete(group, i, i+1)
			if len(v.expect[0]) == 0 {
				v.expect = v.expect[1:]
			}
			return nil
		}
	}
	want := group[0]
	return v.fail(CheckState, "the gateway should have written %s %s right after the record that caused it (the same commit); found a %s", want.kind, want.id, v.m.Kind)
}

func (v *verifier) create() error {
	m := v.m
	if m.Kind != conversation.KindConversationCreate {
		return v.fail(CheckState, "the first record is a %s, not conversation.create", m.Kind)
	}
	if m.Header.Conversation != v.x.Conversation {
		return v.fail(CheckBinding, "it founds conversation %s, but the export is of %s", twokey.Clip(m.Header.Conversation), twokey.Clip(v.x.Conversation))
	}
	st, _, err := conversation.NewState(m.Header.Conversation, m)
	if err != nil {
		return v.fail(CheckState, "%s", twokey.ErrorMessage(err))
	}
	v.st = st
	return nil
}

func (v *verifier) decode(out any) error {
	if err := json.Unmarshal(v.m.Payload, out); err != nil {
		return v.fail(CheckState, "its payload has a field of the wrong type: %v", err)
	}
	return nil
}

// apply replays one record's meaning against the state.
func (v *verifier) apply() error {
	m := v.m
	switch m.Kind {
	case conversation.KindConversationCreate:
		return v.fail(CheckState, "a second conversation.create")
	case conversation.KindChatMessage:
		return nil
	case conversation.KindMemberAdd, conversation.KindMemberRemove:
		if v.gateOn {
			return v.fail(CheckState, "with the gateway on, members change only through a proposal")
		}
		if m.Author != v.st.Admin {
			return v.fail(CheckAuthority, "only the admin %s may change members", v.st.Admin)
		}
		members, err := v.st.ApplyMember(m)
		if err != nil {
			return v.fail(CheckState, "%s", twokey.ErrorMessage(err))
		}
		v.st.Members = members
		return nil
	case conversation.KindGateEnable:
		if m.Author != v.st.Admin {
			return v.fail(CheckAuthority, "only the admin %s may enable the gateway", v.st.Admin)
		}
		if v.gateOn {
			return v.fail(CheckState, "the gateway is already on")
		}
		var p gate.EnablePayload
		if err := v.decode(&p); err != nil {
			return err
		}
		cfg, err := gate.Enable(p, v.st.Keys())
		if err != nil {
			return v.fail(CheckState, "%s", twokey.ErrorMessage(err))
		}
		v.enabling = &cfg
		v.expect = append(v.expect, []follow{{kind: conversation.KindGateEnabled}})
		return nil
	case conversation.KindGateEnabled:
		var p gate.EnabledPayload
		if err := v.decode(&p); err != nil {
			return err
		}
		if v.enabling == nil {
			return v.fail(CheckState, "no gate.enable by the admin comes before it")
		}
		c := v.enabling
		if !slices.Equal(p.Signers, c.Signers) || p.RequiredApprovals != c.RequiredApprovals || !slices.Equal(p.Rules, c.Rules) {
			return v.fail(CheckState, "it states signers, M or rules other than the admin's gate.enable and the members (M %d, want %d)", p.RequiredApprovals, c.RequiredApprovals)
		}
		v.cfg, v.gateOn, v.enabling = *c, true, nil
		return nil
	case conversation.KindCheckpoint, conversation.KindSessionOpen:
		return v.fail(CheckState, "a %s is never a record", m.Kind)
	}
	if conversation.GatewayKind(m.Kind) {
		return v.gatewayRecord()
	}
	// Every other member kind is a gate.* or member.* kind.
	if !v.gateOn {
		return v.fail(CheckState, "the gateway is not on")
	}
	if !v.cfg.IsSigner(m.Author) && m.Author != v.gw {
		return v.fail(CheckAuthority, "its author %s is not a signer", m.Author)
	}
	switch m.Kind {
	case conversation.KindGateSecret:
		return v.fail(CheckState, "a gate.secret carries a sealed key and is never logged")
	case conversation.KindGateSecretRevoke:
		return v.revoke()
	case conversation.KindGateRequest:
		return v.submit()
	case conversation.KindGateApprove, conversation.KindGateReject:
		return v.vote()
	case conversation.KindGateCancel:
		var p gate.CancelPayload
		if err := v.decode(&p); err != nil {
			return err
		}
		r := v.requests[p.RequestID]
		if r == nil {
			return v.fail(CheckState, "it cancels request %s, which this log never submitted", twokey.Clip(p.RequestID))
		}
		if r.submitter != m.Author {
			return v.fail(CheckAuthority, "only the submitter may cancel request %s", r.p.RequestID)
		}
		if r.state != gate.StatePending {
			return v.fail(CheckState, "request %s is %s, not pending", r.p.RequestID, r.state)
		}
		v.expect = append(v.expect, []follow{{kind: conversation.KindGateCancelled, id: r.p.RequestID, reason: gate.ReasonCancelled}})
		return nil
	case conversation.KindMemberPropose:
		var p gate.ProposePayload
		if err := v.decode(&p); err != nil {
			return err
		}
		if p.ProposalID == "" || v.proposals[p.ProposalID] != nil || v.once["proposal/"+p.ProposalID] {
			return v.fail(CheckOnce, "proposal id %q is empty or was already used: a proposal id is accepted once", twokey.Clip(p.ProposalID))
		}
		v.once["proposal/"+p.ProposalID] = true
		prop, _, _, err := gate.Propose(v.cfg, v.st.Members, m.Author, p, m.PayloadDigest())
		if err != nil {
			return v.fail(CheckState, "%s", twokey.ErrorMessage(err))
		}
		v.proposals[prop.ID] = prop
		if prop.Done() {
			v.expect = append(v.expect, []follow{{kind: conversation.KindMemberChanged, id: prop.ID}})
		}
		return nil
	case conversation.KindMemberApprove:
		var p gate.MemberApprovePayload
		if err := v.decode(&p); err != nil {
			return err
		}
		prop := v.proposals[p.ProposalID]
		if prop == nil {
			return v.fail(CheckState, "it approves proposal %s, which is not open", twokey.Clip(p.ProposalID))
		}
		if p.ProposalDigest != prop.Digest {
			return v.fail(CheckState, "its proposal_digest does not match proposal %s's signed payload", prop.ID)
		}
		if !slices.Contains(prop.Needed, m.Author) {
			return v.fail(CheckAuthority, "proposal %s does not need %s's approval", prop.ID, m.Author)
		}
		if slices.Contains(prop.Approvals, m.Author) {
			return v.fail(CheckThreshold, "%s approves proposal %s a second time", m.Author, prop.ID)
		}
		prop.Approvals = append(prop.Approvals, m.Author)
		if prop.Done() {
			v.expect = append(v.expect, []follow{{kind: conversation.KindMemberChanged, id: prop.ID}})
		}
		return nil
	}
	return v.fail(CheckState, "kind %s is not one the gateway accepts from members", m.Kind)
}

func (v *verifier) revoke() error {
	var p gate.RevokePayload
	if err := v.decode(&p); err != nil {
		return err
	}
	if (p.SecretID == "") == (p.Service == "") {
		return v.fail(CheckState, "a revocation names exactly one of secret_id or service")
	}
	ids := []string{}
	for id, svc := range v.secrets {
		if id == p.SecretID || (p.Service != "" && svc == p.Service) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return v.fail(CheckState, "it revokes no stored secret")
	}
	slices.Sort(ids)
	v.revoking, v.revoker = ids, v.m.Author
	v.expect = append(v.expect, []follow{{kind: conversation.KindGateSecretRevoked}})
	return nil
}

func (v *verifier) submit() error {
	m := v.m
	var p gate.RequestPayload
	if err := v.decode(&p); err != nil {
		return err
	}
	if p.RequestID == "" {
		return v.fail(CheckState, "the request has no request_id")
	}
	if v.requests[p.RequestID] != nil {
		return v.fail(CheckOnce, "request id %s was already submitted at record %d", p.RequestID, v.requests[p.RequestID].seq)
	}
	exp, err := conversation.ParseTime(p.ExpiresAt)
	if err != nil {
		return v.fail(CheckState, "expires_at: %s", twokey.ErrorMessage(err))
	}
	if !exp.After(v.at) || exp.After(v.at.Add(twokey.MaxRequestTTL+time.Second)) {
		return v.fail(CheckState, "expires_at %s is not between the record's time %s and %s later", p.ExpiresAt, v.rec.ReceivedAt, twokey.MaxRequestTTL)
	}
	// The endpoint M is matched on: the one the gateway signed when it
	// closed this request (checked against the URL and the export when
	// that record comes), else the export's base URL's.
	var endpoint, pattern, problem string
	if signed, ok := v.decided[p.RequestID]; ok {
		endpoint, pattern = signed.endpoint, signed.pattern
		problem = v.x.endpointProblem(&p, signed.endpoint, signed.pattern)
	} else {
		if endpoint, err = v.x.endpointOf(&p); err != nil {
			return v.fail(CheckFormat, "%v", err)
		}
		if t := v.x.template(p.Template); t != nil {
			pattern = t.Endpoint
		}
	}
	required, rule := gate.Threshold(v.cfg.RequiredApprovals, v.cfg.Rules, gate.Target{Service: p.Service, Path: endpoint, Pattern: pattern, Method: p.Method})
	r := &request{p: p, digest: m.PayloadDigest(), submitter: m.Author, signers: slices.Clone(v.cfg.Signers),
		required: required, approvals: []string{}, state: gate.StatePending, expires: exp, seq: v.rec.Seq,
		endpoint: endpoint, pattern: pattern, problem: problem}
	if rule != nil {
		c := *rule
		r.rule = &c
	}
	open := 0
	for _, q := range v.requests {
		if q.submitter == m.Author && q.p.Program == p.Program && q.state == gate.StatePending {
			open++
		}
	}
	if open >= twokey.MaxPendingPerSigner {
		return v.fail(CheckState, "%s already holds %d pending requests, the most one submitter may", m.Author, open)
	}
	if m.Author != v.gw {
		// The submitter's request is its approval; a program's never is.
		r.approvals = append(r.approvals, m.Author)
		if r.count() >= r.required {
			r.state = gate.StateExecuting
		}
	}
	v.requests[p.RequestID] = r
	v.rep.Requests++
	return nil
}

func (v *verifier) vote() error {
	m := v.m
	var p gate.VotePayload
	if err := v.decode(&p); err != nil {
		return err
	}
	r := v.requests[p.RequestID]
	if r == nil {
		return v.fail(CheckState, "it votes on request %s, which this log never submitted", twokey.Clip(p.RequestID))
	}
	if !slices.Contains(r.signers, m.Author) {
		return v.fail(CheckAuthority, "%s was not a signer when request %s was submitted", m.Author, r.p.RequestID)
	}
	if p.RequestDigest != r.digest {
		return v.fail(CheckState, "its request_digest is not the digest of request %s as signed at record %d: it approves another version of the request", r.p.RequestID, r.seq)
	}
	if r.state != gate.StatePending {
		return v.fail(CheckState, "request %s is already %s: a vote after resolution", r.p.RequestID, r.state)
	}
	if !v.at.Before(r.expires) {
		return v.fail(CheckState, "request %s expired at %s, before this vote (%s)", r.p.RequestID, r.p.ExpiresAt, v.rec.ReceivedAt)
	}
	if slices.Contains(r.approvals, m.Author) || slices.Contains(r.rejections, m.Author) {
		return v.fail(CheckThreshold, "%s votes on request %s a second time", m.Author, r.p.RequestID)
	}
	if m.Kind == conversation.KindGateApprove {
		r.approvals = append(r.approvals, m.Author)
		if r.count() >= r.required {
			r.state = gate.StateExecuting
		}
		return nil
	}
	r.rejections = append(r.rejections, m.Author)
	if len(r.signers)-len(r.rejections) < r.required {
		r.state, r.closing = gate.StateRejected, true
		v.expect = append(v.expect, []follow{{kind: conversation.KindGateRejected, id: r.p.RequestID, reason: gate.ReasonRejected}})
	}
	return nil
}

// gatewayRecord checks a record the gateway wrote.
func (v *verifier) gatewayRecord() error {
	m := v.m
	switch m.Kind {
	case conversation.KindGateSecretStored:
		var p gate.SecretStoredPayload
		if err := v.decode(&p); err != nil {
			return err
		}
		if !v.gateOn || !v.cfg.IsSigner(p.ProvisionedBy) {
			return v.fail(CheckAuthority, "the secret was provisioned by %s, not a signer", twokey.Clip(p.ProvisionedBy))
		}
		if _, dup := v.secrets[p.SecretID]; dup || p.SecretID == "" || v.once["secret/"+p.SecretID] {
			return v.fail(CheckOnce, "secret id %q is empty or was already used: a secret id is stored once, and a revoked one never again", twokey.Clip(p.SecretID))
		}
		v.once["secret/"+p.SecretID] = true
		v.secrets[p.SecretID] = p.Service
		return nil
	case conversation.KindGateSecretRevoked:
		var p gate.RevokedPayload
		if err := v.decode(&p); err != nil {
			return err
		}
		got := slices.Sorted(slices.Values(p.SecretIDs))
		if v.revoking == nil || !slices.Equal(got, v.revoking) || p.By != v.revoker {
			return v.fail(CheckState, "it does not state the secrets the revocation before it names")
		}
		for _, id := range got {
			delete(v.secrets, id)
		}
		v.revoking = nil
		return nil
	case conversation.KindMemberChanged:
		return v.changed()
	}
	var p struct {
		RequestID string `json:"request_id"`
		Reason    string `json:"reason"`
	}
	if err := v.decode(&p); err != nil {
		return err
	}
	r := v.requests[p.RequestID]
	if r == nil {
		return v.fail(CheckState, "it is about request %s, which this log never submitted", twokey.Clip(p.RequestID))
	}
	switch m.Kind {
	case conversation.KindGateExecuted, conversation.KindGateFailed:
		switch r.state {
		case gate.StateExecuting, gate.StatePending:
		case gate.StateExecuted, gate.StateFailed:
			return v.fail(CheckOnce, "request %s already ended (%s): it would have executed twice", r.p.RequestID, r.state)
		default:
			return v.fail(CheckState, "request %s was already %s", r.p.RequestID, r.state)
		}
		if err := v.decision(r, true); err != nil {
			return err
		}
		if r.state == gate.StatePending {
			return v.fail(CheckThreshold, "request %s reached execution with %d of the %d distinct approvals it needs (%s)", r.p.RequestID, r.count(), r.required, ruleText(r.rule))
		}
		var q struct {
			Approvers []string `json:"approvers"`
			Status    int      `json:"status"`
		}
		if err := v.decode(&q); err != nil {
			return err
		}
		if m.Kind == conversation.KindGateExecuted || len(q.Approvers) > 0 {
			if err := v.approvers(r, q.Approvers); err != nil {
				return err
			}
		}
		outcome := "executed"
		if m.Kind == conversation.KindGateExecuted {
			r.state = gate.StateExecuted
			v.rep.Executed++
			v.expect = append(v.expect, []follow{{kind: conversation.KindGateResponse, id: r.p.RequestID}})
		} else {
			r.state = gate.StateFailed
			v.rep.Failed++
			if p.Reason == gate.ReasonInterrupted {
				v.rep.Interrupted++
			}
			outcome = "failed " + twokey.Clip(p.Reason)
		}
		v.rep.Approvals += r.count()
		v.rep.Executions = append(v.rep.Executions, Execution{Seq: v.rec.Seq, RequestID: r.p.RequestID, Service: r.p.Service,
			Method: r.p.Method, Endpoint: r.endpoint, Required: r.required, Rule: r.rule, Approvals: r.count(), Outcome: outcome})
		return nil
	case conversation.KindGateResponse:
		var q gate.ResponsePayload
		if err := v.decode(&q); err != nil {
			return err
		}
		if r.state != gate.StateExecuted || v.responded[r.p.RequestID] {
			return v.fail(CheckOnce, "a response for request %s, which is %s or already answered", r.p.RequestID, r.state)
		}
		v.responded[r.p.RequestID] = true
		// The digest is over the body's bytes: the text itself, or what
		// its base64 decodes to (body_encoding base64, PROTOCOL 5).
		body, err := q.BodyBytes()
		if err != nil {
			return v.fail(CheckFormat, "%v", err)
		}
		if !q.Truncated && q.BodyDigest != conversation.Digest(body) {
			return v.fail(CheckState, "body_digest is not the digest of the (whole, untruncated) body")
		}
		return nil
	case conversation.KindGateExpired:
		if err := v.decision(r, false); err != nil {
			return err
		}
		if r.state != gate.StatePending {
			return v.fail(CheckState, "request %s is %s; only a pending request expires", r.p.RequestID, r.state)
		}
		if v.at.Before(r.expires.Truncate(time.Millisecond)) {
			return v.fail(CheckState, "request %s expired at %s, before its expires_at %s", r.p.RequestID, v.rec.ReceivedAt, r.p.ExpiresAt)
		}
		r.state = gate.StateExpired
		v.rep.Expired++
		return nil
	case conversation.KindGateRejected:
		// The gateway signs its decision here too (M decides when a
		// rejection closes a request); checked when present, as for
		// expiries and cancellations.
		if err := v.decision(r, false); err != nil {
			return err
		}
		// Reached only as an expected follow-up of the rejection that
		// made M unreachable (followUp checked it); anything else is not.
		if !r.closing || p.Reason != gate.ReasonRejected {
			return v.fail(CheckState, "request %s is rejected, but its rejections (%d of %d signers, M %d) leave M reachable", r.p.RequestID, len(r.rejections), len(r.signers), r.required)
		}
		r.closing = false
		v.rep.Rejected++
		return nil
	case conversation.KindGateCancelled:
		if err := v.decision(r, false); err != nil {
			return err
		}
		if r.state != gate.StatePending || (p.Reason != gate.ReasonCancelled && p.Reason != gate.ReasonMembershipChanged) {
			return v.fail(CheckState, "request %s is cancelled (%s) while %s, and not by its submitter or a membership change", r.p.RequestID, twokey.Clip(p.Reason), r.state)
		}
		r.state = gate.StateCancelled
		v.rep.Cancelled++
		return nil
	}
	return v.fail(CheckState, "kind %s is not one the gateway writes", m.Kind)
}

// decision checks the decision facts a gateway record signs for r: the M
// it was frozen at, the rule that set it and the endpoint it was matched
// on. The endpoint must fit the request's URL and the export's base URL;
// M and the rule must be what the rules in force at submission give for
// it. must says whether the record has to carry them (gate.executed and
// gate.failed do).
func (v *verifier) decision(r *request, must bool) error {
	var q struct {
		RequiredApprovals *int       `json:"required_approvals"`
		Rule              *gate.Rule `json:"rule"`
		Endpoint          *string    `json:"endpoint"`
		Pattern           string     `json:"pattern"`
	}
	if err := v.decode(&q); err != nil {
		return err
	}
	if q.RequiredApprovals == nil || q.Endpoint == nil {
		if !must {
			return nil
		}
		return v.fail(CheckDecision, "it does not state the decision the gateway signs for request %s (required_approvals, rule, endpoint), so its M cannot be checked", r.p.RequestID)
	}
	if r.problem != "" {
		return v.fail(CheckDecision, "%s", r.problem)
	}
	if *q.Endpoint != r.endpoint || q.Pattern != r.pattern {
		return v.fail(CheckDecision, "it signs endpoint %q (pattern %q) for request %s, but the gateway's first record closing it signed %q (pattern %q)",
			twokey.Clip(*q.Endpoint), twokey.Clip(q.Pattern), r.p.RequestID, twokey.Clip(r.endpoint), twokey.Clip(r.pattern))
	}
	sameRule := (q.Rule == nil) == (r.rule == nil) && (q.Rule == nil || *q.Rule == *r.rule)
	if *q.RequiredApprovals != r.required || !sameRule {
		return v.fail(CheckDecision, "it signs M %d (%s) for request %s (%s %s %s), but the rules in force at its submission (record %d) give M %d (%s)",
			*q.RequiredApprovals, ruleText(q.Rule), r.p.RequestID, r.p.Method, r.p.Service, twokey.Clip(r.endpoint), r.seq, r.required, ruleText(r.rule))
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func ruleText(r *gate.Rule) string {
	if r == nil {
		return "the conversation's default"
	}
	return "rule " + r.String()
}

// signedEndpoints reads ahead: for each request, the endpoint that the
// first gateway record closing it signs (only records whose signature is
// the gateway's count; each is checked in full when its turn comes). M
// is matched on this endpoint from the request's submission on.
// signedFacts is what a gateway record closing a request signs about how
// it matched the rules.
type signedFacts struct{ endpoint, pattern string }

func signedEndpoints(x *Export) map[string]signedFacts {
	out := map[string]signedFacts{}
	for i := range x.Records {
		switch x.Records[i].Kind {
		case conversation.KindGateExecuted, conversation.KindGateFailed, conversation.KindGateExpired,
			conversation.KindGateRejected, conversation.KindGateCancelled:
		default:
			continue
		}
		m, err := conversation.Verify(x.Records[i].Envelope)
		if err != nil || m.Author != x.Gateway || m.Kind != x.Records[i].Kind {
			continue
		}
		var q struct {
			RequestID string  `json:"request_id"`
			Endpoint  *string `json:"endpoint"`
			Pattern   string  `json:"pattern"`
		}
		if json.Unmarshal(m.Payload, &q) != nil || q.Endpoint == nil {
			continue
		}
		if _, seen := out[q.RequestID]; !seen {
			out[q.RequestID] = signedFacts{*q.Endpoint, q.Pattern}
		}
	}
	return out
}

// approvers checks the approvers a gateway record lists for r: distinct,
// each a signer of r who approved r's exact digest in this log before it,
// at least M of them.
func (v *verifier) approvers(r *request, list []string) error {
	seen := map[string]bool{}
	for _, a := range list {
		if seen[a] {
			return v.fail(CheckThreshold, "approver %s is listed twice for request %s", twokey.Clip(a), r.p.RequestID)
		}
		seen[a] = true
		if !slices.Contains(r.approvals, a) || !slices.Contains(r.signers, a) {
			return v.fail(CheckThreshold, "approver %s of request %s has no valid approval of it in the log", twokey.Clip(a), r.p.RequestID)
		}
	}
	if len(seen) < r.required {
		return v.fail(CheckThreshold, "request %s lists %d approvers; it needs M %d (%s)", r.p.RequestID, len(seen), r.required, ruleText(r.rule))
	}
	return nil
}

// changed checks a member.changed against the proposal it applies.
func (v *verifier) changed() error {
	var p gate.ChangedPayload
	if err := v.decode(&p); err != nil {
		return err
	}
	prop := v.proposals[p.ProposalID]
	if prop == nil {
		return v.fail(CheckState, "it applies proposal %s, which is not open", twokey.Clip(p.ProposalID))
	}
	if !prop.Done() {
		missing := []string{}
		for _, k := range prop.Needed {
			if !slices.Contains(prop.Approvals, k) {
				missing = append(missing, conversation.ShortKey(k))
			}
		}
		return v.fail(CheckThreshold, "proposal %s still lacks the approval of %s", prop.ID, strings.Join(missing, ", "))
	}
	_, cfg, members, err := gate.Propose(v.cfg, v.st.Members, prop.Proposer, prop.Payload, prop.Digest)
	if err != nil {
		return v.fail(CheckState, "%s", twokey.ErrorMessage(err))
	}
	if !slices.Equal(p.Signers, cfg.Signers) || !slices.Equal(p.Members, members) ||
		p.RequiredApprovals != cfg.RequiredApprovals || !slices.Equal(p.Rules, cfg.Rules) {
		return v.fail(CheckState, "it states signers, members, M or rules other than proposal %s leads to", prop.ID)
	}
	v.cfg, v.st.Members = cfg, members
	v.proposals = map[string]*gate.Proposal{}
	v.rep.MembershipChanges++
	var group []follow
	for id, r := range v.requests {
		if r.state == gate.StatePending {
			group = append(group, follow{kind: conversation.KindGateCancelled, id: id, reason: gate.ReasonMembershipChanged})
		}
	}
	if len(group) > 0 {
		// These come before anything else, right after this record.
		v.expect = append([][]follow{group}, v.expect...)
	}
	return nil
}

func (v *verifier) finish() (*Report, error) {
	if v.st == nil {
		return nil, v.fail(CheckFormat, "the export holds no records")
	}
	if len(v.expect) > 0 {
		f := v.expect[0][0]
		return nil, v.fail(CheckState, "the log ends before the gateway's %s %s, which it writes in the same commit as this record", f.kind, f.id)
	}
	for seq, as := range v.anchors {
		if seq > v.seq {
			return nil, v.fail(CheckCheckpoint, "%s is at seq %d, but the log ends at %d: records were cut from its end", as[0].From, seq, v.seq)
		}
	}
	rep := &v.rep
	rep.Conversation, rep.Name = v.st.ID, v.st.Name
	rep.Records, rep.Chain = v.seq, v.chain.String()
	rep.Members, rep.Signers, rep.Required, rep.Rules = len(v.st.Members), len(v.cfg.Signers), v.cfg.RequiredApprovals, len(v.cfg.Rules)
	rep.Shadows = gate.Shadows(v.cfg.Rules)
	for _, r := range v.requests {
		switch r.state {
		case gate.StatePending:
			rep.Pending++
		case gate.StateExecuting:
			rep.Executing++
		}
	}
	slices.Sort(rep.Checkpoints)
	slices.Sort(rep.Anchors)
	return rep, nil
}
