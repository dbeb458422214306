package engine

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/google/uuid"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/templates"
)

// Program requests.
//
// A program key may propose calls but never approve them. The gateway
// writes the program's gate.request itself, signed with its own key, with
// the program's name in the payload's "program" field (docs/protocol.md
// Part II E). It passes exactly the checks a signer's request passes
// (submit), the pending cap counts per program, and the program's proposal
// carries no approval: it needs M signers.

// SubmitProgram writes a gate.request for program into convID and returns
// the request's state. The caller has authenticated the program and
// charged its policy; p needs service, method, url and expires_at (and may
// carry template, params, headers, body and request_id). keyPrefix, the
// display prefix of the program key the request came with, is kept on the
// request (not in the signed payload): the request log names the key
// actually used, which after a rotation may be an old key still in its
// grace.
func (e *Engine) SubmitProgram(convID, program, keyPrefix string, p gate.RequestPayload) (*api.RequestState, error) {
	if program == "" {
		return nil, twokey.Errorf(twokey.EBadPayload, "a program request needs the program's name")
	}
	c, err := e.lookup(convID)
	if err != nil {
		return nil, err
	}
	if p.RequestID == "" {
		p.RequestID = uuid.NewString()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.Seq == 0 {
		return nil, twokey.Errorf(twokey.EUnknownConversation, "no conversation %q on this server", twokey.Clip(convID))
	}
	if !c.gate.Enabled {
		return nil, twokey.Errorf(twokey.EGateDisabled, "the gateway is not enabled in %s; its admin enables it with 'twokey gate enable'", c.st.Name)
	}
	p.Header = e.header(c.st.ID)
	p.Program = program
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, twokey.Errorf(twokey.EBadPayload, "the request cannot be encoded: %v", err)
	}
	if len(raw) > twokey.MaxEnvelopeBytes {
		return nil, twokey.Errorf(twokey.ETooLarge, "the request is %d bytes; a request may have at most %d", len(raw), twokey.MaxEnvelopeBytes)
	}
	// Verify what the gateway signed exactly as every client will: a
	// payload a client would refuse (a duplicate key in the body, too deep
	// a nesting) is refused here, before it reaches the log.
	m, err := conversation.Verify(conversation.Sign(e.cfg.Gateway, conversation.KindGateRequest, raw))
	if err != nil {
		return nil, err
	}
	var r *gate.Request
	err = e.attempt(c, func() error {
		ch := e.begin(c)
		ch.append(m, e.clock.Now())
		var err error
		r, err = e.submit(ch, e.gwKey, program, p, m.PayloadDigest())
		if err != nil {
			ch.drop()
			return err
		}
		r.KeyPrefix = keyPrefix // before the commit, which stores it with the request
		return e.commit(ch)
	})
	if err != nil {
		return nil, err
	}
	e.log.Info("accepted program request", AttrConv, c.st.ID, AttrRequest, r.ID, "program", program, AttrService, p.Service)
	return stateOf(r), nil
}

// ResolveConversation finds a conversation by id or by its unique name,
// for the operator (no membership check): it returns the id and the name.
func (e *Engine) ResolveConversation(ref string) (id, name string, err error) {
	e.mu.RLock()
	all := make([]*conv, 0, len(e.convs))
	for _, c := range e.convs {
		all = append(all, c)
	}
	e.mu.RUnlock()
	var hits [][2]string
	for _, c := range all {
		c.mu.Lock()
		if c.st.Seq > 0 && (c.st.ID == ref || c.st.Name == ref) {
			hits = append(hits, [2]string{c.st.ID, c.st.Name})
		}
		c.mu.Unlock()
	}
	for _, h := range hits {
		if h[0] == ref {
			return h[0], h[1], nil
		}
	}
	switch len(hits) {
	case 1:
		return hits[0][0], hits[0][1], nil
	case 0:
		return "", "", twokey.Errorf(twokey.EUnknownConversation, "no conversation named %q on this server", twokey.Clip(ref))
	}
	return "", "", twokey.Errorf(twokey.EBadPayload, "%d conversations are named %q; give its id", len(hits), twokey.Clip(ref))
}

// RequestState returns a request's state with no membership check; the
// caller has checked that its client may see it (a program, its own).
func (e *Engine) RequestState(convID, id string) (*api.RequestState, error) {
	c, err := e.lookup(convID)
	if err != nil {
		return nil, err
	}
	return e.requestState(c, convID, id)
}

// WaitSettled returns request id's state once it has settled (executed,
// failed, expired, rejected or cancelled), or its state when ctx ends
// first. It wakes on every record the conversation publishes, so it
// answers as soon as the outcome is committed.
func (e *Engine) WaitSettled(ctx context.Context, convID, id string) (*api.RequestState, error) {
	sub := e.hub.Subscribe(convID, nil)
	defer e.hub.Unsubscribe(sub)
	for {
		st, err := e.RequestState(convID, id)
		if err != nil || gate.Settled(st.State) {
			return st, err
		}
		select {
		case <-sub.C:
		case <-ctx.Done():
			return st, nil
		case <-e.ctx.Done():
			return st, nil
		}
	}
}

