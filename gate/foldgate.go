package gate

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
)

// The fold's requests, secrets and the gateway's own records.

func (f *Fold) revoke(m *conversation.Message) error {
	var p RevokePayload
	if err := decode(m, &p); err != nil {
		return err
	}
	if CheckRevoke(p) != nil {
		return violate(ViolationState, "a revocation names exactly one of secret_id or service")
	}
	ids := []string{}
	for id, s := range f.Secrets {
		if p.Revokes(id, s.Service) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return violate(ViolationState, "it revokes no stored secret")
	}
	slices.Sort(ids)
	f.revoking, f.revoker = ids, m.Author
	f.expect = append(f.expect, []follow{{kind: conversation.KindGateSecretRevoked}})
	return nil
}

func (f *Fold) submit(m *conversation.Message, seq uint64, at time.Time) (Step, error) {
	var p RequestPayload
	if err := decode(m, &p); err != nil {
		return Step{}, err
	}
	if p.RequestID == "" {
		return Step{}, violate(ViolationState, "the request has no request_id")
	}
	if q := f.Requests[p.RequestID]; q != nil {
		return Step{}, violate(ViolationOnce, "request id %s was already submitted at record %d", p.RequestID, q.SubmittedSeq)
	}
	exp, err := conversation.ParseTime(p.ExpiresAt)
	if err != nil {
		return Step{}, violate(ViolationState, "expires_at: %s", twokey.ErrorMessage(err))
	}
	if !exp.After(at) || exp.After(at.Add(twokey.MaxRequestTTL+time.Second)) {
		return Step{}, violate(ViolationState, "expires_at %s is not between the record's time %s and %s later", p.ExpiresAt, conversation.FormatTime(at), twokey.MaxRequestTTL)
	}
	t := Target{Service: p.Service, Method: p.Method}
	problem := ""
	if f.Resolve != nil {
		if t, problem, err = f.Resolve(&p); err != nil {
			return Step{}, violate(ViolationFormat, "%v", err)
		}
	}
	submitter, program := m.Author, ""
	if m.Author == f.Gateway {
		program = p.Program
	}
	if open := PendingOf(f.Requests, submitter, program); open >= twokey.MaxPendingPerSigner {
		return Step{}, violate(ViolationState, "%s already holds %d pending requests, the most one submitter may", m.Author, open)
	}
	r, out := NewRequest(f.Gate, f.ID, p, m.PayloadDigest(), submitter, program, t, exp, seq)
	if err := r.CheckSubmission(); err != nil {
		return Step{}, violate(ViolationDecision, "the gateway should have refused request %s: %s", r.ID, twokey.ErrorMessage(err))
	}
	if out == CoolOff {
		f.expect = append(f.expect, []follow{{kind: conversation.KindGateApproved, id: r.ID}})
	}
	if problem != "" {
		f.problems[r.ID] = problem
	}
	f.Requests[r.ID] = r
	return Step{Request: r}, nil
}

