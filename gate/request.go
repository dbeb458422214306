// Package gate is the rule book of twokey: threshold rules and their
// specificity, the request state machine (pending, executing, executed or
// closed), vote counting per distinct signer key bound to the request's
// digest, and governed membership proposals. It decides; it performs no
// I/O. The engine stores what it decides and makes the calls.
package gate

import (
	"slices"
	"time"

	"github.com/twokey/twokey"
)

// Request states (PROTOCOL 5).
const (
	StatePending   = "pending"
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

// Open reports whether the request still takes votes.
func (r *Request) Open() bool { return r.State == StatePending }

// Terminal reports whether the request has ended.
func (r *Request) Terminal() bool { return Settled(r.State) }

// Settled reports whether a request state is final: executed, failed,
// expired, rejected or cancelled.
func Settled(state string) bool { return state != StatePending && state != StateExecuting }

// Outcome is what a vote does to a request.
type Outcome int

const (
	// Recorded means the vote counted and the request stays pending.
	Recorded Outcome = iota
	// Execute means this vote reached M: the caller executes, exactly once.
	Execute
	// Reject means M can no longer be reached.
	Reject
)

// IsSigner reports whether key is one of the request's signers.
func (r *Request) IsSigner(key string) bool { return slices.Contains(r.Signers, key) }

// Check validates a vote by signer with digest at now without changing r.
func (r *Request) Check(signer, digest string, now time.Time) error {
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
	if !r.Open() {
		return twokey.Errorf(twokey.ERequestClosed, "request %s is %s; it takes no more votes", r.ID, r.State)
	}
	if slices.Contains(r.Approvals, signer) || slices.Contains(r.Rejections, signer) {
		return twokey.Errorf(twokey.EAlreadyVoted, "you have already voted on request %s", r.ID)
	}
	return nil
}

// Vote applies an approval or rejection already passed by Check and says
// what follows. The caller that receives Execute is the one that executes.
func (r *Request) Vote(signer string, approve bool) Outcome {
	if approve {
		r.Approvals = append(r.Approvals, signer)
		if r.Count() >= r.Required {
			r.State = StateExecuting
			return Execute
		}
		return Recorded
	}
	r.Rejections = append(r.Rejections, signer)
	if len(r.Signers)-len(r.Rejections) < r.Required {
		r.State = StateRejected
		return Reject
	}
	return Recorded
}

// Count returns the number of distinct current signers that approved.
func (r *Request) Count() int {
	n := 0
	seen := map[string]bool{}
	for _, a := range r.Approvals {
		if !seen[a] && r.IsSigner(a) {
			seen[a] = true
			n++
		}
	}
	return n
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
