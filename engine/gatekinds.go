package engine

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
	"github.com/twokey/twokey/templates"
	"github.com/twokey/twokey/vault"
)

// gateKind handles the gate.* and member.propose/approve kinds. The
// member's own record is already appended (except for gate.secret); the
// handler validates and appends what the gateway writes in consequence.
func (e *Engine) gateKind(ch *change, m *conversation.Message) error {
	c := ch.c
	if m.Kind == conversation.KindGateEnable {
		return e.enable(ch, m)
	}
	if !c.gate.Enabled {
		return twokey.Errorf(twokey.EGateDisabled, "the gateway is not enabled in %s; its admin enables it with 'twokey gate enable'", c.st.Name)
	}
	if !c.gate.IsSigner(m.Author) {
		return twokey.Errorf(twokey.ENotSigner, "key %s is not a signer of %s", conversation.ShortKey(m.Author), c.st.Name)
	}
	switch m.Kind {
	case conversation.KindGateSecret:
		return e.secret(ch, m)
	case conversation.KindGateSecretRevoke:
		return e.revoke(ch, m)
	case conversation.KindGateRequest:
		var p gate.RequestPayload
		if err := m.Decode(&p); err != nil {
			return err
		}
		_, err := e.submit(ch, m.Author, "", p, m.PayloadDigest())
		return err
	case conversation.KindGateApprove, conversation.KindGateReject:
		return e.vote(ch, m)
	case conversation.KindGateCancel:
		return e.cancelRequest(ch, m)
	case conversation.KindMemberPropose:
		return e.propose(ch, m)
	case conversation.KindMemberApprove:
		return e.approveProposal(ch, m)
	}
	return twokey.Errorf(twokey.EBadEnvelope, "kind %s is not accepted here", m.Kind)
}

func (e *Engine) enable(ch *change, m *conversation.Message) error {
	c := ch.c
	if m.Author != c.st.Admin {
		return twokey.Errorf(twokey.ENotAdmin, "only the conversation's admin may enable the gateway")
	}
	if c.gate.Enabled {
		return twokey.Errorf(twokey.EGateEnabled, "the gateway is already enabled in %s; change M or rules with a proposal", c.st.Name)
	}
	var p gate.EnablePayload
	if err := m.Decode(&p); err != nil {
		return err
	}
	cfg, err := gate.Enable(p, c.st.Keys())
	if err != nil {
		return err
	}
	if err := e.knownServices(cfg.Rules); err != nil {
		return err
	}
	ch.gate = &cfg
	_, err = e.gatewayRecord(ch, conversation.KindGateEnabled, gate.EnabledPayload{
		Header: e.header(c.st.ID), Signers: cfg.Signers, RequiredApprovals: cfg.RequiredApprovals,
		Rules: cfg.Rules, BoxKey: e.box, Groups: cfg.GroupSet(),
	})
	return err
}

// service returns a catalog service or a bad_payload naming the choices.
func (e *Engine) service(name string) (*catalog.Service, error) {
	s, ok := e.cfg.Catalog.Service(name)
	if !ok {
		names := []string{}
		for _, s := range e.cfg.Catalog.Services() {
			names = append(names, s.Name)
		}
		return nil, twokey.Errorf(twokey.EBadPayload, "unknown service %q; this gateway knows %s", twokey.Clip(name), strings.Join(names, ", "))
	}
	return s, nil
}