func (f *Fold) vote(m *conversation.Message, at time.Time) (Step, error) {
	var p VotePayload
	if err := decode(m, &p); err != nil {
		return Step{}, err
	}
	r := f.Requests[p.RequestID]
	if r == nil {
		return Step{}, violate(ViolationState, "it votes on request %s, which this log never submitted", twokey.Clip(p.RequestID))
	}
	approve := m.Kind == conversation.KindGateApprove
	if err := CheckReason("reason", p.Reason); err != nil {
		return Step{}, violate(ViolationFormat, "%s", twokey.ErrorMessage(err))
	}
	if err := r.Check(m.Author, p.RequestDigest, approve, at); err != nil {
		switch twokey.ErrorCode(err) {
		case twokey.ENotSigner:
			return Step{}, violate(ViolationAuthority, "%s was not a signer when request %s was submitted", m.Author, r.ID)
		case twokey.EDigestMismatch:
			return Step{}, violate(ViolationState, "its request_digest is not the digest of request %s as signed at record %d: it approves another version of the request", r.ID, r.SubmittedSeq)
		case twokey.ERequestExpired:
			return Step{}, violate(ViolationState, "request %s expired at %s, before this vote (%s)", r.ID, r.Payload.ExpiresAt, conversation.FormatTime(at))
		case twokey.EAlreadyVoted:
			return Step{}, violate(ViolationThreshold, "%s votes on request %s a second time", m.Author, r.ID)
		}
		if r.State == StateApproved {
			return Step{}, violate(ViolationState, "request %s's cool-off ended at %s, before this vote (%s)", r.ID, conversation.FormatTime(r.ExecutableAt), conversation.FormatTime(at))
		}
		return Step{}, violate(ViolationState, "request %s is already %s: a vote after resolution", r.ID, r.State)
	}
	r = r.Clone()
	switch r.Vote(m.Author, approve) {
	case Reject:
		f.closing[r.ID] = ReasonRejected
		f.expect = append(f.expect, []follow{{kind: conversation.KindGateRejected, id: r.ID, reason: ReasonRejected}})
	case Vetoed:
		f.closing[r.ID] = ReasonVetoed
		f.expect = append(f.expect, []follow{{kind: conversation.KindGateRejected, id: r.ID, reason: ReasonVetoed}})
	case CoolOff:
		f.expect = append(f.expect, []follow{{kind: conversation.KindGateApproved, id: r.ID}})
	}
	f.Requests[r.ID] = r
	return Step{Request: r}, nil
}

