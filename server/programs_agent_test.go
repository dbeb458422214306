package server_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// The program endpoints the MCP tools ask besides propose and get:
// templates, preview, the program's requests, and the deep link.

func withPublicURL(u string) testutil.Option {
	return func(o *testutil.Options) { o.PublicURL = u }
}

// TestProgramTemplates: GET /v1/programs/templates lists only the key's
// templates, each with its params and the M it would get in the key's
// conversation; GET /v1/programs/templates/{name} answers one, refuses one
// outside the list (403) and an unknown one (404).
func TestProgramTemplates(t *testing.T) {
	g := newGate(t, 3, 2, withMgmt())
	ctx := testutil.Ctx(t)
	rules := []gate.Rule{{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 3}}
	rec, err := g.cs[0].Propose(ctx, g.conv, gate.ProposePayload{Rules: &rules})
	if err != nil {
		t.Fatal(err)
	}
	var pp gate.ProposePayload
	_ = json.Unmarshal(rec.Body, &pp)
	for _, c := range g.cs[1:] {
		if _, err := c.ApproveProposal(ctx, g.conv, pp.ProposalID); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := g.program(t, "lister", map[string]any{"templates": []string{"httpbin.*"}})
	r := call(t, "GET", g.srv.URL()+"/v1/programs/templates", nil, bearerHdr(key))
	if r.status != 200 {
		t.Fatalf("templates: %d %s", r.status, r.body)
	}
	var ts api.ProgramTemplates
	r.json(t, &ts)
	if ts.Conversation != "ops" || len(ts.Templates) < 2 {
		t.Fatalf("templates: %+v", ts)
	}
	var echo *api.ProgramTemplate
	for i, tm := range ts.Templates {
		if !strings.HasPrefix(tm.Name, "httpbin.") {
			t.Errorf("listed %s, outside the key's httpbin.*", tm.Name)
		}
		if tm.Name == "httpbin.echo" {
			echo = &ts.Templates[i]
		}
	}
	if echo == nil || echo.Method != "POST" || echo.RequiredApprovals != 3 || echo.Rule == nil || echo.Rule.Endpoint != "/post" ||
		echo.Signers != 3 || !echo.GateEnabled || len(echo.Params) != 1 || echo.Params[0].Type != "string" || !echo.Params[0].Required {
		t.Fatalf("httpbin.echo: %+v", echo)
	}

	r = call(t, "GET", g.srv.URL()+"/v1/programs/templates/httpbin.headers", nil, bearerHdr(key))
	var one api.ProgramTemplate
	r.json(t, &one)
	if r.status != 200 || one.Name != "httpbin.headers" || one.RequiredApprovals != 2 || one.Rule != nil {
		t.Fatalf("one template: %d %+v", r.status, one)
	}
	if r := call(t, "GET", g.srv.URL()+"/v1/programs/templates/hn.get-item", nil, bearerHdr(key)); r.status != 403 || r.code() != twokey.EForbidden {
		t.Fatalf("a template outside the list: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", g.srv.URL()+"/v1/programs/templates/no.such", nil, bearerHdr(key)); r.status != 404 {
		t.Fatalf("an unknown template: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", g.srv.URL()+"/v1/programs/templates", nil, nil); r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no key: %d %v", r.status, r.header)
	}
}

// TestProgramPreview: POST /v1/programs/preview says what the same body
// would submit (a template, or a call by URL), its M and the CLI's lines,
// submits nothing and charges no rate; the key's template list holds.
func TestProgramPreview(t *testing.T) {
	g := newGate(t, 3, 2, withMgmt())
	key, _ := g.program(t, "previewer", map[string]any{"templates": []string{"httpbin.echo"}, "rate": "1/h"})
	url := g.srv.URL() + "/v1/programs/preview"
	for i := 0; i < 2; i++ { // twice: a preview is not charged
		r := call(t, "POST", url, map[string]any{"template": "httpbin.echo", "params": map[string]string{"data": "hi"}}, bearerHdr(key))
		var pv api.Preview
		r.json(t, &pv)
		if r.status != 200 || pv.URL != g.baseURL+"/post" || pv.RequiredApprovals != 2 || pv.Signers != 3 ||
			pv.Lines[len(pv.Lines)-1] != "preview only: nothing submitted" || pv.Auth.Kind != "required" {
			t.Fatalf("template preview: %d %s", r.status, r.body)
		}
	}
	r := call(t, "POST", url, map[string]any{"method": "POST", "url": g.baseURL + "/post", "body": map[string]any{"data": "x"}}, bearerHdr(key))
	var pv api.Preview
	r.json(t, &pv)
	if r.status != 200 || pv.Template != "httpbin.echo" || pv.Service != "httpbin" || string(pv.Body) != `{"data":"x"}` || pv.RequiredApprovals != 2 {
		t.Fatalf("preview by url: %d %s", r.status, r.body)
	}
	if r := call(t, "POST", url, map[string]any{"template": "httpbin.headers"}, bearerHdr(key)); r.status != 403 {
		t.Fatalf("a template outside the list: %d %s", r.status, r.body)
	}
	if r := call(t, "POST", url, map[string]any{"template": "httpbin.echo"}, bearerHdr(key)); r.status != 400 || !strings.Contains(string(r.body), "data") {
		t.Fatalf("a missing parameter: %d %s", r.status, r.body)
	}
	if r := g.programSubmit(t, key, map[string]any{"template": "httpbin.echo", "params": map[string]string{"data": "hi"}}); r.status != 201 {
		t.Fatalf("the rate was charged by previews: %d %s", r.status, r.body)
	}
	if all, err := g.cs[0].Requests(testutil.Ctx(t), g.conv, ""); err != nil || len(all) != 1 {
		t.Fatalf("previews submitted requests: %d %v", len(all), err)
	}
}

// TestProgramList: GET /v1/programs/requests lists the program's own
// requests (not a signer's, not another program's), by state, with the
// deep link under public_url; over the rate, a 429 says Retry-After.
func TestProgramList(t *testing.T) {
	g := newGate(t, 3, 2, withMgmt(), withPublicURL("https://twokey.example.com/"))
	key, _ := g.program(t, "mine", map[string]any{"rate": "2/h"})
	other, _ := g.program(t, "theirs", nil)
	var ids []string
	for i := 0; i < 2; i++ {
		r := g.programSubmit(t, key, map[string]any{"template": "httpbin.headers"})
		var st api.ProgramState
		r.json(t, &st)
		if r.status != 201 || st.Link != "https://twokey.example.com/#/c/"+g.conv+"/r/"+st.RequestID {
			t.Fatalf("submit: %d %s", r.status, r.body)
		}
		ids = append(ids, st.RequestID)
	}
	r := g.programSubmit(t, key, map[string]any{"template": "httpbin.headers"})
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d %v %s", r.status, r.header, r.body)
	}
	g.programSubmit(t, other, map[string]any{"template": "httpbin.headers"})
	g.submit(t, 0, "/get", time.Hour)
	if err := g.approve(t, 1, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := g.approve(t, 2, ids[0]); err != nil {
		t.Fatal(err)
	}
	g.programGet(t, key, ids[0], "30s")

	list := func(q string) []api.ProgramState {
		t.Helper()
		r := call(t, "GET", g.srv.URL()+"/v1/programs/requests"+q, nil, bearerHdr(key))
		if r.status != 200 {
			t.Fatalf("list %s: %d %s", q, r.status, r.body)
		}
		var out api.ProgramRequests
		r.json(t, &out)
		return out.Requests
	}
	if all := list(""); len(all) != 2 || all[0].RequestID != ids[1] || all[1].RequestID != ids[0] || all[0].Link == "" {
		t.Fatalf("all: %+v", all)
	}
	if p := list("?state=pending"); len(p) != 1 || p[0].RequestID != ids[1] {
		t.Fatalf("pending: %+v", p)
	}
	if e := list("?state=executed&limit=5"); len(e) != 1 || e[0].RequestID != ids[0] {
		t.Fatalf("executed: %+v", e)
	}
	if n := list("?limit=1"); len(n) != 1 {
		t.Fatalf("limit=1: %+v", n)
	}
	for _, q := range []string{"?state=done", "?limit=0", "?limit=9999"} {
		if r := call(t, "GET", g.srv.URL()+"/v1/programs/requests"+q, nil, bearerHdr(key)); r.status != 400 {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
}

// TestMCPEndpointNeedsAKey: /v1/mcp refuses a request with no key or a
// bad one with the program endpoints' 401 (JSON, WWW-Authenticate) before
// any MCP is read.
func TestMCPEndpointNeedsAKey(t *testing.T) {
	g := newGate(t, 2, 1, withMgmt())
	init := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	hdr := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
	for _, key := range []string{"", "tk_notarealkeyatallnotarealkeyatallnotareal", "a-session-token"} {
		h := map[string]string{}
		for k, v := range hdr {
			h[k] = v
		}
		if key != "" {
			h["Authorization"] = "Bearer " + key
		}
		r := call(t, "POST", g.srv.URL()+"/v1/mcp", init, h)
		if r.status != 401 || r.code() != twokey.EUnauthorized || r.header.Get("WWW-Authenticate") == "" ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("key %q: %d %v %s", key, r.status, r.header, r.body)
		}
	}
	key, _ := g.program(t, "agent", nil)
	hdr["Authorization"] = "Bearer " + key
	r := call(t, "POST", g.srv.URL()+"/v1/mcp", init, hdr)
	sid := r.header.Get("Mcp-Session-Id")
	if r.status != 200 || !strings.Contains(string(r.body), `"serverInfo"`) || sid == "" {
		t.Fatalf("initialize with a key: %d %v %s", r.status, r.header, r.body)
	}
	// The session is the program's: another program's key may not use it.
	other, _ := g.program(t, "intruder", nil)
	list := []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	hdr["Authorization"], hdr["Mcp-Session-Id"] = "Bearer "+other, sid
	if r := call(t, "POST", g.srv.URL()+"/v1/mcp", list, hdr); r.status != 403 {
		t.Fatalf("another program on the session: %d %s", r.status, r.body)
	}
}