// Response returns the gate.response of an executed request.
func (e *Engine) Response(convID string, st *api.RequestState) (*gate.ResponsePayload, error) {
	if st.State != gate.StateExecuted || st.Result == nil || st.Result.Seq == 0 {
		return nil, twokey.Errorf(twokey.EUnknownRequest, "request %s has no response (it is %s)", st.RequestID, st.State)
	}
	recs, err := e.ReadRecords(convID, st.Result.Seq, 1)
	if err != nil {
		return nil, err
	}
	if len(recs) != 1 || recs[0].Kind != conversation.KindGateResponse {
		return nil, twokey.Errorf(twokey.EInternal, "the response record of request %s is missing", st.RequestID)
	}
	var p gate.ResponsePayload
	if err := json.Unmarshal(recs[0].Body, &p); err != nil || p.RequestID != st.RequestID {
		return nil, twokey.Errorf(twokey.EInternal, "the response record of request %s is malformed", st.RequestID)
	}
	return &p, nil
}

// program returns convID for a program's question (the caller has
// authenticated the program, which is bound to convID).
func (e *Engine) program(convID string) (*conv, error) {
	c, err := e.lookup(convID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.Seq == 0 {
		return nil, twokey.Errorf(twokey.EUnknownConversation, "no conversation %q on this server", twokey.Clip(convID))
	}
	return c, nil
}

// ProgramTemplates describes, to a program of convID, the catalog's
// templates that allow lets through, by name: each with its parameters and
// the M and rule a request of it would get now (gate.Threshold on the
// template's endpoint pattern; a rule on one concrete path may ask more of
// some calls, which ProgramPreview says). conv is the conversation's name.
func (e *Engine) ProgramTemplates(convID string, allow func(template string) bool) (conv string, out []api.ProgramTemplate, err error) {
	c, err := e.program(convID)
	if err != nil {
		return "", nil, err
	}
	c.mu.Lock()
	conv, g := c.st.Name, c.gate.Clone()
	c.mu.Unlock()
	out = []api.ProgramTemplate{}
	for _, t := range e.cfg.Catalog.Templates() {
		if !allow(t.Name) {
			continue
		}
		m, rule := gate.Threshold(g.RequiredApprovals, g.Rules, gate.Target{Service: t.Service, Path: t.Endpoint, Pattern: t.Endpoint, Method: t.Method})
		if rule != nil {
			r := *rule
			rule = &r
		}
		pt := api.ProgramTemplate{Name: t.Name, Service: t.Service, Method: t.Method, Endpoint: t.Endpoint, Description: t.Description,
			Risk: t.Risk, SuggestedApprovals: t.SuggestedApprovals, Params: []templates.Param{}, GateEnabled: g.Enabled,
			Rule: rule, RequiredApprovals: m, Signers: len(g.Signers)}
		for _, p := range t.Params {
			if p.Type == "" {
				p.Type = templates.TypeString
			}
			pt.Params = append(pt.Params, p)
		}
		out = append(out, pt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return conv, out, nil
}

// ProgramPreview is Preview for a program of convID: what a request of
// the template with params would be and the M it would get. Nothing is
// written; the caller has checked the program may use the template.
func (e *Engine) ProgramPreview(convID, template string, params map[string]string) (*api.Preview, error) {
	c, err := e.program(convID)
	if err != nil {
		return nil, err
	}
	return e.preview(c, template, params)
}

// ProgramCallPreview is the preview of a program's call by URL in convID
// (gate.NewCallPreview): p as buildPayload made it, path its URL's path
// below the service's base URL. Nothing is written.
func (e *Engine) ProgramCallPreview(convID string, p gate.RequestPayload, path string) (*api.Preview, error) {
	c, err := e.program(convID)
	if err != nil {
		return nil, err
	}
	svc, ok := e.cfg.Catalog.Service(p.Service)
	if !ok {
		return nil, twokey.Errorf(twokey.EBadPayload, "unknown service %q ('twokey templates' lists the services)", twokey.Clip(p.Service))
	}
	in := gate.CallPreviewInput{Service: p.Service, Method: p.Method, URL: p.URL, Path: path, Headers: p.Headers, Body: p.Body,
		Auth: gate.PreviewAuth{Kind: svc.Auth, HeaderName: svc.HeaderName}}
	if t, ok := e.cfg.Catalog.Template(p.Template); ok && p.Template != "" {
		in.Template = t
	}
	if in.Auth.HeaderName == "" {
		in.Auth.HeaderName = catalog.DefaultHeaderName
	}
	c.mu.Lock()
	in.Conversation, in.Gate = c.st.Name, c.gate.Clone()
	if live, _ := c.liveSecret(p.Service, e.clock.Now()); live != nil {
		in.Auth.HeaderName, in.Auth.SecretID = live.HeaderName, live.ID
	}
	c.mu.Unlock()
	return gate.NewCallPreview(in), nil
}

// ProgramRequests lists program's requests in convID, newest first,
// optionally only those in state, at most limit (all when limit <= 0).
func (e *Engine) ProgramRequests(convID, program, state string, limit int) ([]*api.RequestState, error) {
	c, err := e.program(convID)
	if err != nil {
		return nil, err
	}
	return e.requests(c, convID, state, limit, func(r *gate.Request) bool { return r.Program == program })
}