// gatewayRecord applies a record the gateway wrote.
func (f *Fold) gatewayRecord(m *conversation.Message, seq uint64, at time.Time) (Step, error) {
	switch m.Kind {
	case conversation.KindGateSecretStored:
		var p SecretStoredPayload
		if err := decode(m, &p); err != nil {
			return Step{}, err
		}
		if !f.Gate.IsSigner(p.ProvisionedBy) {
			return Step{}, violate(ViolationAuthority, "the secret was provisioned by %s, not a signer", twokey.Clip(p.ProvisionedBy))
		}
		if _, dup := f.Secrets[p.SecretID]; dup || p.SecretID == "" || f.used["secret/"+p.SecretID] {
			return Step{}, violate(ViolationOnce, "secret id %q is empty or was already used: a secret id is stored once, and a revoked one never again", twokey.Clip(p.SecretID))
		}
		f.used["secret/"+p.SecretID] = true
		f.Secrets[p.SecretID] = &SecretInfo{ID: p.SecretID, Service: p.Service, HeaderName: p.HeaderName,
			HeaderTemplate: p.HeaderTemplate, ExpiresAt: string(p.ExpiresAt), ProvisionedBy: p.ProvisionedBy, Seq: seq}
		return Step{}, nil
	case conversation.KindGateSecretRevoked:
		var p RevokedPayload
		if err := decode(m, &p); err != nil {
			return Step{}, err
		}
		got := slices.Sorted(slices.Values(p.SecretIDs))
		if f.revoking == nil || !slices.Equal(got, f.revoking) || p.By != f.revoker {
			return Step{}, violate(ViolationState, "it does not state the secrets the revocation before it names")
		}
		for _, id := range got {
			delete(f.Secrets, id)
		}
		f.revoking = nil
		return Step{}, nil
	case conversation.KindMemberChanged:
		return f.changed(m, at)
	}
	var p ClosedPayload
	if err := decode(m, &p); err != nil {
		return Step{}, err
	}
	r := f.Requests[p.RequestID]
	if r == nil {
		return Step{}, violate(ViolationState, "it is about request %s, which this log never submitted", twokey.Clip(p.RequestID))
	}
	switch m.Kind {
	case conversation.KindGateApproved:
		return f.approved(m, r, seq, at)
	case conversation.KindGateExecuted, conversation.KindGateFailed:
		switch r.State {
		case StateApproved:
			if r.ApprovedSeq == 0 {
				return Step{}, violate(ViolationState, "request %s met its requirement but has no gate.approved before its execution", r.ID)
			}
			if at.Before(r.ExecutableAt) {
				return Step{}, violate(ViolationState, "request %s executed at %s, before its cool-off ended at %s", r.ID, conversation.FormatTime(at), conversation.FormatTime(r.ExecutableAt))
			}
		case StateExecuting, StatePending:
		case StateExecuted, StateFailed:
			return Step{}, violate(ViolationOnce, "request %s already ended (%s): it would have executed twice", r.ID, r.State)
		default:
			return Step{}, violate(ViolationState, "request %s was already %s", r.ID, r.State)
		}
		if err := f.decision(m, r, true); err != nil {
			return Step{}, err
		}
		if r.State == StatePending {
			return Step{}, violate(ViolationThreshold, "request %s reached execution with %d of the %d distinct approvals it needs (%s)", r.ID, r.Count(), r.Required, ruleText(r.Rule))
		}
		var q ExecutedPayload
		if err := decode(m, &q); err != nil {
			return Step{}, err
		}
		if m.Kind == conversation.KindGateExecuted || len(q.Approvers) > 0 {
			if err := approvers(r, q.Approvers, q.Assignment); err != nil {
				return Step{}, err
			}
			if r.ApprovedSeq != 0 && (!sameSet(q.Approvers, r.Approvers) || !maps.Equal(q.Assignment, r.Assignment)) {
				return Step{}, violate(ViolationThreshold, "it lists approvers or an assignment for request %s other than its gate.approved (record %d) fixed", r.ID, r.ApprovedSeq)
			}
		}
		r = r.Clone()
		r.Result = &Result{Approvers: q.Approvers, Seq: seq}
		if m.Kind == conversation.KindGateExecuted {
			r.State = StateExecuted
			r.Result.Status, r.Result.DurationMS = q.Status, q.DurationMS
			f.expect = append(f.expect, []follow{{kind: conversation.KindGateResponse, id: r.ID}})
		} else {
			r.State = StateFailed
			r.Result.Reason, r.Result.Detail = p.Reason, p.Detail
		}
		f.Requests[r.ID] = r
		return Step{Request: r}, nil
	case conversation.KindGateResponse:
		var q ResponsePayload
		if err := decode(m, &q); err != nil {
			return Step{}, err
		}
		if r.State != StateExecuted || f.responded[r.ID] {
			return Step{}, violate(ViolationOnce, "a response for request %s, which is %s or already answered", r.ID, r.State)
		}
		// The digest is over the body's bytes: the text itself, or what
		// its base64 decodes to (body_encoding base64, PROTOCOL 5).
		body, err := q.BodyBytes()
		if err != nil {
			return Step{}, violate(ViolationFormat, "%v", err)
		}
		if !q.Truncated && q.BodyDigest != conversation.Digest(body) {
			return Step{}, violate(ViolationState, "body_digest is not the digest of the (whole, untruncated) body")
		}
		f.responded[r.ID] = true
		r = r.Clone()
		r.Result.BodyDigest = q.BodyDigest
		f.Requests[r.ID] = r
		return Step{Request: r}, nil
	case conversation.KindGateExpired:
		if err := f.decision(m, r, false); err != nil {
			return Step{}, err
		}
		if r.State != StatePending {
			return Step{}, violate(ViolationState, "request %s is %s; only a pending request expires", r.ID, r.State)
		}
		if at.Before(r.ExpiresAt.Truncate(time.Millisecond)) {
			return Step{}, violate(ViolationState, "request %s expired at %s, before its expires_at %s", r.ID, conversation.FormatTime(at), r.Payload.ExpiresAt)
		}
	case conversation.KindGateRejected:
		// The gateway signs its decision here too (M decides when a
		// rejection closes a request); checked when present.
		if err := f.decision(m, r, false); err != nil {
			return Step{}, err
		}
		// Reached only as the follow-up of the rejection that made M
		// unreachable (followUp checked it); anything else is not.
		if f.closing[r.ID] == "" || p.Reason != f.closing[r.ID] {
			return Step{}, violate(ViolationState, "request %s is rejected (%s), but its rejections (%d of %d signers, %d vetoes; %s) leave its requirement reachable", r.ID, twokey.Clip(p.Reason), len(r.Rejections), len(r.Signers), len(r.Vetoes), r.Needs().Describe())
		}
		delete(f.closing, r.ID)
	case conversation.KindGateCancelled:
		if err := f.decision(m, r, false); err != nil {
			return Step{}, err
		}
		if !r.OpenAt(at) || (p.Reason != ReasonCancelled && p.Reason != ReasonMembershipChanged) {
			return Step{}, violate(ViolationState, "request %s is cancelled (%s) while %s, and not by its submitter or a membership change", r.ID, twokey.Clip(p.Reason), r.State)
		}
	default:
		return Step{}, violate(ViolationState, "kind %s is not one the gateway writes", m.Kind)
	}
	r = r.Clone()
	r.State = ClosedState(m.Kind)
	r.Result = &Result{Reason: p.Reason, Detail: p.Detail, Seq: seq}
	f.Requests[r.ID] = r
	return Step{Request: r}, nil
}

