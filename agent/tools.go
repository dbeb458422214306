package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/gate"
)

const (
	// maxPoll is the longest long poll of one wait step: a request's
	// approvals are looked at, and a revoked key found, at least this often.
	maxPoll = 2 * time.Second
	// maxWait is the most wait_seconds a get_request waits in one call.
	maxWait = 300 * time.Second
)

type tools struct{ o Options }

// The tools' descriptions: what each does, that people approve, what to
// do next.
const (
	descListTemplates    = `List the call templates this program key may use, in its conversation: each with its service, HTTP method, endpoint, parameters, how many approvals of the conversation's signers (people) a request of it needs, and its policy in one line (groups that must be among the approvers, whether a reason is required, a cool-off). Start here; then describe_template for one template's parameters and policy, or preview_request.`
	descDescribeTemplate = `Describe one template this key may use: every parameter (where it goes, its type, whether it is required, its default and an example), the service and HTTP method, the rule that sets M and M itself, the number of approvals from the conversation's signers a request of it needs, and the whole policy (policy_text in one line; policy structured: required_approvals, require (groups whose members must be among the approvers), reason_required (propose_request must then pass reason), delay_seconds (a cool-off after the approvals during which signers may veto the call) and veto). Next: preview_request with the template and params.`
	descPreviewRequest   = `Show exactly what a call would be, without submitting it: the resolved method and URL, headers and body, which API key kind the gateway would inject (never its value), the rule and the number of approvals M it needs, its policy (policy_text and policy: groups required, whether a reason is required, a cool-off and vetoes), and the lines 'twokey request --preview' prints. Give a template and its params, or a call by URL (method, url, optional service, headers and a JSON body) that the key's policy allows. Nothing is sent and the key's rate is not charged. Next: propose_request with the same arguments (and reason when the policy requires one).`
	descProposeRequest   = `Propose a call: it becomes a request in the key's conversation that needs approvals of its signers (people) before the gateway makes it; you cannot approve or reject it yourself. Give a template and its params, or a call by URL within the key's policy, optionally expires_in (e.g. 30m; at most 7d), and reason: why the call is needed, in at most 1000 characters, which the signers read. A reason is required when the rule's policy says reason_required (describe_template and preview_request say); without it the proposal is refused. Returns the request id, its state, approvals so far of the M needed, its policy, its expiry and a link to show the user so that the signers can find it. This counts against the key's rate and monthly cap. Next: get_request with the request_id and wait_seconds to wait for the outcome.`
	descGetRequest       = `Read one of this program's requests: its state (pending, approved (its approvals are in and it waits out a cool-off, during which signers may still veto it), executing, executed, failed, rejected, expired or cancelled), approvals so far of the M needed, its policy, while approved when it executes (executable_at), and once executed the upstream's response (status, headers, body; API keys redacted). With wait_seconds (at most 300) it returns as soon as the request settles or when the wait ends, sending progress notifications meanwhile ("k of M approvals", then "approved: executes at 12:34:56Z unless vetoed (cool-off 15 min)"). A pending or approved result after the wait is normal: call again to keep waiting. A rejected (also vetoed) or expired request is an answer of the signers, not an error; do not resubmit it without asking the user.`
	descListRequests     = `List this program's requests in its conversation, newest first: id, state, approvals so far of the M needed, the call, its expiry and, while approved, when it executes. Filter with state (pending, approved, executing, executed, failed, rejected, expired, cancelled) and limit (default 20, at most 500). Next: get_request for one request's response.`
)

func (t *tools) add(s *mcp.Server) {
	no := false
	read := &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no}
	mcp.AddTool(s, &mcp.Tool{Name: ToolListTemplates, Title: "List templates", Description: descListTemplates, Annotations: read}, t.listTemplates)
	mcp.AddTool(s, &mcp.Tool{Name: ToolDescribeTemplate, Title: "Describe a template", Description: descDescribeTemplate, Annotations: read}, t.describeTemplate)
	mcp.AddTool(s, &mcp.Tool{Name: ToolPreviewRequest, Title: "Preview a call", Description: descPreviewRequest, Annotations: read}, t.previewRequest)
	mcp.AddTool(s, &mcp.Tool{Name: ToolProposeRequest, Title: "Propose a call for approval", Description: descProposeRequest,
		Annotations: &mcp.ToolAnnotations{DestructiveHint: &no}}, t.proposeRequest)
	mcp.AddTool(s, &mcp.Tool{Name: ToolGetRequest, Title: "Get (and wait for) a request", Description: descGetRequest, Annotations: read}, t.getRequest)
	mcp.AddTool(s, &mcp.Tool{Name: ToolListRequests, Title: "List this program's requests", Description: descListRequests, Annotations: read}, t.listRequests)
}

