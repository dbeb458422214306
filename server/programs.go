package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/programs"
	"github.com/twokey/twokey/reqlog"
	"github.com/twokey/twokey/templates"
)

// The operator surface: program keys' endpoints (/v1/programs/...), proxy
// mode (/v1/proxy/...), the MCP endpoint (/v1/mcp, in mcp.go), the
// management API (/v0/management/..., in operator_mgmt.go) and /metrics. docs/protocol.md Part II H describes
// the wire; docs/operations.md the settings.

// operator serves the operator surface.
type operator struct {
	eng     *engine.Engine
	progs   *programs.Registry
	logs    *reqlog.Log
	metrics *Metrics
	mgmt    *management
	log     *slog.Logger
	hooks   webhookAdmin // notification targets (notify); set by the daemon
	// effective is the running configuration, secrets masked.
	effective map[string]any

	defaultWait, maxWait, requestTTL time.Duration
	// publicURL is where people open the browser app (public_url): the
	// program endpoints link each request there. "" for no links.
	publicURL string

	ctx    context.Context // ends at shutdown: long polls answer at once
	cancel context.CancelFunc
}

// Log attribute keys of the operator surface (never a key, only its prefix).
const (
	attrProgram   = "program"
	attrKeyPrefix = "key_prefix"
	attrRoute     = "route"
	attrClient    = "client"
)

func (o *operator) routes(a *API) {
	a.Handle("POST /v1/programs/requests", http.HandlerFunc(o.programSubmit))
	a.Handle("GET /v1/programs/requests/{id}", http.HandlerFunc(o.programGet))
	a.Handle("POST /v1/programs/requests/{id}/approve", http.HandlerFunc(o.programVote))
	a.Handle("POST /v1/programs/requests/{id}/reject", http.HandlerFunc(o.programVote))
	a.Handle("GET /v1/programs/requests", http.HandlerFunc(o.programList))
	a.Handle("GET /v1/programs/templates", http.HandlerFunc(o.programTemplates))
	a.Handle("GET /v1/programs/templates/{name}", http.HandlerFunc(o.programTemplate))
	a.Handle("POST /v1/programs/preview", http.HandlerFunc(o.programPreview))
	a.Handle("/v1/mcp", o.mcpHandler(a))
	a.Handle("/v1/proxy/{conversation}/{service}/{path...}", http.HandlerFunc(o.proxy))
	o.mgmtRoutes(a)
}

func programLocation(id string) string { return "/v1/programs/requests/" + url.PathEscape(id) }

// presented returns the key a program presented: a bearer token or an
// X-Api-Key header (for SDKs that send their key there) holding a program
// key, the bearer first; else whatever bearer token came, for the refusal.
func presented(r *http.Request) string {
	b := bearer(r)
	if programs.LooksLikeKey(b) {
		return b
	}
	if k := strings.TrimSpace(r.Header.Get("X-Api-Key")); programs.LooksLikeKey(k) {
		return k
	}
	return b
}

// program authenticates the request's program key, or answers 401.
func (o *operator) program(w http.ResponseWriter, r *http.Request) (*programs.Program, string, bool) {
	key := presented(r)
	p, err := o.progs.Authenticate(key)
	if err != nil {
		prefix := ""
		if programs.LooksLikeKey(key) {
			prefix = programs.Display(key)
		}
		o.refuse(w, r, nil, prefix, err)
		return nil, "", false
	}
	return p, key, true
}

// refuse answers a refused program request and logs the event (the
// program, the key's prefix, the code and the reason; never the key).
func (o *operator) refuse(w http.ResponseWriter, r *http.Request, p *programs.Program, prefix string, err error) {
	code := twokey.ErrorCode(err)
	name := ""
	if p != nil {
		name = p.Name
		if prefix == "" {
			prefix = p.Prefix()
		}
	}
	level := slog.LevelWarn
	if code == twokey.EInternal || code == twokey.EUnavailable {
		level = slog.LevelError
	}
	o.log.Log(r.Context(), level, "program request refused", attrProgram, name, attrKeyPrefix, prefix,
		engine.AttrCode, code, engine.AttrReason, twokey.ErrorMessage(err), attrRoute, r.Method+" "+r.URL.Path)
	o.metrics.refused(code)
	if d := programs.RetryAfter(err); d > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
	writeError(w, o.log, err)
}