// decision checks the decision a gateway record signs for r: the M it was
// frozen at, the rule that set it and the endpoint it was matched on must
// be what the rules in force at submission give for the request's target.
// must says whether the record has to carry them (gate.executed and
// gate.failed do).
func (f *Fold) decision(m *conversation.Message, r *Request, must bool) error {
	var q struct {
		RequiredApprovals *int    `json:"required_approvals"`
		Rule              *Rule   `json:"rule"`
		Endpoint          *string `json:"endpoint"`
		Pattern           string  `json:"pattern"`
	}
	if err := decode(m, &q); err != nil {
		return err
	}
	if q.RequiredApprovals == nil || q.Endpoint == nil {
		if !must {
			return nil
		}
		return violate(ViolationDecision, "it does not state the decision the gateway signs for request %s (required_approvals, rule, endpoint), so its M cannot be checked", r.ID)
	}
	if p := f.problems[r.ID]; p != "" {
		return violate(ViolationDecision, "%s", p)
	}
	if *q.Endpoint != r.Endpoint || q.Pattern != r.Pattern {
		return violate(ViolationDecision, "it signs endpoint %q (pattern %q) for request %s, but the gateway's first record closing it signed %q (pattern %q)",
			twokey.Clip(*q.Endpoint), twokey.Clip(q.Pattern), r.ID, twokey.Clip(r.Endpoint), twokey.Clip(r.Pattern))
	}
	sameRule := (q.Rule == nil) == (r.Rule == nil) && (q.Rule == nil || q.Rule.Equal(*r.Rule))
	if *q.RequiredApprovals != r.Required || !sameRule {
		return violate(ViolationDecision, "it signs M %d (%s) for request %s (%s %s %s), but the rules in force at its submission (record %d) give M %d (%s)",
			*q.RequiredApprovals, ruleText(q.Rule), r.ID, r.Payload.Method, r.Payload.Service, twokey.Clip(r.Endpoint), r.SubmittedSeq, r.Required, ruleText(r.Rule))
	}
	return nil
}