// Inputs.

type noInput struct{}

type describeIn struct {
	Name string `json:"name" jsonschema:"the template's name, as list_templates gives it (e.g. hn.get-item)"`
}

type previewIn struct {
	Template string            `json:"template,omitempty" jsonschema:"the template's name (list_templates); give it with params, or leave it out for a call by url"`
	Params   map[string]any    `json:"params,omitempty" jsonschema:"the template's parameters by name, e.g. {\"id\": \"8863\"} (describe_template lists them)"`
	Service  string            `json:"service,omitempty" jsonschema:"for a call by url: the catalog service (found from the url when left out)"`
	Method   string            `json:"method,omitempty" jsonschema:"for a call by url: the HTTP method (default GET)"`
	URL      string            `json:"url,omitempty" jsonschema:"for a call by url: the full URL, below the service's base URL"`
	Headers  map[string]string `json:"headers,omitempty" jsonschema:"for a call by url: extra request headers"`
	Body     any               `json:"body,omitempty" jsonschema:"for a call by url: the JSON body"`
}

// proposeIn is a preview's arguments and what only a proposal takes.
type proposeIn struct {
	previewIn
	ExpiresIn string `json:"expires_in,omitempty" jsonschema:"how long the signers have to approve, e.g. 30m or 2h (default the server's, at most 7d)"`
	Reason    string `json:"reason,omitempty" jsonschema:"why the call is needed, for the signers who decide (at most 1000 characters); required when the template's policy says reason_required"`
	RequestID string `json:"request_id,omitempty" jsonschema:"an optional UUID naming the request, so that a retried proposal is not submitted twice"`
}

type getIn struct {
	RequestID   string `json:"request_id" jsonschema:"the request's id, as propose_request or list_requests gave it"`
	WaitSeconds int    `json:"wait_seconds,omitempty" jsonschema:"wait up to this many seconds (at most 300) for the request to settle; 0 answers at once"`
}

type listIn struct {
	State string `json:"state,omitempty" jsonschema:"only requests in this state: pending, approved, executing, executed, failed, rejected, expired or cancelled"`
	Limit int    `json:"limit,omitempty" jsonschema:"at most this many (default 20, at most 500)"`
}

// Outputs.

type ruleOut struct {
	Service           string `json:"service"`
	Endpoint          string `json:"endpoint"`
	Method            string `json:"method"`
	RequiredApprovals int    `json:"required_approvals"`
}

// policyOut is a request's policy (PROTOCOL 9) as the tools give it.
type policyOut struct {
	RequiredApprovals int          `json:"required_approvals" jsonschema:"approvals of the signers needed in all"`
	Require           []requireOut `json:"require" jsonschema:"groups whose members must be among the approvers, each with how many distinct approvers of it (no one fills two)"`
	SubmitterCounts   bool         `json:"submitter_counts" jsonschema:"whether a submitting signer's own approval counts (a program's request never has one)"`
	ReasonRequired    bool         `json:"reason_required" jsonschema:"propose_request must pass reason"`
	DelaySeconds      int          `json:"delay_seconds" jsonschema:"the cool-off between the approvals and the call, in seconds (0: none); signers may veto the call during it"`
	Veto              int          `json:"veto,omitempty" jsonschema:"with a cool-off: how many rejections during it stop the call"`
}

type requireOut struct {
	Group     string `json:"group"`
	Approvals int    `json:"approvals"`
}

// policy is p as the tools give it; nil from a server that gives none.
func policy(p gate.Policy) *policyOut {
	if p.RequiredApprovals == 0 {
		return nil
	}
	out := &policyOut{RequiredApprovals: p.RequiredApprovals, Require: []requireOut{}, SubmitterCounts: p.SubmitterCounts,
		ReasonRequired: p.ReasonRequired, DelaySeconds: p.DelaySeconds, Veto: p.Veto}
	for _, r := range p.Require {
		out.Require = append(out.Require, requireOut{Group: r.Group, Approvals: r.Approvals})
	}
	return out
}

