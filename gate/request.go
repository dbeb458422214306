// Package gate is the rule book of twokey: threshold rules and their
// specificity, the request state machine (pending, executing, executed or
// closed), vote counting per distinct signer key bound to the request's
// digest, and governed membership proposals. It decides; it performs no
// I/O. The engine stores what it decides and makes the calls.
package gate

import (
	"maps"
	"slices"
	"time"

	"github.com/twokey/twokey"
)

// Request states (PROTOCOL 5 and 9).
const (
	StatePending   = "pending"
	StateApproved  = "approved" // met its requirement; waiting out its cool-off
	StateExecuting = "executing"
	StateExecuted  = "executed"
	StateFailed    = "failed"
	StateExpired   = "expired"
	StateRejected  = "rejected"
	StateCancelled = "cancelled"
)

// Request is one proposed call and its votes. Everything that decides it
// (signers, M, digest) is frozen at submission.
type Request struct {
	ID           string         `json:"request_id"`
	Conversation string         `json:"conversation"`
	Submitter    string         `json:"submitter"` // key id, or the gateway's for a program request
	Program      string         `json:"program,omitempty"`
	KeyPrefix    string         `json:"key_prefix,omitempty"` // a program request's: the display prefix of the key it came with
	Payload      RequestPayload `json:"payload"`
	Digest       string         `json:"request_digest"`
	Endpoint     string         `json:"endpoint"`
	Pattern      string         `json:"pattern,omitempty"` // the named template's endpoint pattern
	Signers      []string       `json:"signers"`
	Required     int            `json:"required_approvals"`
	Rule         *Rule          `json:"rule,omitempty"`
	Approvals    []string       `json:"approvals"`
	Rejections   []string       `json:"rejections"`
	State        string         `json:"state"`
	ExpiresAt    time.Time      `json:"expires_at"`
	SubmittedSeq uint64         `json:"submitted_seq"`
	Result       *Result        `json:"result,omitempty"`

	// Policy is what the request needs (PROTOCOL 9), fixed at submission
	// from its rule; a request stored before policies has none (Needs
	// fills it in). Groups is the groups in force then: a change of them
	// cancels the request, so they stay its groups.
	Policy *Policy             `json:"policy,omitempty"`
	Groups map[string][]string `json:"groups,omitempty"`
	// Approvers and Assignment are fixed when the requirement is met: the
	// counted approvers in the order they approved and, with require,
	// the slot each key filled.
	Approvers  []string          `json:"approvers,omitempty"`
	Assignment map[string]string `json:"assignment,omitempty"`
	// ExecutableAt is when an approved request executes: gate.approved's
	// received_at plus the delay. Vetoes are the rejections recorded while
	// approved.
	ExecutableAt time.Time `json:"executable_at,omitzero"`
	ApprovedSeq  uint64    `json:"approved_seq,omitempty"`
	Vetoes       []string  `json:"vetoes,omitempty"`
}

// Needs is the request's policy: the one fixed at submission, or for a
// request from before policies, M with the defaults.
func (r *Request) Needs() Policy {
	if r.Policy != nil {
		return *r.Policy
	}
	return DefaultPolicy(r.Required)
}