// approvers checks the approvers a gateway record lists for r: distinct,
// each a signer of r who approved r's exact digest in this log before it
// and counts under r's policy, together meeting it (PROTOCOL 9: at least M,
// and the slots filled by the assignment stated, which must be valid).
func approvers(r *Request, list []string, assignment map[string]string) error {
	p := r.Needs()
	seen := map[string]bool{}
	for _, a := range list {
		if seen[a] {
			return violate(ViolationThreshold, "approver %s is listed twice for request %s", twokey.Clip(a), r.ID)
		}
		seen[a] = true
		if !slices.Contains(r.Approvals, a) || !r.IsSigner(a) {
			return violate(ViolationThreshold, "approver %s of request %s has no valid approval of it in the log", twokey.Clip(a), r.ID)
		}
		if !p.SubmitterCounts && a == r.Submitter {
			return violate(ViolationThreshold, "approver %s submitted request %s, and its rule does not count the submitter", conversation.ShortKey(a), r.ID)
		}
	}
	if len(seen) < r.Required {
		return violate(ViolationThreshold, "request %s lists %d approvers; it needs M %d (%s)", r.ID, len(seen), r.Required, ruleText(r.Rule))
	}
	if err := CheckAssignment(p, r.Groups, list, assignment); err != nil {
		return violate(ViolationThreshold, "the assignment stated for request %s is not valid: %v (%s)", r.ID, err, p.Describe())
	}
	return nil
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// approved checks a gate.approved: it comes right after the vote (or the
// submission) that met r's requirement under a rule with a delay, states
// approvers who meet it with a valid assignment, and an executable_at that
// is its own received_at plus the delay.
func (f *Fold) approved(m *conversation.Message, r *Request, seq uint64, at time.Time) (Step, error) {
	var q ApprovedPayload
	if err := decode(m, &q); err != nil {
		return Step{}, err
	}
	if r.State != StateApproved || r.ApprovedSeq != 0 {
		return Step{}, violate(ViolationState, "request %s is %s; only the vote that meets a cool-off rule's requirement leads to gate.approved, once", r.ID, r.State)
	}
	if err := f.decision(m, r, true); err != nil {
		return Step{}, err
	}
	if err := approvers(r, q.Approvers, q.Assignment); err != nil {
		return Step{}, err
	}
	r = r.Clone()
	r.Approve(at, seq)
	exec, err := conversation.ParseTime(q.ExecutableAt)
	if err != nil || !exec.Equal(r.ExecutableAt) {
		return Step{}, violate(ViolationState, "executable_at %s is not the record's time %s plus the rule's %d s cool-off", twokey.Clip(q.ExecutableAt), conversation.FormatTime(at), r.Needs().DelaySeconds)
	}
	r.Approvers, r.Assignment = slices.Clone(q.Approvers), maps.Clone(q.Assignment)
	f.Requests[r.ID] = r
	return Step{Request: r}, nil
}

// changed checks a member.changed against the proposal it applies, and
// applies it: pending requests are cancelled next, other proposals void.
func (f *Fold) changed(m *conversation.Message, at time.Time) (Step, error) {
	var p ChangedPayload
	if err := decode(m, &p); err != nil {
		return Step{}, err
	}
	prop := f.Proposals[p.ProposalID]
	if prop == nil {
		return Step{}, violate(ViolationState, "it applies proposal %s, which is not open", twokey.Clip(p.ProposalID))
	}
	if !prop.Done() {
		missing := prop.Missing()
		for i, k := range missing {
			missing[i] = conversation.ShortKey(k)
		}
		return Step{}, violate(ViolationThreshold, "proposal %s still lacks the approval of %s", prop.ID, strings.Join(missing, ", "))
	}
	_, cfg, members, err := Propose(f.Gate, f.Members, prop.Proposer, prop.Payload, prop.Digest)
	if err != nil {
		return Step{}, violate(ViolationState, "%s", twokey.ErrorMessage(err))
	}
	if !slices.Equal(p.Signers, cfg.Signers) || !slices.Equal(p.Members, members) ||
		p.RequiredApprovals != cfg.RequiredApprovals || !RulesEqual(p.Rules, cfg.Rules) || !GroupsEqual(p.Groups, cfg.Groups) {
		return Step{}, violate(ViolationState, "it states signers, members, M, rules or groups other than proposal %s leads to", prop.ID)
	}
	step := f.proposalStep(prop) // against the gate it was made in, this one
	f.Gate, f.Members = cfg, members
	f.Proposals = map[string]*Proposal{}
	var group []follow
	for _, id := range slices.Sorted(maps.Keys(f.Requests)) {
		if f.Requests[id].OpenAt(at) {
			group = append(group, follow{kind: conversation.KindGateCancelled, id: id, reason: ReasonMembershipChanged})
		}
	}
	if len(group) > 0 {
		// These come before anything else, right after this record.
		f.expect = append([][]follow{group}, f.expect...)
	}
	return step, nil
}