func (e *Engine) secret(ch *change, m *conversation.Message) error {
	c := ch.c
	var p gate.SecretPayload
	if err := m.Decode(&p); err != nil {
		return err
	}
	if err := ValidID("secret_id", p.SecretID); err != nil {
		return err
	}
	if _, dup := c.secrets[p.SecretID]; dup {
		return replayed("secret_id " + p.SecretID)
	}
	if err := e.claimID(ch, "secret", p.SecretID); err != nil {
		return err
	}
	svc, err := e.service(p.Service)
	if err != nil {
		return err
	}
	// Stored, it would never be sent (execute injects no key into a
	// service that takes none): refused rather than kept unused.
	if err := catalog.CheckTakesKey(svc, e.cfg.Catalog.Services()); err != nil {
		return err
	}
	if p.HeaderName == "" {
		p.HeaderName = svc.HeaderName
	}
	if p.HeaderTemplate == "" {
		p.HeaderTemplate = svc.HeaderTemplate
	}
	if p.HeaderName == "" {
		p.HeaderName = vault.DefaultHeaderName
	}
	if p.HeaderTemplate == "" {
		p.HeaderTemplate = vault.DefaultHeaderTemplate
	}
	if err := vault.ValidateHeader(p.HeaderName, p.HeaderTemplate); err != nil {
		return err
	}
	if p.TTLSeconds < 0 {
		return twokey.Errorf(twokey.EBadPayload, "ttl_seconds must be positive (or absent for no expiry)")
	}
	if p.TTLSeconds > twokey.MaxSecretTTLSeconds {
		return twokey.Errorf(twokey.EBadPayload, "ttl_seconds %d is more than %d (10 years), the longest TTL; leave it out for no expiry", p.TTLSeconds, twokey.MaxSecretTTLSeconds)
	}
	sealed, err := base64.StdEncoding.Strict().DecodeString(p.Sealed)
	if err != nil {
		return twokey.Errorf(twokey.EBadPayload, "sealed is not standard padded base64")
	}
	value, err := vault.OpenSealed(sealed, e.cfg.BoxPub, e.cfg.BoxPriv)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	s := &vault.Secret{ID: p.SecretID, Conversation: c.st.ID, Service: p.Service,
		HeaderName: http.CanonicalHeaderKey(p.HeaderName), HeaderTemplate: p.HeaderTemplate,
		CreatedAt: now, ProvisionedBy: m.Author}
	if p.TTLSeconds > 0 {
		s.ExpiresAt = now.Add(time.Duration(p.TTLSeconds) * time.Second)
	}
	err = e.cfg.Vault.Store(s, value)
	clear(value)
	if err != nil {
		return err
	}
	ch.secrets[s.ID] = s
	exp := ""
	if !s.ExpiresAt.IsZero() {
		exp = conversation.FormatTime(s.ExpiresAt)
	}
	_, err = e.gatewayRecord(ch, conversation.KindGateSecretStored, gate.SecretStoredPayload{
		Header: e.header(c.st.ID), SecretID: s.ID, Service: s.Service, HeaderName: s.HeaderName,
		HeaderTemplate: s.HeaderTemplate, ExpiresAt: gate.OptTime(exp), ProvisionedBy: m.Author,
	})
	return err
}

func (e *Engine) revoke(ch *change, m *conversation.Message) error {
	c := ch.c
	var p gate.RevokePayload
	if err := m.Decode(&p); err != nil {
		return err
	}
	if err := gate.CheckRevoke(p); err != nil {
		return err
	}
	ids := []string{}
	for id, s := range c.secrets {
		if p.Revokes(id, s.Service) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return twokey.Errorf(twokey.EBadPayload, "no stored secret matches; 'twokey secret ls' lists them")
	}
	slices.Sort(ids)
	for _, id := range ids {
		ch.secrets[id] = nil
	}
	_, err := e.gatewayRecord(ch, conversation.KindGateSecretRevoked, gate.RevokedPayload{
		Header: e.header(c.st.ID), SecretIDs: ids, By: m.Author,
	})
	return err
}

// liveSecret returns the newest live secret of a service (the one a call
// gets; of two stored at the same instant, the greater id), or nil, and
// the latest to expire of its expired ones.
func (c *conv) liveSecret(service string, now time.Time) (*vault.Secret, *vault.Secret) {
	var live, expired *vault.Secret
	for _, s := range c.secrets {
		if s.Service != service {
			continue
		}
		if s.Live(now) {
			if live == nil || s.CreatedAt.After(live.CreatedAt) || (s.CreatedAt.Equal(live.CreatedAt) && s.ID > live.ID) {
				live = s
			}
		} else if expired == nil || s.ExpiresAt.After(expired.ExpiresAt) {
			expired = s
		}
	}
	return live, expired
}