// programSubmit is POST /v1/programs/requests.
func (o *operator) programSubmit(w http.ResponseWriter, r *http.Request) {
	prog, in, p, ok := o.programPayload(w, r)
	if !ok {
		return
	}
	st, err := o.submitProgram(prog, p)
	if err != nil {
		o.answerRefusal(w, r, prog, o.explainRefusal(prog, in, p, err))
		return
	}
	w.Header().Set("Location", programLocation(st.RequestID))
	writeJSON(w, http.StatusCreated, o.state(prog, st))
}

// programPayload authenticates a program's POST and reads its body: the
// program request and the gate.request payload it asks for; or it answers
// the refusal.
func (o *operator) programPayload(w http.ResponseWriter, r *http.Request) (*programs.Program, api.ProgramRequest, gate.RequestPayload, bool) {
	prog, _, ok := o.program(w, r)
	if !ok {
		return nil, api.ProgramRequest{}, gate.RequestPayload{}, false
	}
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, o.log, err)
		return nil, api.ProgramRequest{}, gate.RequestPayload{}, false
	}
	in, err := decodeProgramRequest(body)
	if err != nil {
		writeError(w, o.log, err)
		return nil, api.ProgramRequest{}, gate.RequestPayload{}, false
	}
	p, err := o.payload(prog, &in)
	if err != nil {
		writeError(w, o.log, err)
		return nil, api.ProgramRequest{}, gate.RequestPayload{}, false
	}
	return prog, in, p, true
}

// decodeProgramRequest reads the body of POST /v1/programs/requests:
// one JSON object of known fields.
func decodeProgramRequest(body []byte) (api.ProgramRequest, error) {
	var in api.ProgramRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, twokey.Errorf(twokey.EBadPayload, "the body is not a program request: %s (fields: template, params, service, method, url, headers, body, expires_in, reason, request_id)", twokey.ClipAt(err.Error(), 200))
	}
	if dec.More() {
		return in, twokey.Errorf(twokey.EBadPayload, "the body holds more than one JSON value; send one program request")
	}
	return in, nil
}

// payload turns a program request into a gate.request payload.
func (o *operator) payload(prog *programs.Program, in *api.ProgramRequest) (gate.RequestPayload, error) {
	return buildPayload(o.eng.Catalog(), prog, in, o.eng.Now(), o.requestTTL)
}

// buildPayload turns a program request into a gate.request payload
// against cat at now; ttl is the default time to wait for approvals.
func buildPayload(cat *catalog.Catalog, prog *programs.Program, in *api.ProgramRequest, now time.Time, ttl time.Duration) (gate.RequestPayload, error) {
	if in.ExpiresIn != "" {
		d, err := config.ParseDuration(in.ExpiresIn)
		if err != nil || d <= 0 || d > twokey.MaxRequestTTL {
			return gate.RequestPayload{}, twokey.Errorf(twokey.EBadPayload, "expires_in %q: give a duration such as 30m or 2h (at most 7d)", twokey.ClipAt(in.ExpiresIn, 200))
		}
		ttl = d
	}
	if err := gate.CheckReason("reason", in.Reason); err != nil {
		return gate.RequestPayload{}, twokey.Errorf(twokey.EBadPayload, "%s: say why the call is needed in at most %d characters", twokey.ErrorMessage(err), gate.MaxReasonChars)
	}
	p := gate.RequestPayload{RequestID: in.RequestID, ExpiresAt: conversation.FormatTime(now.Add(ttl)), Reason: in.Reason}
	switch {
	case in.Template != "":
		if in.URL != "" || in.Method != "" || in.Service != "" || in.Headers != nil || in.Body != nil {
			return p, twokey.Errorf(twokey.EBadPayload, "give a template and its params, or a service, method and url; not both")
		}
		res, svc, err := cat.Resolve(in.Template, in.Params)
		if err != nil {
			return p, err
		}
		p.Template, p.Service, p.Method, p.URL, p.Headers, p.Body = in.Template, svc.Name, res.Method, res.URL, res.Headers, res.Body
		if len(in.Params) > 0 {
			p.Params = in.Params
		}
	case in.URL != "":
		if in.Params != nil {
			return p, twokey.Errorf(twokey.EBadPayload, "params go with a template; a call by url carries its values in the url and body")
		}
		p.Method = in.Method
		if p.Method == "" {
			p.Method = http.MethodGet
		}
		p.Service = in.Service
		if p.Service == "" {
			p.Service = serviceOf(cat, in.URL)
			if p.Service == "" {
				return p, twokey.Errorf(twokey.EHostMismatch, "url %q is not below any service's base URL ('twokey templates' lists the services)", twokey.ClipAt(in.URL, 200))
			}
		}
		p.URL, p.Headers = in.URL, in.Headers
		if len(in.Body) > 0 && string(in.Body) != "null" {
			p.Body = in.Body
		}
		svc, ok := cat.Service(p.Service)
		if !ok {
			return p, twokey.Errorf(twokey.EBadPayload, "unknown service %q ('twokey templates' lists the services)", twokey.ClipAt(p.Service, 200))
		}
		path, err := svc.EndpointOf(p.URL)
		if err != nil {
			return p, err
		}
		p.Template = templateFor(cat, prog, p.Service, p.Method, path)
	default:
		return p, twokey.Errorf(twokey.EBadPayload, "give a template (with params) or a method and url")
	}
	return p, nil
}