// policyNote is what a policy asks beyond M, for a tool's message: "It
// needs 3 approvals, including 1 of finance. Pass reason ... . Once
// approved ...". "" for a plain M.
func policyNote(p gate.Policy) string {
	if p.RequiredApprovals == 0 {
		return ""
	}
	var b strings.Builder
	if len(p.Require) > 0 {
		fmt.Fprintf(&b, "Its policy: %s. ", p.Describe())
	}
	if p.ReasonRequired {
		fmt.Fprintf(&b, "Its rule requires a reason: pass reason to propose_request (why the call is needed, at most %d characters; the signers read it). ", gate.MaxReasonChars)
	}
	if p.DelaySeconds > 0 {
		fmt.Fprintf(&b, "Once approved it waits a cool-off of %s before the call, during which %s. ", gate.DelayText(p.DelaySeconds), vetoText(p.Veto))
	}
	return b.String()
}

// vetoText is how many vetoes stop a call: "a rejection by any signer
// stops it", "2 rejections by signers stop it".
func vetoText(n int) string {
	if n <= 1 {
		return "a rejection by any signer stops it"
	}
	return fmt.Sprintf("%d rejections by signers stop it", n)
}

type templateSummary struct {
	Name              string   `json:"name"`
	Service           string   `json:"service"`
	Method            string   `json:"method"`
	Endpoint          string   `json:"endpoint"`
	Description       string   `json:"description,omitempty"`
	Risk              string   `json:"risk,omitempty"`
	RequiredApprovals int      `json:"required_approvals" jsonschema:"how many signers must approve a request of it (M)"`
	Params            []string `json:"params" jsonschema:"each parameter: name (type, required or optional, an example)"`
	Policy            string   `json:"policy,omitempty" jsonschema:"what a request of it needs, in one line (approvals, groups, reason, cool-off)"`
}

type templatesOut struct {
	Conversation string            `json:"conversation" jsonschema:"the key's conversation, whose signers approve"`
	Templates    []templateSummary `json:"templates"`
	Message      string            `json:"message"`
}

type paramOut struct {
	Name        string `json:"name"`
	In          string `json:"in" jsonschema:"where it goes: path, query or body"`
	Type        string `json:"type" jsonschema:"string, integer, number or boolean"`
	Required    bool   `json:"required"`
	Default     string `json:"default,omitempty"`
	Example     string `json:"example,omitempty"`
	Description string `json:"description,omitempty"`
}

type templateOut struct {
	Name               string     `json:"name"`
	Service            string     `json:"service"`
	Method             string     `json:"method"`
	Endpoint           string     `json:"endpoint"`
	Description        string     `json:"description,omitempty"`
	Risk               string     `json:"risk,omitempty"`
	SuggestedApprovals int        `json:"suggested_approvals"`
	Params             []paramOut `json:"params"`
	GateEnabled        bool       `json:"gate_enabled"`
	Rule               *ruleOut   `json:"rule,omitempty" jsonschema:"the rule that sets M; absent when the conversation's default holds"`
	RequiredApprovals  int        `json:"required_approvals" jsonschema:"how many signers must approve a request of it (M)"`
	Signers            int        `json:"signers"`
	Policy             *policyOut `json:"policy,omitempty" jsonschema:"what a request of it needs (PROTOCOL 9): approvals, groups, reason, cool-off"`
	PolicyText         string     `json:"policy_text,omitempty" jsonschema:"the policy in one line"`
	Message            string     `json:"message"`
}

type previewOut struct {
	Method            string            `json:"method"`
	URL               string            `json:"url"`
	Headers           map[string]string `json:"headers,omitempty"`
	Body              string            `json:"body,omitempty" jsonschema:"the JSON body, as text"`
	Service           string            `json:"service"`
	Template          string            `json:"template,omitempty"`
	Risk              string            `json:"risk,omitempty"`
	Auth              string            `json:"auth" jsonschema:"the kind of API key the gateway injects: required, optional or none (its value is never shown)"`
	GateEnabled       bool              `json:"gate_enabled"`
	Rule              *ruleOut          `json:"rule,omitempty" jsonschema:"the rule that sets M; absent when the conversation's default holds"`
	RequiredApprovals int               `json:"required_approvals" jsonschema:"how many signers must approve it (M)"`
	Signers           int               `json:"signers"`
	Policy            *policyOut        `json:"policy,omitempty" jsonschema:"what the request would need (PROTOCOL 9): approvals, groups, reason, cool-off"`
	PolicyText        string            `json:"policy_text,omitempty" jsonschema:"the policy in one line"`
	Lines             []string          `json:"lines" jsonschema:"what 'twokey request --preview' prints"`
	Message           string            `json:"message"`
}