// Result is how a request ended.
type Result struct {
	Status     int      `json:"status,omitempty"`
	DurationMS int64    `json:"duration_ms,omitempty"`
	Approvers  []string `json:"approvers,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Detail     string   `json:"detail,omitempty"` // more than the reason, for a person (as in gate.failed)
	Seq        uint64   `json:"seq,omitempty"`    // the record that closed it
	BodyDigest string   `json:"body_digest,omitempty"`
}

// Open reports whether the request still takes votes: pending, or
// approved and in its cool-off.
func (r *Request) Open() bool { return r.State == StatePending || r.State == StateApproved }

// OpenAt reports whether the request is open at now: pending, or approved
// with its cool-off not yet over (at executable_at it is the executor's:
// no cancel or membership change ends it then, PROTOCOL 9).
func (r *Request) OpenAt(now time.Time) bool {
	return r.State == StatePending || (r.State == StateApproved && now.Before(r.ExecutableAt))
}

// Terminal reports whether the request has ended.
func (r *Request) Terminal() bool { return Settled(r.State) }

// Settled reports whether a request state is final: executed, failed,
// expired, rejected or cancelled.
func Settled(state string) bool {
	return state != StatePending && state != StateExecuting && state != StateApproved
}

// Outcome is what a vote does to a request.
type Outcome int

const (
	// Recorded means the vote counted and the request stays as it was.
	Recorded Outcome = iota
	// Execute means this vote met the requirement: the caller executes,
	// exactly once.
	Execute
	// Reject means the requirement can no longer be met.
	Reject
	// CoolOff means this vote met the requirement of a rule with a delay:
	// the request is approved, and the caller writes gate.approved.
	CoolOff
	// Vetoed means this rejection, during the cool-off, reached the veto.
	Vetoed
)

// IsSigner reports whether key is one of the request's signers.
func (r *Request) IsSigner(key string) bool { return slices.Contains(r.Signers, key) }

// Check validates a vote by signer with digest at now without changing r.
// approve says which vote: during the cool-off a signer who approved may
// still reject (a veto), once.
func (r *Request) Check(signer, digest string, approve bool, now time.Time) error {
	if !r.IsSigner(signer) {
		return twokey.Errorf(twokey.ENotSigner, "you are not a signer of request %s", r.ID)
	}
	if digest != r.Digest {
		return twokey.Errorf(twokey.EDigestMismatch, "request_digest does not match request %s (you may be approving a different version of it); re-read the request and sign its digest %s", r.ID, r.Digest)
	}
	if r.State == StatePending && !now.Before(r.ExpiresAt) {
		return twokey.Errorf(twokey.ERequestExpired, "request %s expired at %s", r.ID, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if r.State == StateExpired {
		return twokey.Errorf(twokey.ERequestExpired, "request %s expired at %s", r.ID, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if r.State == StateApproved && !now.Before(r.ExecutableAt) {
		return twokey.Errorf(twokey.ERequestClosed, "request %s's cool-off ended at %s; it takes no more votes", r.ID, r.ExecutableAt.UTC().Format(time.RFC3339))
	}
	if !r.Open() {
		return twokey.Errorf(twokey.ERequestClosed, "request %s is %s; it takes no more votes", r.ID, r.State)
	}
	ownApproval := approve && signer == r.Submitter && !r.Needs().SubmitterCounts
	if r.State == StateApproved {
		if slices.Contains(r.Vetoes, signer) || ownApproval || (approve && (slices.Contains(r.Approvals, signer) || slices.Contains(r.Rejections, signer))) {
			return twokey.Errorf(twokey.EAlreadyVoted, "you have already voted on request %s", r.ID)
		}
		return nil
	}
	if ownApproval {
		return twokey.Errorf(twokey.EAlreadyVoted, "you submitted request %s, and its rule does not count the submitter's approval; the other signers decide it (you may cancel it)", r.ID)
	}
	if slices.Contains(r.Approvals, signer) || slices.Contains(r.Rejections, signer) {
		return twokey.Errorf(twokey.EAlreadyVoted, "you have already voted on request %s", r.ID)
	}
	return nil
}

// Vote applies an approval or rejection already passed by Check and says
// what follows (PROTOCOL 5 and 9). The caller that receives Execute is
// the one that executes; the one that receives CoolOff writes
// gate.approved and sets the time with Approve.
func (r *Request) Vote(signer string, approve bool) Outcome {
	p := r.Needs()
	if r.State == StateApproved {
		if approve {
			r.Approvals = append(r.Approvals, signer) // recorded; it changes nothing
			return Recorded
		}
		r.Vetoes = append(r.Vetoes, signer)
		if len(r.Vetoes) >= p.Veto {
			r.State = StateRejected
			return Vetoed
		}
		return Recorded
	}
	if approve {
		r.Approvals = append(r.Approvals, signer)
		asg, ok := Match(p, r.Groups, r.counted(), r.Submitter)
		if !ok {
			return Recorded
		}
		r.Approvers, r.Assignment = r.counted(), asg
		if p.DelaySeconds > 0 {
			r.State = StateApproved
			return CoolOff
		}
		r.State = StateExecuting
		return Execute
	}
	r.Rejections = append(r.Rejections, signer)
	if !Reachable(p, r.Groups, r.counted(), r.undecided(), r.Submitter) {
		r.State = StateRejected
		return Reject
	}
	return Recorded
}

// Approve starts the cool-off of a request Vote left approved: it
// executes at at (gate.approved's received_at) plus the delay.
func (r *Request) Approve(at time.Time, seq uint64) {
	r.ExecutableAt = at.Add(time.Duration(r.Needs().DelaySeconds) * time.Second).Truncate(time.Millisecond)
	r.ApprovedSeq = seq
}

// Due reports whether an approved request's cool-off is over at now.
func (r *Request) Due(now time.Time) bool {
	return r.State == StateApproved && !now.Before(r.ExecutableAt)
}

// StartExecution moves an approved request whose cool-off is over to
// executing; the caller executes it, exactly once.
func (r *Request) StartExecution() { r.State = StateExecuting }

// Count returns the number of distinct counted approvals: current signers,
// and not the submitter when the rule says the submitter does not count.
func (r *Request) Count() int { return len(r.counted()) }

// counted lists the distinct counted approvals in the order they came.
func (r *Request) counted() []string {
	p := r.Needs()
	out := make([]string, 0, len(r.Approvals))
	for _, a := range r.Approvals {
		if r.IsSigner(a) && !slices.Contains(out, a) && (p.SubmitterCounts || a != r.Submitter) {
			out = append(out, a)
		}
	}
	return out
}

// Counted is counted for readers: the approvers that count, in order.
func (r *Request) Counted() []string { return r.counted() }

// undecided lists the signers who have neither approved nor rejected.
func (r *Request) undecided() []string {
	var out []string
	for _, s := range r.Signers {
		if !slices.Contains(r.Approvals, s) && !slices.Contains(r.Rejections, s) {
			out = append(out, s)
		}
	}
	return out
}

// Clone returns a deep copy.
func (r *Request) Clone() *Request {
	c := *r
	c.Signers = slices.Clone(r.Signers)
	c.Approvals = cloneRoom(r.Approvals)
	c.Rejections = cloneRoom(r.Rejections)
	if r.Rule != nil {
		rule := *r.Rule
		c.Rule = &rule
	}
	if r.Result != nil {
		res := *r.Result
		c.Result = &res
	}
	// Policy and Groups are never edited after submission: shared.
	c.Approvers = slices.Clone(r.Approvers)
	c.Assignment = maps.Clone(r.Assignment)
	c.Vetoes = slices.Clone(r.Vetoes)
	return &c
}

// cloneRoom copies votes with room for one more, so that the Vote that
// follows a Clone (copy on write) does not copy them again. nil stays nil.
func cloneRoom(votes []string) []string {
	if len(votes) == 0 {
		return votes[:0:0]
	}
	return append(make([]string, 0, len(votes)+1), votes...)
}
