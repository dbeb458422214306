package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"path"
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
// mode (/v1/proxy/...), the management API (/v0/management/..., in
// operator_mgmt.go) and /metrics. docs/protocol.md Part II H describes
// the wire; docs/operations.md the settings.

// operator serves the operator surface.
type operator struct {
	eng     *engine.Engine
	progs   *programs.Registry
	logs    *reqlog.Log
	metrics *Metrics
	mgmt    *management
	log     *slog.Logger
	// effective is the running configuration, secrets masked.
	effective map[string]any

	defaultWait, maxWait, requestTTL time.Duration

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
	writeError(w, o.log, err)
}

// programSubmit is POST /v1/programs/requests.
func (o *operator) programSubmit(w http.ResponseWriter, r *http.Request) {
	prog, _, ok := o.program(w, r)
	if !ok {
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	in, err := decodeProgramRequest(body)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	p, err := o.payload(prog, &in)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	st, ok := o.submit(w, r, prog, p)
	if !ok {
		return
	}
	w.Header().Set("Location", programLocation(st.RequestID))
	writeJSON(w, http.StatusCreated, api.ProgramState{RequestState: st, Location: programLocation(st.RequestID)})
}

// decodeProgramRequest reads the body of POST /v1/programs/requests:
// one JSON object of known fields.
func decodeProgramRequest(body []byte) (api.ProgramRequest, error) {
	var in api.ProgramRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, twokey.Errorf(twokey.EBadPayload, "the body is not a program request: %s (fields: template, params, service, method, url, headers, body, expires_in, request_id)", twokey.ClipAt(err.Error(), 200))
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
	p := gate.RequestPayload{RequestID: in.RequestID, ExpiresAt: conversation.FormatTime(now.Add(ttl))}
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
func (o *operator) submit(w http.ResponseWriter, r *http.Request, prog *programs.Program, p gate.RequestPayload) (*api.RequestState, bool) {
	refund, err := o.progs.Charge(prog.Name, p.Template)
	if err != nil {
		o.refuse(w, r, prog, "", err)
		return nil, false
	}
	st, err := o.eng.SubmitProgram(prog.Conversation, prog.Name, prog.Prefix(), p)
	if err != nil {
		refund()
		o.log.Info("program request not accepted", attrProgram, prog.Name, attrKeyPrefix, prog.Prefix(),
			engine.AttrCode, twokey.ErrorCode(err), engine.AttrReason, twokey.ErrorMessage(err))
		writeError(w, o.log, err)
		return nil, false
	}
	return st, true
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

// view adds the response (once executed) and the location to a state.
func (o *operator) view(prog *programs.Program, st *api.RequestState) api.ProgramState {
	v := api.ProgramState{RequestState: st, Location: programLocation(st.RequestID)}
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

// refuseDotSegments answers host_mismatch, before the router sees the
// request, when a proxy path holds a dot segment: "." or "..", also
// percent-encoded ("%2e%2E") or behind an encoded slash ("a%2F.."). The
// router would clean such a path and redirect the client (307) to
// another path, so that ".../hackernews/../httpbin/..." became a call to
// httpbin after a redirect the client followed. A path counts as the
// proxy's when it starts with /v1/proxy/ as sent or once cleaned.
func refuseDotSegments(w http.ResponseWriter, r *http.Request, log *slog.Logger) bool {
	if !strings.HasPrefix(r.URL.Path, proxyPrefix) && !strings.HasPrefix(path.Clean(r.URL.Path)+"/", proxyPrefix) {
		return false
	}
	for _, seg := range strings.Split(r.URL.EscapedPath(), "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			dec = seg
		}
		for _, part := range strings.Split(dec, "/") {
			if part == "." || part == ".." {
				writeError(w, log, twokey.Errorf(twokey.EHostMismatch,
					"the path %q holds a dot segment (%q); proxy paths are taken as sent, never cleaned or redirected: name the service and its path without . or .. (/v1/proxy/CONV/SERVICE/PATH)",
					twokey.ClipAt(r.URL.EscapedPath(), 200), seg))
				return true
			}
		}
	}
	return false
}

// hopHeaders are never forwarded: they belong to one connection, carry
// the client's own credentials, or are the gateway's to set.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Authorization": true, "Host": true, "Content-Length": true, "Cookie": true, "Accept-Encoding": true,
	"User-Agent": true, "Prefer": true, "Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true,
	"X-Forwarded-Proto": true, "X-Real-Ip": true, "Expect": true,
}

// proxyHeaders picks the client's headers that become the request's.
func proxyHeaders(h http.Header, secretHeader, key string) map[string]string {
	drop := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			drop[http.CanonicalHeaderKey(strings.TrimSpace(name))] = true
		}
	}
	out := map[string]string{}
	for name, vals := range h {
		canon := http.CanonicalHeaderKey(name)
		if hopHeaders[canon] || engine.ForbiddenRequestHeader(canon) || drop[canon] || strings.HasPrefix(canon, "X-Twokey-") || strings.EqualFold(canon, secretHeader) {
			continue
		}
		v := strings.Join(vals, ", ")
		if key != "" && strings.Contains(v, key) {
			continue // the program's own key never travels on
		}
		out[canon] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// preferWait reads Prefer: wait=N (RFC 7240), in seconds, capped at max.
func preferWait(h http.Header, def, max time.Duration) (time.Duration, bool) {
	for _, v := range h.Values("Prefer") {
		for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
			k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "wait") {
				continue
			}
			if n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`)); err == nil && n >= 0 {
				return min(time.Duration(n)*time.Second, max), true
			}
		}
	}
	return def, false
}

// proxy is ANY /v1/proxy/{conversation}/{service}/{path...}: the call
// itself becomes a program request; the answer is the upstream's response
// once the signers have approved it within the wait, else 202 with the
// request's Location.
func (o *operator) proxy(w http.ResponseWriter, r *http.Request) {
	if o.tooLongTarget(w, r) {
		return
	}
	prog, key, ok := o.program(w, r)
	if !ok {
		return
	}
	convRef, svcName := r.PathValue("conversation"), r.PathValue("service")
	if convRef != prog.Conversation && convRef != prog.ConversationName {
		o.refuse(w, r, prog, "", twokey.Errorf(twokey.EForbidden, "program key %q is bound to conversation %s (%s), not %q",
			prog.Name, prog.ConversationName, prog.Conversation, twokey.ClipAt(convRef, 200)))
		return
	}
	cat := o.eng.Catalog()
	svc, found := cat.Service(svcName)
	if !found {
		names := []string{}
		for _, s := range cat.Services() {
			names = append(names, s.Name)
		}
		writeError(w, o.log, twokey.Errorf(twokey.ENotFound, "no service %q; this gateway knows %s", twokey.ClipAt(svcName, 200), strings.Join(names, ", ")))
		return
	}
	// The rest of the path exactly as the client escaped it; the gateway's
	// URL check then refuses any trick (.., encoded slashes, ...).
	rest := ""
	if parts := strings.SplitN(r.URL.EscapedPath(), "/", 6); len(parts) == 6 {
		rest = parts[5]
	}
	target := strings.TrimSuffix(svc.BaseURL, "/") + "/" + rest
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	// Bounded in size and in time like every body (limits.body_timeout);
	// answered with the proxy's own codes (too_large, else bad_payload).
	body, err := readBody(w, r)
	if err != nil {
		if twokey.ErrorCode(err) == twokey.ETooLarge {
			err = twokey.Errorf(twokey.ETooLarge, "the body is over %d bytes; a proxied call is recorded in the conversation and must fit in it", twokey.MaxEnvelopeBytes)
		} else {
			err = twokey.Errorf(twokey.EBadPayload, "%s", twokey.ErrorMessage(err))
		}
		writeError(w, o.log, err)
		return
	}
	if len(body) > 0 && !json.Valid(body) {
		writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "the proxy forwards JSON bodies only (the call is recorded in the conversation as JSON); this body is not JSON"))
		return
	}
	secretHeader := svc.HeaderName
	if secretHeader == "" {
		secretHeader = "Authorization"
	}
	ttl := o.requestTTL
	if s := r.Header.Get("X-Twokey-Expires"); s != "" {
		d, err := config.ParseDuration(s)
		if err != nil || d <= 0 || d > twokey.MaxRequestTTL {
			writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "X-Twokey-Expires %q: give a duration such as 30m (at most 7d)", twokey.ClipAt(s, 200)))
			return
		}
		ttl = d
	}
	p := gate.RequestPayload{Service: svc.Name, Method: r.Method, URL: target,
		Headers: proxyHeaders(r.Header, secretHeader, key), ExpiresAt: conversation.FormatTime(o.eng.Now().Add(ttl))}
	if len(body) > 0 {
		p.Body = body
	}
	if path, err := svc.EndpointOf(target); err == nil {
		p.Template = templateFor(cat, prog, svc.Name, r.Method, path)
	}
	st, ok := o.submit(w, r, prog, p)
	if !ok {
		return
	}
	wait, asked := preferWait(r.Header, o.defaultWait, o.maxWait)
	if st, err = o.waitFor(r, prog, st, wait); err != nil {
		writeError(w, o.log, err)
		return
	}
	h := w.Header()
	h.Set("X-Twokey-Request-Id", st.RequestID)
	if asked {
		h.Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
	}
	o.proxyAnswer(w, r, prog, st)
}

// proxyAnswer writes the upstream's response, or what became of the call.
func (o *operator) proxyAnswer(w http.ResponseWriter, r *http.Request, prog *programs.Program, st *api.RequestState) {
	v := o.view(prog, st)
	h := w.Header()
	fail := func(status int, code, msg string) {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}, "request": v})
	}
	reason := ""
	if st.Result != nil {
		reason = st.Result.Reason
	}
	switch st.State {
	case gate.StatePending, gate.StateExecuting:
		h.Set("Location", v.Location)
		writeJSON(w, http.StatusAccepted, v)
	case gate.StateExecuted:
		resp := v.Response
		if resp == nil {
			fail(http.StatusBadGateway, "request_failed", "the call was made but its response record cannot be read; see the conversation")
			return
		}
		for k, val := range resp.Headers {
			if k != "Content-Length" && k != "Content-Encoding" {
				h.Set(k, val)
			}
		}
		if resp.ContentType != "" {
			h.Set("Content-Type", resp.ContentType)
		}
		if resp.Truncated {
			h.Set("X-Twokey-Truncated", "true")
		}
		if resp.Redactions > 0 {
			h.Set("X-Twokey-Redactions", strconv.Itoa(resp.Redactions))
		}
		// A body that is not UTF-8 is base64 in the record; the program
		// gets its bytes back.
		body, err := resp.BodyBytes()
		if err != nil {
			fail(http.StatusBadGateway, "request_failed", "the call was made but its response record cannot be read; see the conversation")
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(resp.Status)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	case gate.StateFailed:
		fail(http.StatusBadGateway, "request_failed", "the approved call failed: "+reason)
	case gate.StateRejected:
		fail(http.StatusForbidden, "request_rejected", "the conversation's signers rejected this call")
	case gate.StateExpired:
		fail(http.StatusGone, twokey.ERequestExpired, "not enough approvals came before the request expired at "+st.ExpiresAt)
	default:
		fail(http.StatusConflict, "request_cancelled", "the request was cancelled: "+reason)
	}
}