type responseOut struct {
	Status       int               `json:"status"`
	ContentType  string            `json:"content_type,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	Body         string            `json:"body"`
	BodyEncoding string            `json:"body_encoding,omitempty" jsonschema:"base64 when the body is not text"`
	Truncated    bool              `json:"truncated"`
	Redactions   int               `json:"redactions" jsonschema:"how many copies of the API key were cut from the body and headers"`
}

type requestOut struct {
	RequestID         string       `json:"request_id"`
	State             string       `json:"state" jsonschema:"pending (waiting for approvals), approved (waiting out a cool-off; signers may still veto it), executing, executed (response holds the answer), failed, rejected, expired or cancelled"`
	Approvals         int          `json:"approvals"`
	RequiredApprovals int          `json:"required_approvals"`
	Rejections        int          `json:"rejections"`
	ExpiresAt         string       `json:"expires_at"`
	Template          string       `json:"template,omitempty"`
	Method            string       `json:"method"`
	URL               string       `json:"url"`
	Link              string       `json:"link,omitempty" jsonschema:"the request in the browser app, to show the user"`
	Reason            string       `json:"reason,omitempty" jsonschema:"why it closed (e.g. rejected, vetoed, expired)"`
	Detail            string       `json:"detail,omitempty"`
	RequestReason     string       `json:"request_reason,omitempty" jsonschema:"the reason given when it was proposed"`
	Policy            string       `json:"policy,omitempty" jsonschema:"what it needs, in one line (approvals, groups, reason, cool-off)"`
	ExecutableAt      string       `json:"executable_at,omitempty" jsonschema:"while approved: when the gateway makes the call, unless vetoed first"`
	Vetoes            int          `json:"vetoes,omitempty" jsonschema:"rejections recorded during the cool-off"`
	Response          *responseOut `json:"response,omitempty"`
	Message           string       `json:"message"`
}

type requestSummary struct {
	RequestID         string `json:"request_id"`
	State             string `json:"state"`
	Approvals         int    `json:"approvals"`
	RequiredApprovals int    `json:"required_approvals"`
	ExpiresAt         string `json:"expires_at"`
	Template          string `json:"template,omitempty"`
	Method            string `json:"method"`
	URL               string `json:"url"`
	Link              string `json:"link,omitempty"`
	Reason            string `json:"reason,omitempty"`
	ExecutableAt      string `json:"executable_at,omitempty" jsonschema:"while approved: when the call is made unless vetoed"`
}

type requestsOut struct {
	Requests []requestSummary `json:"requests"`
	Message  string           `json:"message"`
}

// Handlers. A handler's error is a tool error (IsError), its text what
// failed and what to do: the SDK puts it in the result for the model.

func (t *tools) program(ctx context.Context, req *mcp.CallToolRequest) (*client.Program, error) {
	p, err := t.o.Program(ctx, req)
	if err != nil {
		return nil, explain(err)
	}
	return p, nil
}

func (t *tools) listTemplates(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, templatesOut, error) {
	p, err := t.program(ctx, req)
	if err != nil {
		return nil, templatesOut{}, err
	}
	ts, err := p.Templates(ctx)
	if err != nil {
		return nil, templatesOut{}, explain(err)
	}
	out := templatesOut{Conversation: ts.Conversation, Templates: []templateSummary{}}
	for _, tm := range ts.Templates {
		s := templateSummary{Name: tm.Name, Service: tm.Service, Method: tm.Method, Endpoint: tm.Endpoint, Description: tm.Description,
			Risk: tm.Risk, RequiredApprovals: tm.RequiredApprovals, Params: []string{}, Policy: tm.PolicyText}
		for _, pm := range tm.Params {
			s.Params = append(s.Params, paramLine(pm.Name, pm.Type, pm.Required, pm.Example))
		}
		out.Templates = append(out.Templates, s)
	}
	switch {
	case len(out.Templates) == 0:
		out.Message = "This key may use no template of this server's catalog; an operator sets its templates (twokey keys create --templates)."
	default:
		out.Message = fmt.Sprintf("%d templates this key may use in conversation %s. describe_template gives one's parameters; preview_request shows a call before propose_request submits it.", len(out.Templates), ts.Conversation)
	}
	return nil, out, nil
}

func paramLine(name, typ string, required bool, example string) string {
	need := "optional"
	if required {
		need = "required"
	}
	s := fmt.Sprintf("%s (%s, %s", name, typ, need)
	if example != "" {
		s += ", e.g. " + example
	}
	return s + ")"
}

func (t *tools) describeTemplate(ctx context.Context, req *mcp.CallToolRequest, in describeIn) (*mcp.CallToolResult, templateOut, error) {
	if strings.TrimSpace(in.Name) == "" {
		return nil, templateOut{}, errors.New("give name: the template's name, as list_templates gives it")
	}
	p, err := t.program(ctx, req)
	if err != nil {
		return nil, templateOut{}, err
	}
	tm, err := p.Template(ctx, in.Name)
	if err != nil {
		return nil, templateOut{}, explain(err)
	}
	out := templateOut{Name: tm.Name, Service: tm.Service, Method: tm.Method, Endpoint: tm.Endpoint, Description: tm.Description,
		Risk: tm.Risk, SuggestedApprovals: tm.SuggestedApprovals, Params: []paramOut{}, GateEnabled: tm.GateEnabled,
		Rule: rule(tm.Rule), RequiredApprovals: tm.RequiredApprovals, Signers: tm.Signers, Policy: policy(tm.Policy), PolicyText: tm.PolicyText}
	for _, pm := range tm.Params {
		out.Params = append(out.Params, paramOut{Name: pm.Name, In: pm.In, Type: pm.Type, Required: pm.Required, Default: pm.Default,
			Example: pm.Example, Description: pm.Description})
	}
	if !tm.GateEnabled {
		out.Message = "The gateway is off in this conversation: a proposal is refused until its admin enables it."
	} else {
		out.Message = fmt.Sprintf("A request of %s needs %d of the %d signers' approvals (a rule on one concrete path may ask more: preview_request says). %sNext: preview_request with template %q and params.", tm.Name, tm.RequiredApprovals, tm.Signers, policyNote(tm.Policy), tm.Name)
	}
	return nil, out, nil
}

func rule(r *gate.Rule) *ruleOut {
	if r == nil {
		return nil
	}
	return &ruleOut{Service: r.Service, Endpoint: r.Endpoint, Method: r.Method, RequiredApprovals: r.RequiredApprovals}
}

// programRequest is the program API's body for the call in.
func (in previewIn) programRequest() (api.ProgramRequest, error) {
	pr := api.ProgramRequest{Template: in.Template, Service: in.Service, Method: strings.ToUpper(in.Method), URL: in.URL, Headers: in.Headers}
	if len(in.Params) > 0 {
		pr.Params = map[string]string{}
		for k, v := range in.Params {
			switch x := v.(type) {
			case string:
				pr.Params[k] = x
			case float64:
				pr.Params[k] = strconv.FormatFloat(x, 'f', -1, 64)
			case bool:
				pr.Params[k] = strconv.FormatBool(x)
			case nil:
				return pr, fmt.Errorf("parameter %q is null: give its value, or leave it out", k)
			default:
				return pr, fmt.Errorf("parameter %q is an object or list: give each parameter as a string, number or boolean", k)
			}
		}
	}
	if in.Body != nil {
		b, err := json.Marshal(in.Body)
		if err != nil {
			return pr, fmt.Errorf("body is not JSON: %v", err)
		}
		pr.Body = b
	}
	return pr, nil
}

func (t *tools) previewRequest(ctx context.Context, req *mcp.CallToolRequest, in previewIn) (*mcp.CallToolResult, previewOut, error) {
	pr, err := in.programRequest()
	if err != nil {
		return nil, previewOut{}, err
	}
	p, err := t.program(ctx, req)
	if err != nil {
		return nil, previewOut{}, err
	}
	pv, err := p.Preview(ctx, pr)
	if err != nil {
		return nil, previewOut{}, explain(err)
	}
	out := previewOut{Method: pv.Method, URL: pv.URL, Headers: pv.Headers, Service: pv.Service, Template: pv.Template, Risk: pv.Risk,
		Auth: pv.Auth.Kind, GateEnabled: pv.GateEnabled, Rule: rule(pv.Rule), RequiredApprovals: pv.RequiredApprovals,
		Signers: pv.Signers, Policy: policy(pv.Policy), PolicyText: pv.PolicyText, Lines: pv.Lines}
	if len(pv.Body) > 0 && string(pv.Body) != "null" {
		out.Body = string(pv.Body)
	}
	if len(out.Headers) == 0 {
		out.Headers = nil
	}
	if !pv.GateEnabled {
		out.Message = "Preview only. The gateway is off in this conversation: a proposal is refused until its admin enables it."
	} else {
		out.Message = fmt.Sprintf("Preview only: nothing was submitted. If this is the call you mean, propose_request with the same arguments; it will need %d of the %d signers' approvals. %s", pv.RequiredApprovals, pv.Signers, policyNote(pv.Policy))
		out.Message = strings.TrimSpace(out.Message)
	}
	return nil, out, nil
}

func (t *tools) proposeRequest(ctx context.Context, req *mcp.CallToolRequest, in proposeIn) (*mcp.CallToolResult, requestOut, error) {
	pr, err := in.programRequest()
	if err != nil {
		return nil, requestOut{}, err
	}
	if err := gate.CheckReason("reason", in.Reason); err != nil {
		return nil, requestOut{}, fmt.Errorf("%s: shorten reason to at most %d characters", twokey.ErrorMessage(err), gate.MaxReasonChars)
	}
	pr.ExpiresIn, pr.RequestID, pr.Reason = in.ExpiresIn, in.RequestID, in.Reason
	p, err := t.program(ctx, req)
	if err != nil {
		return nil, requestOut{}, err
	}
	st, err := p.Submit(ctx, pr)
	if err != nil {
		return nil, requestOut{}, t.refusal(ctx, p, pr, err)
	}
	out := requestResult(st)
	if st.State == gate.StatePending {
		pol := api.StatePolicyOf(st.RequestState)
		cool := ""
		if pol.DelaySeconds > 0 {
			cool = fmt.Sprintf("Once approved it waits a cool-off of %s, during which %s. ", gate.DelayText(pol.DelaySeconds), vetoText(pol.Veto))
		}
		out.Message = fmt.Sprintf("Proposed: request %s needs %s (people decide; you cannot). %s%sNext: get_request with request_id %q and wait_seconds (e.g. 120) to wait for the outcome.",
			st.RequestID, needsText(st), cool, linkNote(st.Link), st.RequestID)
	}
	return nil, out, nil
}

// needsText is what a request needs: "2 of the conversation's signers'
// approvals", or with more than M its policy's line.
func needsText(st *api.ProgramState) string {
	pol := api.StatePolicyOf(st.RequestState)
	if len(pol.Require) > 0 || pol.ReasonRequired || pol.DelaySeconds > 0 {
		return pol.Describe() + " of the conversation's signers"
	}
	return fmt.Sprintf("%d of the conversation's signers' approvals", st.RequiredApprovals)
}

// refusal explains a refused proposal; one without a reason that its
// rule requires says so in the tool's words (the preview of the same
// call says whether its policy requires one).
func (t *tools) refusal(ctx context.Context, p *client.Program, pr api.ProgramRequest, err error) error {
	var te *twokey.Error
	if pr.Reason != "" || !errors.As(err, &te) || te.Code != twokey.EBadPayload {
		return explain(err)
	}
	pv, perr := p.Preview(ctx, pr)
	if perr != nil || !pv.Policy.ReasonRequired {
		return explain(err)
	}
	what := "this template's rule"
	if pr.Template == "" {
		what = "this call's rule"
	}
	return fmt.Errorf("%s: %s requires a reason: pass reason (why the call is needed, 1 to %d characters; the signers read it before they decide) and propose again. Its policy: %s", twokey.EBadPayload, what, gate.MaxReasonChars, pv.PolicyText)
}

func linkNote(link string) string {
	if link == "" {
		return "Tell the user the request id so that the signers can find it. "
	}
	return "Show the user this link for the signers: " + link + " . "
}

func (t *tools) getRequest(ctx context.Context, req *mcp.CallToolRequest, in getIn) (*mcp.CallToolResult, requestOut, error) {
	if strings.TrimSpace(in.RequestID) == "" {
		return nil, requestOut{}, errors.New("give request_id: the id propose_request or list_requests gave")
	}
	if in.WaitSeconds < 0 {
		return nil, requestOut{}, errors.New("wait_seconds is at least 0")
	}
	p, err := t.program(ctx, req)
	if err != nil {
		return nil, requestOut{}, err
	}
	wait := min(time.Duration(in.WaitSeconds)*time.Second, maxWait)
	deadline := time.Now().Add(wait)
	token := req.Params.GetProgressToken()
	last, lastState := -1, ""
	for first := true; ; first = false {
		// The first look answers at once (and sends "0 of M"); then each
		// is a long poll of at most Poll, which answers as soon as the
		// request settles.
		step := min(time.Until(deadline), t.o.Poll)
		if first || step < time.Second {
			step = 0 // the program API waits in whole seconds or not at all
		}
		began := time.Now()
		st, err := p.Request(ctx, in.RequestID, step)
		if err != nil {
			return nil, requestOut{}, explain(err)
		}
		if rest := step - time.Since(began); !gate.Settled(st.State) && rest > 0 {
			// The long poll ended early with nothing settled (the server
			// is shutting down, or its proxy.max_wait is shorter): keep to
			// one look per step rather than spin.
			select {
			case <-ctx.Done():
				return nil, requestOut{}, explain(ctx.Err())
			case <-time.After(rest):
			}
		}
		if k := len(st.Approvals); (k != last || st.State != lastState) && token != nil && !gate.Settled(st.State) {
			last, lastState = k, st.State
			msg := fmt.Sprintf("%d of %d approvals", k, st.RequiredApprovals)
			if st.State == gate.StateApproved {
				msg = api.ApprovedText(st.RequestState, clockTime(api.ExecutableAt(st.RequestState), time.Now()))
			}
			// Best effort: a client that stopped listening still gets the result.
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token,
				Progress: float64(k), Total: float64(st.RequiredApprovals), Message: msg})
		}
		if gate.Settled(st.State) || time.Until(deadline) < time.Second {
			return nil, requestResult(st), nil
		}
	}
}

// clockTime is t as a progress line says it: the time of day
// ("12:34:56Z") within a day of now, else the date and time.
func clockTime(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	if d := t.Sub(now); d > -24*time.Hour && d < 24*time.Hour {
		return t.UTC().Format("15:04:05Z")
	}
	return t.UTC().Format(time.RFC3339)
}

// requestResult is a request's state as the tools answer it, with what it
// means and what to do next.
func requestResult(st *api.ProgramState) requestOut {
	out := requestOut{RequestID: st.RequestID, State: st.State, Approvals: len(st.Approvals), RequiredApprovals: st.RequiredApprovals,
		Rejections: len(st.Rejections), ExpiresAt: st.ExpiresAt, Template: st.Request.Template, Method: st.Request.Method,
		URL: st.Request.URL, Link: st.Link, RequestReason: st.Request.Reason, ExecutableAt: st.Policy.ExecutableAt, Vetoes: len(st.Vetoes)}
	pol := api.StatePolicyOf(st.RequestState)
	if st.Policy.RequiredApprovals > 0 {
		out.Policy = pol.Describe()
	}
	if st.Result != nil {
		out.Reason, out.Detail = st.Result.Reason, st.Result.Detail
	}
	if r := st.Response; r != nil {
		out.Response = &responseOut{Status: r.Status, ContentType: r.ContentType, Headers: r.Headers, Body: r.Body,
			BodyEncoding: r.BodyEncoding, Truncated: r.Truncated, Redactions: r.Redactions}
		if len(out.Response.Headers) == 0 {
			out.Response.Headers = nil
		}
	}
	why := ""
	if out.Reason != "" {
		why = " (" + out.Reason + ")"
	}
	switch st.State {
	case gate.StatePending:
		needs := ""
		if len(pol.Require) > 0 || pol.DelaySeconds > 0 {
			needs = " (it needs " + pol.Describe() + ")"
		}
		out.Message = fmt.Sprintf("Pending: %d of %d approvals%s, until %s. The signers decide; %scall get_request again with wait_seconds to keep waiting.",
			out.Approvals, out.RequiredApprovals, needs, st.ExpiresAt, strings.ToLower(linkNote(st.Link)[:1])+linkNote(st.Link)[1:])
	case gate.StateApproved:
		out.Message = fmt.Sprintf("Approved by the signers (%d of %d approvals), in its cool-off: %s; %s. Call get_request again with wait_seconds to wait for its response.",
			out.Approvals, out.RequiredApprovals, api.ApprovedText(st.RequestState, clockTime(api.ExecutableAt(st.RequestState), time.Now())), vetoText(pol.Veto))
	case gate.StateExecuting:
		out.Message = "Approved: the gateway is making the call now. Call get_request again with wait_seconds for its response."
	case gate.StateExecuted:
		status := 0
		if out.Response != nil {
			status = out.Response.Status
		}
		out.Message = fmt.Sprintf("Executed after %d approvals: the upstream answered %d; its response (API keys redacted) is in response.", out.Approvals, status)
	case gate.StateRejected:
		if out.Reason == gate.ReasonVetoed {
			out.Message = fmt.Sprintf("Vetoed: the conversation's signers stopped it during its cool-off (%d vetoes), after it was approved; it will not be made. This is their answer: do not propose the same call again without asking the user.", out.Vetoes)
			break
		}
		out.Message = "Rejected by the conversation's signers" + why + ". This is their answer: do not propose the same call again without asking the user."
	case gate.StateExpired:
		out.Message = fmt.Sprintf("Expired with %d of %d approvals: the signers did not approve it in time. Ask the user before proposing it again.", out.Approvals, out.RequiredApprovals)
	case gate.StateCancelled:
		out.Message = "Cancelled" + why + ": it will not be made."
	case gate.StateFailed:
		out.Message = "Approved, but the call failed" + why + ". " + out.Detail
	default:
		out.Message = "State " + st.State + "."
	}
	return out
}

func (t *tools) listRequests(ctx context.Context, req *mcp.CallToolRequest, in listIn) (*mcp.CallToolResult, requestsOut, error) {
	limit := in.Limit
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, 500) // the program API's most
	p, err := t.program(ctx, req)
	if err != nil {
		return nil, requestsOut{}, err
	}
	rs, err := p.Requests(ctx, in.State, limit)
	if err != nil {
		return nil, requestsOut{}, explain(err)
	}
	out := requestsOut{Requests: []requestSummary{}}
	for _, st := range rs.Requests {
		s := requestSummary{RequestID: st.RequestID, State: st.State, Approvals: len(st.Approvals), RequiredApprovals: st.RequiredApprovals,
			ExpiresAt: st.ExpiresAt, Template: st.Request.Template, Method: st.Request.Method, URL: st.Request.URL, Link: st.Link,
			ExecutableAt: st.Policy.ExecutableAt}
		if st.Result != nil {
			s.Reason = st.Result.Reason
		}
		out.Requests = append(out.Requests, s)
	}
	out.Message = fmt.Sprintf("%d requests of this program, newest first. get_request gives one's response.", len(out.Requests))
	return nil, out, nil
}

// explain turns a refusal of the program API into a tool error that says
// which limit or check refused and what to do: over a limit, when to
// retry (the server's Retry-After, when it gave one).
func explain(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errors.New("cancelled: the call was stopped before the server answered")
	}
	var te *twokey.Error
	if !errors.As(err, &te) {
		return err // a setting the client refused (a redirect, a URL): its words
	}
	code, msg := te.Code, twokey.ErrorMessage(err)
	var next string
	switch code {
	case twokey.ERateLimited:
		next = "A limit of this program key refused it (its rate, its monthly cap, or 100 of its requests already pending)."
		if d := client.RetryAfter(err); d > 0 {
			next += fmt.Sprintf(" Retry after %d seconds (Retry-After).", int64(d/time.Second))
		} else {
			next += " Retry once some of its pending requests have settled."
		}
	case twokey.EForbidden:
		next = "The key's policy does not allow this: list_templates shows the templates it may use; an operator changes its list."
	case twokey.EUnauthorized:
		next = "The program key was refused (unknown, revoked, rotated out, disabled or expired): do not retry; ask the user for a working key (an operator runs 'twokey keys ls')."
	case twokey.EBadPayload, twokey.EHostMismatch, twokey.ETooLarge:
		next = "Fix the arguments: describe_template lists each parameter with its type and an example."
	case twokey.EUnknownRequest, twokey.ENotFound:
		next = "list_requests lists this program's requests; list_templates the templates it may use."
	case twokey.EGateDisabled:
		next = "The conversation's admin must enable the gateway first; ask the user."
	case twokey.EUnavailable:
		next = "The twokey server could not be reached or is shutting down; retry in a minute."
	}
	if next == "" {
		return fmt.Errorf("%s: %s", code, msg)
	}
	return fmt.Errorf("%s: %s. %s", code, strings.TrimSuffix(msg, "."), next)
}
