package audit

import (
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
	CheckFormat     Check = gate.ViolationFormat    // the export itself is malformed or incomplete
	CheckSeq        Check = "seq"                   // a record is missing, repeated or out of order
	CheckSignature  Check = "signature"             // the envelope does not verify
	CheckRecord     Check = "record"                // kind, author, body or time disagree with the envelope
	CheckChain      Check = "chain"                 // the chain value is not SHA-256(prev || SHA-256(PAE))
	CheckGateway    Check = "gateway"               // a gateway kind not signed by the gateway, or the reverse
	CheckBinding    Check = "binding"               // the payload names another conversation or gateway
	CheckAuthority  Check = gate.ViolationAuthority // the author may not say this (not a member, signer, admin...)
	CheckThreshold  Check = gate.ViolationThreshold // an execution or change without the approvals it needs
	CheckDecision   Check = gate.ViolationDecision  // the M, rule or endpoint the gateway signed is not what the rules, URL and catalog give
	CheckOnce       Check = gate.ViolationOnce      // something that happens once happened twice
	CheckState      Check = gate.ViolationState     // the record contradicts the gate's state at that point
	CheckCheckpoint Check = "checkpoint"            // the chain differs from one the gateway signed or the auditor kept
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

// Verify re-checks x and returns a report, or the first *Failure.
func Verify(x *Export, opt Options) (*Report, error) {
	v := &verifier{x: x, gw: x.Gateway, anchors: map[uint64][]Anchor{}, once: map[string]bool{}, fold: gate.NewFold(x.Gateway)}
	v.fold.Resolve = v.resolve
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

type verifier struct {
	x       *Export
	gw      string
	anchors map[uint64][]Anchor
	rep     Report

	seq   uint64
	chain conversation.Chain
	rec   *conversation.Record
	at    time.Time

	// fold is the log's meaning so far: members, gate, requests, proposals.
	fold    *gate.Fold
	decided map[string]signedFacts // request id -> what the gateway's first closing record of it signs
	// once holds each member's signed payloads ("author/digest"): the
	// server accepts each once (PROTOCOL 2).
	once map[string]bool
}

func (v *verifier) fail(check Check, format string, args ...any) error {
	f := &Failure{Check: check, Reason: fmt.Sprintf(format, args...)}
	if v.rec != nil {
		f.Seq, f.Kind = v.rec.Seq, v.rec.Kind
	}
	return f
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
		if m.Kind == conversation.KindConversationCreate && m.Header.Conversation != v.x.Conversation {
			return v.fail(CheckBinding, "it founds conversation %s, but the export is of %s", twokey.Clip(m.Header.Conversation), twokey.Clip(v.x.Conversation))
		}
		return v.replay(m, r.Seq)
	}
	if m.Header.Conversation != v.fold.ID {
		return v.fail(CheckBinding, "its payload is for conversation %s, not %s", twokey.Clip(m.Header.Conversation), v.fold.ID)
	}
	if conversation.NeedsGateway(m.Kind) && m.Author != v.gw && m.Header.Gateway != v.gw {
		return v.fail(CheckBinding, "its payload is bound to gateway %q, not %s", twokey.Clip(m.Header.Gateway), v.gw)
	}
	if conversation.GatewayKind(m.Kind) && m.Header.Gateway != "" && m.Header.Gateway != v.gw {
		return v.fail(CheckBinding, "the gateway's record names gateway %q", twokey.Clip(m.Header.Gateway))
	}
	return v.replay(m, r.Seq)
}

func (v *verifier) finish() (*Report, error) {
	f := v.fold
	if f.ID == "" {
		return nil, v.fail(CheckFormat, "the export holds no records")
	}
	if owed := f.Pending(); len(owed) > 0 {
		return nil, v.fail(CheckState, "the log ends before the gateway's %s, which it writes in the same commit as this record", owed[0])
	}
	for seq, as := range v.anchors {
		if seq > v.seq {
			return nil, v.fail(CheckCheckpoint, "%s is at seq %d, but the log ends at %d: records were cut from its end", as[0].From, seq, v.seq)
		}
	}
	rep := &v.rep
	rep.Conversation, rep.Name = f.ID, f.Name
	rep.Records, rep.Chain = v.seq, v.chain.String()
	rep.Members, rep.Signers, rep.Required, rep.Rules = len(f.Members), len(f.Gate.Signers), f.Gate.RequiredApprovals, len(f.Gate.Rules)
	rep.Shadows = gate.Shadows(f.Gate.Rules)
	for _, r := range f.Requests {
		switch r.State {
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