// forbiddenHeaders may not be set by a request: they belong to the
// transport, would smuggle a second credential, or would change how the
// response's bytes are encoded or cut (compressed, another charset, a
// range), so that an echo of the key could get past redaction.
var forbiddenHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Keep-Alive": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Cookie": true,
	"Accept-Encoding": true, "Accept-Charset": true, "Range": true, "If-Range": true,
}

// ForbiddenRequestHeader reports whether a gate.request may not set the
// header (canonical name): the gateway owns the connection and how the
// response is encoded. Proxy mode drops these from a client's call.
func ForbiddenRequestHeader(canon string) bool { return forbiddenHeaders[canon] }

// forbiddenList names forbiddenHeaders for messages, sorted.
var forbiddenList = strings.Join(slices.Sorted(maps.Keys(forbiddenHeaders)), ", ")

// submit validates a request (PROTOCOL 5) and appends what it leads to. It
// is shared by signed gate.request messages and program requests, which
// the gateway writes on the program's behalf (submitter "" then, and the
// program's name in the payload).
func (e *Engine) submit(ch *change, author, program string, p gate.RequestPayload, digest string) (*gate.Request, error) {
	c := ch.c
	now := e.clock.Now()
	if err := ValidID("request_id", p.RequestID); err != nil {
		return nil, err
	}
	exp, err := conversation.ParseTime(p.ExpiresAt)
	if err != nil {
		return nil, twokey.Errorf(twokey.EBadPayload, "expires_at: %s", twokey.ErrorMessage(err))
	}
	if !exp.After(now) {
		return nil, twokey.Errorf(twokey.EBadPayload, "expires_at %s is already past", p.ExpiresAt)
	}
	if exp.After(now.Add(twokey.MaxRequestTTL)) {
		return nil, twokey.Errorf(twokey.EBadPayload, "expires_at %s is more than %s ahead", p.ExpiresAt, twokey.MaxRequestTTL)
	}
	svc, err := e.service(p.Service)
	if err != nil {
		return nil, err
	}
	method := p.Method
	if method == "" || method != strings.ToUpper(method) || len(method) > 16 || strings.ContainsAny(method, " \t\r\n") {
		return nil, twokey.Errorf(twokey.EBadPayload, "method %q must be an upper-case HTTP method", twokey.Clip(method))
	}
	path, err := svc.EndpointOf(p.URL)
	if err != nil {
		return nil, err
	}
	pattern := ""
	if p.Template != "" {
		t, ok := e.cfg.Catalog.Template(p.Template)
		if !ok {
			return nil, twokey.Errorf(twokey.EBadPayload, "unknown template %q; 'twokey templates' lists them", twokey.Clip(p.Template))
		}
		if t.Service != p.Service || t.Method != method {
			return nil, twokey.Errorf(twokey.EBadPayload, "template %s is %s on %s, not %s on %s", t.Name, t.Method, t.Service, method, p.Service)
		}
		if !templates.MatchEndpoint(t.Endpoint, path) {
			return nil, twokey.Errorf(twokey.EBadPayload, "url path %s does not match template %s's endpoint %s", twokey.Clip(path), t.Name, t.Endpoint)
		}
		pattern = t.Endpoint
	}
	secretHeader := svc.HeaderName
	if secretHeader == "" {
		secretHeader = vault.DefaultHeaderName
	}
	live, _ := c.liveSecret(p.Service, now)
	for name, v := range p.Headers {
		canon := http.CanonicalHeaderKey(name)
		if strings.EqualFold(name, secretHeader) || (live != nil && strings.EqualFold(name, live.HeaderName)) {
			return nil, twokey.Errorf(twokey.EBadPayload, "headers may not set %s: the gateway injects the service's key there", canon)
		}
		if forbiddenHeaders[canon] || !validHeader(name, v) {
			return nil, twokey.Errorf(twokey.EBadPayload, "header %q may not be set on a request: the gateway owns the connection and how the response is encoded (forbidden: %s)", twokey.Clip(name), forbiddenList)
		}
	}
	if err := e.reserve(ch, p.RequestID, store.Requests, p.RequestID,
		twokey.Errorf(twokey.EDuplicateRequest, "request_id %s was already used on this server; make a new id", p.RequestID)); err != nil {
		return nil, err
	}
	submitter := author
	if program != "" {
		submitter = e.gwKey
	}
	if err := e.reqAll(c); err != nil {
		return nil, err
	}
	if open := gate.PendingOf(c.requests, submitter, program); open >= twokey.MaxPendingPerSigner {
		return nil, twokey.Errorf(twokey.ERateLimited, "you have %d pending requests in %s, the most one submitter may hold open; wait for some to settle or cancel them", open, c.st.Name)
	}
	// The submitter's request is its approval (a program's has none).
	r, out := gate.NewRequest(c.gate, c.st.ID, p, digest, submitter, program,
		gate.Target{Service: p.Service, Path: path, Pattern: pattern, Method: method}, exp, ch.st.Seq)
	if err := r.CheckSubmission(); err != nil {
		return nil, err
	}
	switch out {
	case gate.Execute:
		e.scheduleExecution(ch, r)
	case gate.CoolOff:
		if err := e.approveIn(ch, r); err != nil {
			return nil, err
		}
	}
	if r.State == gate.StatePending {
		ch.after = append(ch.after, func() { e.expiry.add(exp, c.st.ID, r.ID) })
	}
	ch.putRequest(r)
	ch.derived = append(ch.derived, store.Put{Bucket: store.ConvReqs, Key: reqIndexKey(c.st.ID, r.SubmittedSeq), Value: []byte(r.ID)})
	e.record(ch, Event{Kind: EventSubmitted, Request: r})
	if e.cfg.Observer != nil {
		ch.after = append(ch.after, func() { e.cfg.Observer.Submitted(c.st.ID, r) })
	}
	return r, nil
}