// serviceOf is the service whose base URL holds u (the longest base wins).
func serviceOf(cat *catalog.Catalog, u string) string {
	best, bestLen := "", -1
	for _, s := range cat.Services() {
		if _, err := s.EndpointOf(u); err == nil && len(s.BaseURL) > bestLen {
			best, bestLen = s.Name, len(s.BaseURL)
		}
	}
	return best
}

// templateFor names the catalog template a call by URL matches: same
// service and method, its endpoint pattern matching path. Among several it
// prefers one the program may use, then the most specific pattern (fewest
// placeholders), then the name. "" when none matches.
func templateFor(cat *catalog.Catalog, prog *programs.Program, service, method, path string) string {
	var hits []*templates.Template
	for _, t := range cat.Templates() {
		if t.Service == service && t.Method == method && templates.MatchEndpoint(t.Endpoint, path) {
			hits = append(hits, t)
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		ai, aj := prog.Policy.AllowsTemplate(hits[i].Name), prog.Policy.AllowsTemplate(hits[j].Name)
		if ai != aj {
			return ai
		}
		ci, cj := strings.Count(hits[i].Endpoint, "{"), strings.Count(hits[j].Endpoint, "{")
		if ci != cj {
			return ci < cj
		}
		return hits[i].Name < hits[j].Name
	})
	if len(hits) == 0 {
		return ""
	}
	return hits[0].Name
}

// submit charges the program's policy and has the gateway write the
// request; a request the gateway refuses is not charged to the monthly cap.
// It answers a refusal itself.
func (o *operator) submit(w http.ResponseWriter, r *http.Request, prog *programs.Program, p gate.RequestPayload) (*api.RequestState, bool) {
	st, err := o.submitProgram(prog, p)
	if err != nil {
		o.answerRefusal(w, r, prog, err)
		return nil, false
	}
	return st, true
}

// answerRefusal answers a refusal of submitProgram: the program's
// policy's through refuse (logged, counted, with Retry-After), the
// gateway's as it is.
func (o *operator) answerRefusal(w http.ResponseWriter, r *http.Request, prog *programs.Program, err error) {
	var cr chargeRefusal
	if errors.As(err, &cr) {
		o.refuse(w, r, prog, "", cr.error)
		return
	}
	writeError(w, o.log, err)
}

// chargeRefusal is a refusal of the program's policy (its rate, its
// monthly cap), which refuse logs and counts.
type chargeRefusal struct{ error }

func (c chargeRefusal) Unwrap() error { return c.error }

// submitProgram is submit's work: it returns the refusal, a chargeRefusal
// when the program's policy refused it.
func (o *operator) submitProgram(prog *programs.Program, p gate.RequestPayload) (*api.RequestState, error) {
	refund, err := o.progs.Charge(prog.Name, p.Template)
	if err != nil {
		return nil, chargeRefusal{err}
	}
	st, err := o.eng.SubmitProgram(prog.Conversation, prog.Name, prog.Prefix(), p)
	if err != nil {
		refund()
		o.log.Info("program request not accepted", attrProgram, prog.Name, attrKeyPrefix, prog.Prefix(),
			engine.AttrCode, twokey.ErrorCode(err), engine.AttrReason, twokey.ErrorMessage(err))
		return nil, err
	}
	return st, nil
}

