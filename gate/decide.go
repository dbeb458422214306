package gate

import (
	"slices"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
)

// The decisions below are shared by the engine, which makes them on live
// messages, and by Fold, which makes them again on a log: one meaning per
// kind, so the gateway and whoever reads its log cannot disagree.

// NewRequest is the request a gate.request makes under cfg (PROTOCOL 5):
// the signers frozen, M and the rule that set it from the rules for t, and
// the submitter's own approval counted, unless program names the program a
// gateway-written request is for (a program's request has no approval).
// It returns Execute when that approval alone reaches M.
func NewRequest(cfg Config, conv string, p RequestPayload, digest, submitter, program string, t Target, exp time.Time, seq uint64) (*Request, Outcome) {
	// rule points into cfg.Rules, which a change replaces and never edits.
	required, rule := Threshold(cfg.RequiredApprovals, cfg.Rules, t)
	r := &Request{
		ID: p.RequestID, Conversation: conv, Submitter: submitter, Program: program, Payload: p,
		Digest: digest, Endpoint: t.Path, Pattern: t.Pattern, Signers: slices.Clone(cfg.Signers), Required: required,
		Rule: rule, Approvals: []string{}, Rejections: []string{}, State: StatePending, ExpiresAt: exp,
		SubmittedSeq: seq,
	}
	pol := PolicyOf(required, rule)
	r.Policy = &pol
	if len(pol.Require) > 0 {
		r.Groups = CloneGroups(cfg.Groups)
	}
	if program != "" || !pol.SubmitterCounts {
		return r, Recorded
	}
	return r, r.Vote(submitter, true)
}

// CheckSubmission refuses a gate.request that the policy r was given
// cannot take (PROTOCOL 9): a reason over 1,000 characters, none where the
// rule requires one, or a requirement the signers cannot meet without its
// submitter (which names the group). All are bad_payload.
func (r *Request) CheckSubmission() error {
	p := r.Needs()
	if err := CheckReason("reason", r.Payload.Reason); err != nil {
		return err
	}
	if p.ReasonRequired && r.Payload.Reason == "" {
		return twokey.Errorf(twokey.EBadPayload, "%s requires a reason: say why with --reason (1 to %d characters)", ruleText(r.Rule), MaxReasonChars)
	}
	if !p.SubmitterCounts || r.Program != "" {
		if err := CheckSubmitter(p, r.Groups, r.Signers, r.Submitter); err != nil {
			return twokey.Errorf(twokey.EBadPayload, "%s: %s", ruleText(r.Rule), twokey.ErrorMessage(err))
		}
	}
	return nil
}

// PendingOf counts the pending requests of reqs that one submitter (and,
// for the gateway, one program) holds open; MaxPendingPerSigner caps it.
func PendingOf(reqs map[string]*Request, submitter, program string) int {
	n := 0
	for _, r := range reqs {
		if r.Submitter == submitter && r.Program == program && r.State == StatePending {
			n++
		}
	}
	return n
}

// CheckCancel validates a gate.cancel of r by author at now: only its
// submitter may, and only while it is pending or in its cool-off.
func (r *Request) CheckCancel(author string, now time.Time) error {
	if r.Submitter != author {
		return twokey.Errorf(twokey.EForbidden, "only the submitter of request %s may cancel it", r.ID)
	}
	if !r.OpenAt(now) {
		return twokey.Errorf(twokey.ERequestClosed, "request %s is %s; it can no longer be cancelled", r.ID, r.State)
	}
	return nil
}

// PolicyOf is the requirement a rule gives, or where no rule applies, the
// default M with the defaults: what the state object's policy says.
func PolicyOf(m int, rule *Rule) Policy {
	if rule != nil {
		return rule.Policy()
	}
	return DefaultPolicy(m)
}

// CheckApprove validates a member.approve of p by author with digest.
func (p *Proposal) CheckApprove(author, digest string) error {
	if digest != p.Digest {
		return twokey.Errorf(twokey.EDigestMismatch, "proposal_digest does not match proposal %s; re-read it and sign its digest %s", p.ID, p.Digest)
	}
	if !slices.Contains(p.Needed, author) {
		return twokey.Errorf(twokey.ENotSigner, "proposal %s does not need your approval", p.ID)
	}
	if slices.Contains(p.Approvals, author) {
		return twokey.Errorf(twokey.EAlreadyVoted, "you have already approved proposal %s", p.ID)
	}
	return nil
}

// Approve returns a copy of p with author's approval, which CheckApprove
// passed, counted.
func (p *Proposal) Approve(author string) *Proposal {
	np := *p
	np.Approvals = append(slices.Clone(p.Approvals), author)
	return &np
}

// Missing lists the needed signers who have not approved p yet.
func (p *Proposal) Missing() []string {
	var out []string
	for _, k := range p.Needed {
		if !slices.Contains(p.Approvals, k) {
			out = append(out, k)
		}
	}
	return out
}

// CheckRevoke validates the form of a gate.secret.revoke: it names either
// one secret or one service.
func CheckRevoke(p RevokePayload) error {
	if (p.SecretID == "") == (p.Service == "") {
		return twokey.Errorf(twokey.EBadPayload, "gate.secret.revoke names either secret_id or service")
	}
	return nil
}

// Revokes reports whether the revocation p takes the secret id of service.
func (p RevokePayload) Revokes(id, service string) bool {
	return id == p.SecretID || (p.Service != "" && service == p.Service)
}

// closedKinds maps the state a gateway record closes a request in to the
// record's kind.
var closedKinds = map[string]string{
	StateCancelled: conversation.KindGateCancelled, StateExpired: conversation.KindGateExpired,
	StateFailed: conversation.KindGateFailed, StateRejected: conversation.KindGateRejected,
}

// ClosedKind is the kind of the gateway record that ends a request in
// state (cancelled, expired, failed or rejected), or "".
func ClosedKind(state string) string { return closedKinds[state] }

// ClosedState is the state a gate.failed, gate.expired, gate.rejected or
// gate.cancelled record leaves its request in, or "" for another kind.
func ClosedState(kind string) string {
	for s, k := range closedKinds {
		if k == kind {
			return s
		}
	}
	return ""
}