// reqIndexKey orders a conversation's requests by submission.
func reqIndexKey(conv string, seq uint64) string { return fmt.Sprintf("%s/%016x", conv, seq) }

func validHeader(name, value string) bool {
	if name == "" || len(name) > 256 || len(value) > 8192 {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return !strings.ContainsAny(value, "\r\n\x00")
}

// findRequest returns an open request of c, or the error a vote on a
// closed or unknown one deserves.
func (e *Engine) findRequest(c *conv, id string) (*gate.Request, error) {
	if r, err := e.req(c, id); err != nil || r != nil {
		return r, err
	}
	raw, err := e.st.Get(store.Requests, id)
	if err != nil {
		return nil, err
	}
	if raw != nil {
		r, err := decodeRequest(raw)
		if err == nil && r.Conversation == c.st.ID {
			return r, nil
		}
	}
	return nil, twokey.Errorf(twokey.EUnknownRequest, "no request %s in %s", twokey.Clip(id), c.st.Name)
}

func checkDigest(d string) error {
	if !strings.HasPrefix(d, "sha256:") || len(d) != 7+64 {
		return twokey.Errorf(twokey.EBadPayload, "digest %q must be sha256: and 64 hex digits", twokey.Clip(d))
	}
	return nil
}

func (e *Engine) vote(ch *change, m *conversation.Message) error {
	c := ch.c
	var p gate.VotePayload
	if err := m.Decode(&p); err != nil {
		return err
	}
	if err := checkDigest(p.RequestDigest); err != nil {
		return err
	}
	if len(p.Reason) > twokey.MaxTextBytes {
		return twokey.Errorf(twokey.ETooLarge, "reason is over %d bytes", twokey.MaxTextBytes)
	}
	if err := gate.CheckReason("reason", p.Reason); err != nil {
		return err
	}
	r, err := e.findRequest(c, p.RequestID)
	if err != nil {
		return err
	}
	approve := m.Kind == conversation.KindGateApprove
	if err := r.Check(m.Author, p.RequestDigest, approve, e.clock.Now()); err != nil {
		return err
	}
	r = r.Clone()
	reason := ""
	switch r.Vote(m.Author, approve) {
	case gate.Execute:
		e.scheduleExecution(ch, r)
	case gate.CoolOff:
		if err := e.approveIn(ch, r); err != nil {
			return err
		}
	case gate.Reject:
		reason = gate.ReasonRejected
	case gate.Vetoed:
		reason = gate.ReasonVetoed
	}
	if reason != "" {
		if _, err := e.gatewayRecord(ch, conversation.KindGateRejected, gate.ClosedPayload{
			Header: e.header(c.st.ID), RequestID: r.ID, Reason: reason, Decision: gate.DecisionOf(r)}); err != nil {
			return err
		}
		r.Result = &gate.Result{Reason: reason, Seq: ch.st.Seq}
	}
	ch.putRequest(r)
	if r.State == gate.StateRejected {
		e.record(ch, Event{Kind: EventClosed, Request: r, State: gate.StateRejected, Reason: reason})
	}
	if e.cfg.Observer != nil {
		obs := r.Clone()
		ch.after = append(ch.after, func() {
			e.cfg.Observer.Voted(c.st.ID, obs, approve)
			if obs.State == gate.StateRejected {
				e.cfg.Observer.Closed(c.st.ID, obs, gate.StateRejected, reason)
			}
		})
	}
	return nil
}

// approveIn writes gate.approved for r, which a vote (or its submission)
// left approved under a rule with a cool-off, and arms the timer that
// executes it at executable_at: the record's own received_at plus the
// delay (PROTOCOL 9).
func (e *Engine) approveIn(ch *change, r *gate.Request) error {
	at := ch.stamp(e.clock.Now())
	r.Approve(at, ch.st.Seq+1)
	// The record is received at exactly at: executable_at is stated from it.
	if _, err := e.gatewayRecordAt(ch, conversation.KindGateApproved, gate.ApprovedPayload{
		Header: e.header(ch.c.st.ID), RequestID: r.ID, Approvers: slices.Clone(r.Approvers),
		ExecutableAt: conversation.FormatTime(r.ExecutableAt), Assignment: maps.Clone(r.Assignment), Decision: gate.DecisionOf(r)}, at); err != nil {
		return err
	}
	conv, id, due := ch.c.st.ID, r.ID, r.ExecutableAt
	ch.after = append(ch.after, func() { e.expiry.add(due, conv, id) })
	return nil
}

func (e *Engine) cancelRequest(ch *change, m *conversation.Message) error {
	c := ch.c
	var p gate.CancelPayload
	if err := m.Decode(&p); err != nil {
		return err
	}
	r, err := e.findRequest(c, p.RequestID)
	if err != nil {
		return err
	}
	if err := r.CheckCancel(m.Author, e.clock.Now()); err != nil {
		return err
	}
	return e.closeIn(ch, r, gate.StateCancelled, gate.ReasonCancelled)
}

// closeIn ends an open request within ch with a gateway record.
func (e *Engine) closeIn(ch *change, r *gate.Request, state, reason string) error {
	if _, err := e.gatewayRecord(ch, gate.ClosedKind(state), gate.ClosedPayload{Header: e.header(ch.c.st.ID), RequestID: r.ID, Reason: reason,
		Decision: gate.DecisionOf(r)}); err != nil {
		return err
	}
	r = r.Clone()
	r.State = state
	r.Result = &gate.Result{Reason: reason, Seq: ch.st.Seq}
	ch.putRequest(r)
	e.record(ch, Event{Kind: EventClosed, Request: r, State: state, Reason: reason})
	if e.cfg.Observer != nil {
		ch.after = append(ch.after, func() { e.cfg.Observer.Closed(ch.c.st.ID, r, state, reason) })
	}
	return nil
}

// closeRequest ends an open request in its own commit. Called with c.mu held.
func (e *Engine) closeRequest(c *conv, id, state, reason string, _ int) error {
	return e.attempt(c, func() error {
		r, err := e.req(c, id)
		if err != nil || r == nil || r.Terminal() {
			return err
		}
		ch := e.begin(c)
		if err := e.closeIn(ch, r, state, reason); err != nil {
			return err
		}
		return e.commit(ch)
	})
}

func (e *Engine) propose(ch *change, m *conversation.Message) error {
	c := ch.c
	var p gate.ProposePayload
	if err := m.Decode(&p); err != nil {
		return err
	}
	if err := ValidID("proposal_id", p.ProposalID); err != nil {
		return err
	}
	if _, dup := c.proposals[p.ProposalID]; dup {
		return replayed("proposal_id " + p.ProposalID)
	}
	if err := e.claimID(ch, "proposal", p.ProposalID); err != nil {
		return err
	}
	prop, next, _, err := gate.Propose(c.gate, c.st.Members, m.Author, p, m.PayloadDigest())
	if err != nil {
		return err
	}
	if p.Rules != nil {
		if err := e.knownServices(next.Rules); err != nil {
			return err
		}
	}
	prop.Seq = ch.st.Seq
	ch.proposals = maps.Clone(c.proposals)
	ch.proposals[prop.ID] = prop
	if prop.Done() {
		return e.applyProposal(ch, prop)
	}
	return nil
}

func (e *Engine) approveProposal(ch *change, m *conversation.Message) error {
	c := ch.c
	var p gate.MemberApprovePayload
	if err := m.Decode(&p); err != nil {
		return err
	}
	if err := checkDigest(p.ProposalDigest); err != nil {
		return err
	}
	prop := c.proposals[p.ProposalID]
	if prop == nil {
		if used, err := e.usedID("proposal", p.ProposalID, c.st.ID); err != nil || used {
			if err != nil {
				return err
			}
			return twokey.Errorf(twokey.ERequestClosed, "proposal %s is closed: it was applied, or a membership change applied before it was and voided it; propose again against the members as they are now", p.ProposalID)
		}
		return twokey.Errorf(twokey.EUnknownRequest, "no open proposal %s in %s", twokey.Clip(p.ProposalID), c.st.Name)
	}
	if err := prop.CheckApprove(m.Author, p.ProposalDigest); err != nil {
		return err
	}
	np := prop.Approve(m.Author)
	ch.proposals = maps.Clone(c.proposals)
	ch.proposals[np.ID] = np
	if np.Done() {
		return e.applyProposal(ch, np)
	}
	return nil
}

// applyProposal writes member.changed, cancels every pending request and
// voids every other open proposal (their approvals were given under the
// old membership).
func (e *Engine) applyProposal(ch *change, prop *gate.Proposal) error {
	c := ch.c
	_, cfg, members, err := gate.Propose(c.gate, c.st.Members, prop.Proposer, prop.Payload, prop.Digest)
	if err != nil {
		return err
	}
	ch.gate = &cfg
	ch.st.Members = members
	ch.proposals = map[string]*gate.Proposal{}
	if _, err := e.gatewayRecord(ch, conversation.KindMemberChanged, gate.ChangedPayload{
		Header: e.header(c.st.ID), ProposalID: prop.ID, Signers: cfg.Signers, Members: members,
		RequiredApprovals: cfg.RequiredApprovals, Rules: cfg.Rules, Groups: cfg.GroupSet(),
	}); err != nil {
		return err
	}
	if err := e.reqAll(c); err != nil {
		return err
	}
	ids := slices.Sorted(maps.Keys(c.requests))
	for _, id := range ids {
		r := c.requests[id]
		if cur, ok := ch.requests[id]; ok {
			r = cur
		}
		// ch.st.LastAt is member.changed's received_at: a request whose
		// cool-off is over by then is the executor's, not cancelled.
		if r.OpenAt(ch.st.LastAt) {
			if err := e.closeIn(ch, r, gate.StateCancelled, gate.ReasonMembershipChanged); err != nil {
				return err
			}
		}
	}
	return nil
}

// knownServices refuses a rule naming a service this server's catalog does
// not have: such a rule (a typo like "githb") would never apply, and the
// signers would believe a stricter M holds than does.
func (e *Engine) knownServices(rules []gate.Rule) error {
	for i, r := range rules {
		if r.Service == gate.Any {
			continue
		}
		if _, ok := e.cfg.Catalog.Service(r.Service); !ok {
			return twokey.Errorf(twokey.EBadPayload, "rule %d names service %q, which this server's catalog does not have; 'twokey templates' lists the services", i+1, twokey.Clip(r.Service))
		}
	}
	return nil
}