// explainRefusal says, in a program's words, why the gateway refused a
// program request by its policy (PROTOCOL 9): without a reason where the
// rule requires one, the engine's words name the CLI's flag; a program
// gives "reason" in its body. Other refusals are as they came.
func (o *operator) explainRefusal(prog *programs.Program, in api.ProgramRequest, p gate.RequestPayload, err error) error {
	var cr chargeRefusal
	if errors.As(err, &cr) || twokey.ErrorCode(err) != twokey.EBadPayload || p.Reason != "" {
		return err
	}
	pv, perr := o.preview(prog, in, p)
	if perr != nil || !pv.Policy.ReasonRequired {
		return err
	}
	return twokey.Errorf(twokey.EBadPayload, "%s requires a reason: give \"reason\" in the body (1 to %d characters), saying why the call is needed; the signers read it before they approve (policy: %s)",
		ruleName(pv.Rule), gate.MaxReasonChars, pv.PolicyText)
}

// ruleName is how a refusal names the rule a call falls under.
func ruleName(r *gate.Rule) string {
	if r == nil {
		return "the conversation's policy"
	}
	return fmt.Sprintf("the rule %s %s %s", r.Service, r.Method, r.Endpoint)
}

// own returns the program's request id, or unknown_request when it is
// not the program's.
func (o *operator) own(prog *programs.Program, id string) (*api.RequestState, error) {
	st, err := o.eng.RequestState(prog.Conversation, id)
	if err != nil || st.Program != prog.Name {
		return nil, twokey.Errorf(twokey.EUnknownRequest, "program %q has no request %s", prog.Name, twokey.ClipAt(id, 200))
	}
	return st, nil
}

// waitFor waits at most d for a request to settle; shutdown ends it early.
func (o *operator) waitFor(r *http.Request, prog *programs.Program, st *api.RequestState, d time.Duration) (*api.RequestState, error) {
	if d <= 0 || gate.Settled(st.State) {
		return st, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	defer cancel()
	stop := context.AfterFunc(o.ctx, cancel)
	defer stop()
	return o.eng.WaitSettled(ctx, prog.Conversation, st.RequestID)
}

// state is a request's program state: where to poll it and its link in
// the browser app.
func (o *operator) state(prog *programs.Program, st *api.RequestState) api.ProgramState {
	return api.NewProgramState(st, programLocation(st.RequestID), config.DeepLink(o.publicURL, prog.Conversation, st.RequestID))
}

// view is state with the response, once executed.
func (o *operator) view(prog *programs.Program, st *api.RequestState) api.ProgramState {
	v := o.state(prog, st)
	if st.State == gate.StateExecuted {
		if resp, err := o.eng.Response(prog.Conversation, st); err == nil {
			v.Response = resp
		}
	}
	return v
}

// programGet is GET /v1/programs/requests/{id}?wait=30s: a long poll that
// answers as soon as the request settles, or when the wait is over.
func (o *operator) programGet(w http.ResponseWriter, r *http.Request) {
	prog, _, ok := o.program(w, r)
	if !ok {
		return
	}
	st, err := o.own(prog, r.PathValue("id"))
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	wait := time.Duration(0)
	if s := r.URL.Query().Get("wait"); s != "" {
		if wait, err = parseWait(s); err != nil {
			writeError(w, o.log, err)
			return
		}
		wait = min(wait, o.maxWait)
	}
	if st, err = o.waitFor(r, prog, st, wait); err != nil {
		writeError(w, o.log, err)
		return
	}
	writeJSON(w, http.StatusOK, o.view(prog, st))
}

// requestStates are the states GET /v1/programs/requests?state= takes.
var requestStates = []string{gate.StatePending, gate.StateApproved, gate.StateExecuting, gate.StateExecuted, gate.StateFailed,
	gate.StateExpired, gate.StateRejected, gate.StateCancelled}

// Listing bounds of GET /v1/programs/requests.
const (
	defaultProgramList = 50
	maxProgramList     = 500
)

// programList is GET /v1/programs/requests?state=S&limit=N: the program's
// requests, newest first, without their responses (GET one for that).
func (o *operator) programList(w http.ResponseWriter, r *http.Request) {
	prog, _, ok := o.program(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && !slices.Contains(requestStates, state) {
		writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "state=%q: give one of %s, or none for all", twokey.Clip(state), strings.Join(requestStates, ", ")))
		return
	}
	limit := defaultProgramList
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxProgramList {
			writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "limit=%q: give a number from 1 to %d", twokey.Clip(s), maxProgramList))
			return
		}
		limit = n
	}
	sts, err := o.eng.ProgramRequests(prog.Conversation, prog.Name, state, limit)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	out := api.ProgramRequests{Requests: make([]api.ProgramState, 0, len(sts))}
	for _, st := range sts {
		out.Requests = append(out.Requests, o.state(prog, st))
	}
	writeJSON(w, http.StatusOK, out)
}

