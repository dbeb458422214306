package gate

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/twokey/twokey/templates"
)

// PreviewAuth names the key the gateway would inject into the call, by its
// kind and where it goes, never by its value.
type PreviewAuth struct {
	// Kind is the service's auth (catalog.AuthRequired, AuthOptional or
	// AuthNone): required, optional or none.
	Kind string `json:"kind"`
	// HeaderName is the header the key goes in; empty for none.
	HeaderName string `json:"header_name,omitempty"`
	// SecretID is the live secret that would be injected now, if any.
	SecretID string `json:"secret_id,omitempty"`
}

// RequestDraft is what a preview fills in of a gate.request: the fields a
// signer signs, less request_id, expires_at and the payload's header,
// which the signer adds (Payload).
type RequestDraft struct {
	Template string            `json:"template"`
	Service  string            `json:"service"`
	Method   string            `json:"method"`
	URL      string            `json:"url"`
	Headers  map[string]string `json:"headers,omitempty"`
	Body     json.RawMessage   `json:"body,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
}

// Payload is the draft as a gate.request expiring at expiresAt, ready for
// its header and request_id and to be signed.
func (d RequestDraft) Payload(expiresAt string) RequestPayload {
	return RequestPayload{Template: d.Template, Service: d.Service, Method: d.Method, URL: d.URL,
		Headers: maps.Clone(d.Headers), Body: slices.Clone(d.Body), ExpiresAt: expiresAt, Params: maps.Clone(d.Params)}
}

// Preview is a request made from a template as the gate sees it before
// anyone signs: the resolved call, the key it would get, M and the rule
// that sets it, and the lines 'twokey request --preview' prints. It is the
// answer of POST /v1/conversations/{id}/preview (docs/protocol.md, F).
type Preview struct {
	Method             string            `json:"method"`
	URL                string            `json:"url"`
	Headers            map[string]string `json:"headers"`
	Body               json.RawMessage   `json:"body"` // null when the template has no body
	Service            string            `json:"service"`
	Auth               PreviewAuth       `json:"auth"`
	Template           string            `json:"template"`
	Risk               string            `json:"risk"`
	SuggestedApprovals int               `json:"suggested_approvals"`
	GateEnabled        bool              `json:"gate_enabled"`
	Rule               *Rule             `json:"rule"` // nil: the conversation's default holds
	RequiredApprovals  int               `json:"required_approvals"`
	Signers            int               `json:"signers"` // how many
	Lines              []string          `json:"lines"`
	Request            RequestDraft      `json:"request"`
}

// PreviewInput is what a preview is made from.
type PreviewInput struct {
	Conversation string // the conversation's name, as the lines say it
	Gate         Config // the gate as it stands
	Template     *templates.Template
	BaseURL      string      // the base URL of the template's service
	Auth         PreviewAuth // the service's auth kind ("" is none) and the key it would get
	Params       map[string]string
}

// NewPreview resolves the template with the params against the base URL
// and says what the gate would make of the call now: M and the rule by
// Threshold, as a gate.request naming the template would be frozen at.
// It is the one computation behind the preview endpoint and
// 'twokey request --preview', which prints Lines. A refusal is the
// template's (templates.Resolve): bad_payload naming the parameter.
func NewPreview(in PreviewInput) (*Preview, error) {
	t := in.Template
	res, err := t.Resolve(in.BaseURL, in.Params)
	if err != nil {
		return nil, err
	}
	auth := in.Auth
	if auth.Kind == "" {
		auth.Kind = "none"
	}
	if auth.Kind == "none" { // never injected
		auth.HeaderName, auth.SecretID = "", ""
	}
	m, rule := Threshold(in.Gate.RequiredApprovals, in.Gate.Rules, Target{Service: t.Service, Path: res.Path, Pattern: t.Endpoint, Method: res.Method})
	if rule != nil {
		r := *rule
		rule = &r
	}
	p := &Preview{Method: res.Method, URL: res.URL, Headers: res.Headers, Body: res.Body, Service: t.Service, Auth: auth,
		Template: t.Name, Risk: t.Risk, SuggestedApprovals: t.SuggestedApprovals, GateEnabled: in.Gate.Enabled,
		Rule: rule, RequiredApprovals: m, Signers: len(in.Gate.Signers)}
	if p.Headers == nil {
		p.Headers = map[string]string{}
	}
	p.Request = RequestDraft{Template: t.Name, Service: t.Service, Method: res.Method, URL: res.URL,
		Headers: maps.Clone(res.Headers), Body: slices.Clone(res.Body)}
	if len(in.Params) > 0 {
		p.Request.Params = maps.Clone(in.Params)
	}
	p.Lines = previewLines(p, in.Conversation)
	return p, nil
}

// CallPreviewInput is what the preview of a call by URL (a program's
// request that names a method and URL rather than a template) is made
// from: the call as the gateway would send it, the path of its URL below
// the service's base URL, and the catalog template it matches, if any.
type CallPreviewInput struct {
	Conversation string // the conversation's name, as the lines say it
	Gate         Config // the gate as it stands
	Service      string
	Method       string
	URL          string
	Path         string // the URL's path below the service's base URL
	Headers      map[string]string
	Body         json.RawMessage
	// Template is the catalog template the call matches (same service and
	// method, its endpoint matching Path), or nil.
	Template *templates.Template
	Auth     PreviewAuth
}

// NewCallPreview says what the gate would make of a call by URL now: M
// and the rule by Threshold, as for a request naming in.Template (when it
// matched one), and the lines NewPreview's would be. It resolves nothing:
// the caller has checked the URL stays on its service.
func NewCallPreview(in CallPreviewInput) *Preview {
	auth := in.Auth
	if auth.Kind == "" {
		auth.Kind = "none"
	}
	if auth.Kind == "none" {
		auth.HeaderName, auth.SecretID = "", ""
	}
	tg := Target{Service: in.Service, Path: in.Path, Method: in.Method}
	p := &Preview{Method: in.Method, URL: in.URL, Headers: maps.Clone(in.Headers), Body: slices.Clone(in.Body), Service: in.Service,
		Auth: auth, GateEnabled: in.Gate.Enabled, Signers: len(in.Gate.Signers)}
	if t := in.Template; t != nil {
		tg.Pattern = t.Endpoint
		p.Template, p.Risk, p.SuggestedApprovals = t.Name, t.Risk, t.SuggestedApprovals
	}
	m, rule := Threshold(in.Gate.RequiredApprovals, in.Gate.Rules, tg)
	if rule != nil {
		r := *rule
		rule = &r
	}
	p.Rule, p.RequiredApprovals = rule, m
	if p.Headers == nil {
		p.Headers = map[string]string{}
	}
	p.Request = RequestDraft{Template: p.Template, Service: in.Service, Method: in.Method, URL: in.URL,
		Headers: maps.Clone(in.Headers), Body: slices.Clone(in.Body)}
	p.Lines = previewLines(p, in.Conversation)
	return p
}

// previewLines are the lines 'twokey request --preview' prints.
func previewLines(p *Preview, conv string) []string {
	out := []string{fmt.Sprintf("%s %s", p.Method, p.URL)}
	for _, k := range slices.Sorted(maps.Keys(p.Headers)) {
		out = append(out, fmt.Sprintf("  %s: %s", k, p.Headers[k]))
	}
	if len(p.Body) > 0 {
		out = append(out, fmt.Sprintf("  body %s", p.Body))
	}
	if p.Template == "" {
		out = append(out, fmt.Sprintf("service %s (key %s), a call by URL that matches no template", p.Service, p.Auth.Kind))
	} else {
		out = append(out, fmt.Sprintf("service %s (key %s), template %s, risk %s", p.Service, p.Auth.Kind, p.Template, p.Risk))
	}
	switch {
	case !p.GateEnabled:
		out = append(out, fmt.Sprintf("the gateway is off in %s: enable it before submitting", conv))
	case p.Rule != nil:
		out = append(out, fmt.Sprintf("rule %s %s %s applies: %d of %d signers must approve (suggested %d)",
			p.Rule.Service, p.Rule.Method, p.Rule.Endpoint, p.RequiredApprovals, p.Signers, p.SuggestedApprovals))
	default:
		out = append(out, fmt.Sprintf("no rule applies: the default %d of %d signers must approve (suggested %d)",
			p.RequiredApprovals, p.Signers, p.SuggestedApprovals))
	}
	return append(out, "preview only: nothing submitted")
}
