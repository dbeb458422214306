package engine

import (
	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/gate"
)

// Preview is, for a member of convID, what a request from the named
// template with params would be and what the gate would make of it now
// (gate.NewPreview): the endpoint behind the browser's request form and
// 'twokey request --preview'. Nothing is written. An unknown template, or
// parameters the template refuses, are bad_payload saying what to do.
func (e *Engine) Preview(convID, key, template string, params map[string]string) (*api.Preview, error) {
	c, err := e.member(convID, key)
	if err != nil {
		return nil, err
	}
	return e.preview(c, template, params)
}

// preview is Preview of c, whose caller may ask.
func (e *Engine) preview(c *conv, template string, params map[string]string) (*api.Preview, error) {
	if template == "" {
		return nil, twokey.Errorf(twokey.EBadPayload, "give the template to preview; 'twokey templates' (GET /v1/catalog) lists them")
	}
	t, ok := e.cfg.Catalog.Template(template)
	if !ok {
		return nil, twokey.Errorf(twokey.EBadPayload, "unknown template %q; 'twokey templates' (GET /v1/catalog) lists them", twokey.Clip(template))
	}
	svc, ok := e.cfg.Catalog.Service(t.Service)
	if !ok { // the catalog never lets this happen
		return nil, twokey.Errorf(twokey.EInternal, "template %s names service %s, which the catalog lacks", t.Name, t.Service)
	}
	in := gate.PreviewInput{Template: t, BaseURL: svc.BaseURL, Params: params,
		Auth: gate.PreviewAuth{Kind: svc.Auth, HeaderName: svc.HeaderName}}
	if in.Auth.HeaderName == "" {
		in.Auth.HeaderName = catalog.DefaultHeaderName
	}
	c.mu.Lock()
	in.Conversation, in.Gate = c.st.Name, c.gate.Clone()
	if live, _ := c.liveSecret(t.Service, e.clock.Now()); live != nil {
		in.Auth.HeaderName, in.Auth.SecretID = live.HeaderName, live.ID
	}
	c.mu.Unlock()
	return gate.NewPreview(in)
}

// CheckRules says, for a member of convID, what proposing rules as the
// conversation's whole rule set would do (gate.CheckRules): the set
// normalized, the shadows it newly adds, and the refusal a gate.enable or
// member.propose carrying it would get, checked against the signers (the
// members, while the gateway is off), the groups (groups, or those in
// force when nil) and this server's catalog. Nothing is
// written; only a caller who may not ask gets an error.
func (e *Engine) CheckRules(convID, key string, rules []gate.Rule, groups *map[string][]string) (*api.RulesCheck, error) {
	c, err := e.member(convID, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	cur := c.gate.Clone()
	signers := cur.Signers
	if !cur.Enabled {
		signers = c.st.Keys()
	}
	c.mu.Unlock()
	gs := cur.Groups
	if groups != nil {
		gs = *groups
	}
	norm, shadows, err := gate.CheckRules(cur.Rules, rules, gs, signers)
	if err == nil {
		err = e.knownServices(norm)
	}
	out := &api.RulesCheck{Rules: norm, Shadows: []string{}}
	for _, sh := range shadows {
		out.Shadows = append(out.Shadows, sh.String())
	}
	if err != nil {
		out.Error = &api.ErrorDetail{Code: twokey.ErrorCode(err), Message: twokey.ErrorMessage(err)}
	}
	return out, nil
}