// programTemplates is GET /v1/programs/templates: the templates the key
// may use, with the M each would get in its conversation.
func (o *operator) programTemplates(w http.ResponseWriter, r *http.Request) {
	prog, _, ok := o.program(w, r)
	if !ok {
		return
	}
	conv, ts, err := o.eng.ProgramTemplates(prog.Conversation, prog.Policy.AllowsTemplate)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	for i := range ts {
		withPolicy(&ts[i])
	}
	writeJSON(w, http.StatusOK, api.ProgramTemplates{Conversation: conv, Templates: ts})
}

// programTemplate is GET /v1/programs/templates/{name}: one of them. A
// template outside the key's list is forbidden, as a request of it is.
func (o *operator) programTemplate(w http.ResponseWriter, r *http.Request) {
	prog, _, ok := o.program(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if _, known := o.eng.Catalog().Template(name); !known {
		writeError(w, o.log, twokey.Errorf(twokey.ENotFound, "no template %q; GET /v1/programs/templates lists those this key may use", twokey.Clip(name)))
		return
	}
	if err := prog.CheckTemplate(name); err != nil {
		o.refuse(w, r, prog, "", err)
		return
	}
	_, ts, err := o.eng.ProgramTemplates(prog.Conversation, func(t string) bool { return t == name })
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	if len(ts) != 1 { // the catalog never lets this happen
		writeError(w, o.log, twokey.Errorf(twokey.EInternal, "template %s is listed %d times", name, len(ts)))
		return
	}
	withPolicy(&ts[0])
	writeJSON(w, http.StatusOK, ts[0])
}

// withPolicy fills in a template's policy (PROTOCOL 9) from the rule and
// M the engine found for it, as a request of it would get them.
func withPolicy(t *api.ProgramTemplate) {
	t.Policy = gate.PolicyOf(t.RequiredApprovals, t.Rule)
	t.PolicyText = t.Policy.Describe()
}

// programPreview is POST /v1/programs/preview: what POST
// /v1/programs/requests with the same body would submit, and the M and
// policy it would get, without submitting it or charging the key's rate
// or cap.
func (o *operator) programPreview(w http.ResponseWriter, r *http.Request) {
	prog, in, p, ok := o.programPayload(w, r)
	if !ok {
		return
	}
	if err := prog.CheckTemplate(p.Template); err != nil {
		o.refuse(w, r, prog, "", err)
		return
	}
	pv, err := o.preview(prog, in, p)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	writeJSON(w, http.StatusOK, pv)
}

// preview is the preview of a program request in, p as buildPayload made
// it, with the policy it would get.
func (o *operator) preview(prog *programs.Program, in api.ProgramRequest, p gate.RequestPayload) (*api.ProgramPreview, error) {
	var pv *api.Preview
	var err error
	if in.Template != "" {
		pv, err = o.eng.ProgramPreview(prog.Conversation, in.Template, in.Params)
	} else {
		svc, _ := o.eng.Catalog().Service(p.Service) // payload found it
		path, perr := svc.EndpointOf(p.URL)
		if perr != nil {
			return nil, perr
		}
		pv, err = o.eng.ProgramCallPreview(prog.Conversation, p, path)
	}
	if err != nil {
		return nil, err
	}
	out := &api.ProgramPreview{Preview: *pv, Policy: gate.PolicyOf(pv.RequiredApprovals, pv.Rule)}
	out.PolicyText = out.Policy.Describe()
	return out, nil
}

// parseWait reads a wait: seconds ("30") or a duration ("30s", "2m").
func parseWait(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, twokey.Errorf(twokey.EBadPayload, "wait=%q: give seconds (30) or a duration (30s)", twokey.ClipAt(s, 200))
	}
	return d, nil
}

// programVote refuses: a program may propose but never approve or reject.
func (o *operator) programVote(w http.ResponseWriter, r *http.Request) {
	prog, _, ok := o.program(w, r)
	if !ok {
		return
	}
	o.refuse(w, r, prog, "", twokey.Errorf(twokey.EForbidden,
		"a program key may propose calls but never approve or reject them; the conversation's signers decide (twokey approve CONV %s)", twokey.ClipAt(r.PathValue("id"), 200)))
}

// Proxy mode.

// proxyPrefix is where proxy mode's paths start.
const proxyPrefix = "/v1/proxy/"
