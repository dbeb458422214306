package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// askJSON POSTs body to path as c's bearer (none when c is nil) and
// returns the status, the answer's bytes and its headers.
func askJSON(t *testing.T, base string, c *client.Client, path, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest("POST", base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c != nil {
		tok, err := c.Token(testutil.Ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

// refusal decodes the protocol's error body.
func refusal(t *testing.T, data []byte) api.ErrorDetail {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error.Code == "" {
		t.Fatalf("not an error body: %s", data)
	}
	return eb.Error
}

func TestPreviewEndpoint(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.Ctx(t)
	path := "/v1/conversations/" + f.conv + "/preview"
	ask := func(c *client.Client, body string) (int, []byte) {
		t.Helper()
		st, data, _ := askJSON(t, f.srv.URL(), c, path, body)
		return st, data
	}

	// The gateway off: the call is resolved, and the lines say so.
	st, data := ask(f.ca, `{"template": "httpbin.headers"}`)
	if st != 200 {
		t.Fatalf("preview with the gate off: %d %s", st, data)
	}
	var off api.Preview
	if err := json.Unmarshal(data, &off); err != nil {
		t.Fatal(err)
	}
	if off.GateEnabled || off.Rule != nil || off.Signers != 0 ||
		!slices.Contains(off.Lines, "the gateway is off in ops: enable it before submitting") {
		t.Fatalf("gate off: %+v", off)
	}

	// The gateway on at 1 of 2, a rule for POSTs to httpbin, a key for it.
	rule := gate.Rule{Service: "httpbin", Endpoint: "*", Method: "POST", RequiredApprovals: 2}
	if _, err := f.ca.EnableGate(ctx, f.conv, 1, []gate.Rule{rule}); err != nil {
		t.Fatal(err)
	}
	stored, err := f.ca.AddSecret(ctx, f.conv, "httpbin", "", "", 0, []byte("sk_preview_test_4d1f"))
	if err != nil {
		t.Fatal(err)
	}
	var sp gate.SecretStoredPayload
	_ = json.Unmarshal(stored.Body, &sp)

	// Every field, by its wire name.
	st, data = ask(f.cb, `{"template": "httpbin.echo", "params": {"data": "hi"}}`)
	if st != 200 {
		t.Fatalf("preview: %d %s", st, data)
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(data, &fields)
	for _, k := range []string{"method", "url", "headers", "body", "service", "auth", "template", "risk", "suggested_approvals",
		"gate_enabled", "rule", "required_approvals", "signers", "lines", "request"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("the answer has no %q: %s", k, data)
		}
	}
	if bytes.Contains(data, []byte("sk_preview_test_4d1f")) {
		t.Fatal("a preview carries the key's value")
	}
	var p api.Preview
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POST https://httpbin.org/post",
		"  Content-Type: application/json",
		`  body {"data":"hi"}`,
		"service httpbin (key required), template httpbin.echo, risk write",
		"rule httpbin POST * applies: 2 of 2 signers must approve (suggested 2)",
		"preview only: nothing submitted",
	}
	if !slices.Equal(p.Lines, want) {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(p.Lines, "\n"), strings.Join(want, "\n"))
	}
	if p.Method != "POST" || p.URL != "https://httpbin.org/post" || string(p.Body) != `{"data":"hi"}` || p.Service != "httpbin" ||
		p.Template != "httpbin.echo" || p.Risk != "write" || p.SuggestedApprovals != 2 || !p.GateEnabled ||
		p.Rule == nil || !p.Rule.Equal(rule) || p.RequiredApprovals != 2 || p.Signers != 2 {
		t.Fatalf("preview: %+v", p)
	}
	if p.Auth != (gate.PreviewAuth{Kind: "required", HeaderName: "Authorization", SecretID: sp.SecretID}) {
		t.Fatalf("auth: %+v, want the secret %s", p.Auth, sp.SecretID)
	}
	if p.Request.Template != "httpbin.echo" || p.Request.Service != "httpbin" || p.Request.Method != "POST" ||
		p.Request.URL != p.URL || string(p.Request.Body) != `{"data":"hi"}` || p.Request.Params["data"] != "hi" ||
		p.Request.Headers["Content-Type"] != "application/json" {
		t.Fatalf("request: %+v", p.Request)
	}

	// The request, signed as it is, is accepted and frozen at the M the
	// preview named.
	rec, err := f.cb.Submit(ctx, f.conv, p.Request.Payload(conversation.FormatTime(time.Now().Add(time.Hour))))
	if err != nil {
		t.Fatalf("submitting the preview's request: %v", err)
	}
	var sent gate.RequestPayload
	_ = json.Unmarshal(rec.Body, &sent)
	rs, err := f.cb.Request(ctx, f.conv, sent.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if rs.RequiredApprovals != p.RequiredApprovals || rs.Rule == nil || !rs.Rule.Equal(rule) {
		t.Fatalf("submitted at M=%d rule %v; the preview said %d, %v", rs.RequiredApprovals, rs.Rule, p.RequiredApprovals, p.Rule)
	}

	// A path parameter, escaped; no rule applies; a service with no key.
	st, data = ask(f.ca, `{"template": "dogs.breed", "params": {"breed": "hound dog"}}`)
	if st != 200 {
		t.Fatalf("dogs.breed: %d %s", st, data)
	}
	p = api.Preview{}
	_ = json.Unmarshal(data, &p)
	if p.URL != "https://dog.ceo/api/breed/hound%20dog/images/random" || p.Rule != nil || p.RequiredApprovals != 1 ||
		p.Auth != (gate.PreviewAuth{Kind: "none"}) || p.Request.Body != nil || len(p.Headers) != 0 ||
		p.Lines[len(p.Lines)-2] != "no rule applies: the default 1 of 2 signers must approve (suggested 1)" {
		t.Fatalf("dogs.breed: %+v", p)
	}
	if !bytes.Contains(data, []byte(`"body":null`)) {
		t.Fatalf("a preview without a body says body null: %s", data)
	}

	// Refusals, in the protocol's error body.
	for _, tc := range []struct {
		name   string
		c      *client.Client
		body   string
		status int
		code   string
		says   string
	}{
		{"no bearer", nil, `{"template": "httpbin.headers"}`, 401, twokey.EUnauthorized, ""},
		{"non-member", f.ce, `{"template": "httpbin.headers"}`, 403, twokey.ENotMember, "not a member"},
		{"unknown template", f.ca, `{"template": "nope.nothing"}`, 400, twokey.EBadPayload, "'twokey templates'"},
		{"no template", f.ca, `{}`, 400, twokey.EBadPayload, "'twokey templates'"},
		{"missing param", f.ca, `{"template": "dogs.breed"}`, 400, twokey.EBadPayload, `missing required parameter "breed"`},
		{"unknown param", f.ca, `{"template": "httpbin.headers", "params": {"x": "1"}}`, 400, twokey.EBadPayload, "unknown parameter"},
		{"bad path param", f.ca, `{"template": "dogs.breed", "params": {"breed": "../../etc"}}`, 400, twokey.EBadPayload, "breed"},
		{"unknown field", f.ca, `{"template": "httpbin.headers", "x": 1}`, 400, twokey.EBadPayload, "template"},
		{"a number for a param", f.ca, `{"template": "hn.get-item", "params": {"id": 8863}}`, 400, twokey.EBadPayload, "params"},
	} {
		st, data := ask(tc.c, tc.body)
		e := refusal(t, data)
		if st != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.says) {
			t.Errorf("%s: %d %s %q, want %d %s saying %q", tc.name, st, e.Code, e.Message, tc.status, tc.code, tc.says)
		}
	}
	// Unknown conversation.
	st, data, _ = askJSON(t, f.srv.URL(), f.ca, "/v1/conversations/"+client.NewID()+"/preview", `{"template": "httpbin.headers"}`)
	if e := refusal(t, data); st != 404 || e.Code != twokey.EUnknownConversation {
		t.Fatalf("unknown conversation: %d %s", st, data)
	}
}

func TestRulesCheckEndpoint(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.Ctx(t)
	broad := gate.Rule{Service: "httpbin", Endpoint: "*", Method: "POST", RequiredApprovals: 2}
	old := gate.Rule{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 1} // shadows broad already
	if _, err := f.ca.EnableGate(ctx, f.conv, 1, []gate.Rule{broad, old}); err != nil {
		t.Fatal(err)
	}
	check := func(c *client.Client, body string) (int, []byte) {
		t.Helper()
		st, data, _ := askJSON(t, f.srv.URL(), c, "/v1/conversations/"+f.conv+"/rules/check", body)
		return st, data
	}

	// A new shadow is named, the old one is not repeated; the set comes
	// back normalized.
	st, data := check(f.cb, `{"rules": [
		{"service": "httpbin", "endpoint": "*", "method": "POST", "required_approvals": 2},
		{"service": "httpbin", "endpoint": "/post", "method": "POST", "required_approvals": 1},
		{"service": "httpbin", "endpoint": "/anything/{x}", "method": "post", "required_approvals": 1},
		{"method": "DELETE", "required_approvals": 2}]}`)
	if st != 200 {
		t.Fatalf("check: %d %s", st, data)
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(data, &fields)
	if string(fields["error"]) != "null" || fields["rules"] == nil || fields["shadows"] == nil {
		t.Fatalf("answer: %s", data)
	}
	var rc api.RulesCheck
	if err := json.Unmarshal(data, &rc); err != nil {
		t.Fatal(err)
	}
	fresh := gate.Rule{Service: "httpbin", Endpoint: "/anything/{x}", Method: "POST", RequiredApprovals: 1}
	wantRules := []gate.Rule{broad, old, fresh, {Service: "*", Endpoint: "*", Method: "DELETE", RequiredApprovals: 2}}
	if !gate.RulesEqual(rc.Rules, wantRules) {
		t.Fatalf("rules %+v, want %+v", rc.Rules, wantRules)
	}
	wantShadow := gate.Shadow{Rule: fresh, Over: broad}.String()
	if !slices.Equal(rc.Shadows, []string{wantShadow}) {
		t.Fatalf("shadows %q, want only %q", rc.Shadows, wantShadow)
	}
	if !strings.HasPrefix(wantShadow, "rule httpbin POST /anything/{x} (M=1) is more specific than the stricter rule httpbin POST * (M=2)") {
		t.Fatalf("the shadow says %q", wantShadow)
	}

	// Nothing to say: no shadows, as an empty list.
	st, data = check(f.ca, `{"rules": []}`)
	if st != 200 || !bytes.Contains(data, []byte(`"shadows":[]`)) || !bytes.Contains(data, []byte(`"rules":[]`)) || !bytes.Contains(data, []byte(`"error":null`)) {
		t.Fatalf("empty set: %d %s", st, data)
	}

	// A set the gate would refuse: the error is the one a proposal of it
	// gets, word for word.
	for name, rules := range map[string][]gate.Rule{
		"duplicate":       {broad, old, {Service: "httpbin", Endpoint: "*", Method: "post", RequiredApprovals: 1}},
		"M over signers":  {{Service: "httpbin", Endpoint: "*", Method: "GET", RequiredApprovals: 3}},
		"M zero":          {{Service: "httpbin", Endpoint: "*", Method: "GET"}},
		"unknown service": {{Service: "githb", Endpoint: "*", Method: "GET", RequiredApprovals: 1}},
		"bad endpoint":    {{Service: "httpbin", Endpoint: "post", Method: "GET", RequiredApprovals: 1}},
	} {
		got, err := f.ca.CheckRules(ctx, f.conv, rules)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, perr := f.ca.Propose(ctx, f.conv, gate.ProposePayload{Rules: &rules})
		var te *twokey.Error
		if perr == nil || !errors.As(perr, &te) {
			t.Fatalf("%s: the proposal was not refused: %v", name, perr)
		}
		if got.Error == nil || got.Error.Code != te.Code || got.Error.Message != te.Message {
			t.Errorf("%s: check says %+v; the proposal got %s %q", name, got.Error, te.Code, te.Message)
		}
	}
	got, err := f.ca.CheckRules(ctx, f.conv, []gate.Rule{broad, broad})
	if err != nil || got.Error == nil || !strings.Contains(got.Error.Message, "rules 1 and 2 both cover httpbin POST *; keep one") {
		t.Fatalf("duplicate: %+v %v", got, err)
	}

	// Refusals of the question itself.
	for _, tc := range []struct {
		name   string
		c      *client.Client
		body   string
		status int
		code   string
	}{
		{"no bearer", nil, `{"rules": []}`, 401, twokey.EUnauthorized},
		{"non-member", f.ce, `{"rules": []}`, 403, twokey.ENotMember},
		{"no rules", f.ca, `{}`, 400, twokey.EBadPayload},
		{"not a rule", f.ca, `{"rules": [{"service": 1}]}`, 400, twokey.EBadPayload},
		{"two values", f.ca, `{"rules": []} {}`, 400, twokey.EBadPayload},
	} {
		st, data := check(tc.c, tc.body)
		if e := refusal(t, data); st != tc.status || e.Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, data, tc.status, tc.code)
		}
	}
}
