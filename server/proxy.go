package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/programs"
)

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
		_ = enc.Encode(api.ProxyFailure{Error: api.ErrorDetail{Code: code, Message: msg}, Request: v})
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
