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

// setRules puts rules in force in g's conversation: signer 0 proposes
// them and the others approve.
func (g *gateFixture) setRules(t *testing.T, rules []gate.Rule) {
	t.Helper()
	ctx := testutil.Ctx(t)
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
}

// TestProgramPolicy (PROTOCOL 9 through the program API): a template and
// a preview carry the policy a request would get; a request without the
// reason its rule requires is refused in a program's words, one with too
// long a reason too; the reason reaches the signed request; a request
// whose approvals are in waits out its cool-off ("approved, executes at
// ...", listed by state=approved) and then executes, and a veto during
// it rejects another (reason vetoed).
func TestProgramPolicy(t *testing.T) {
	clk := newFakeClock()
	g := newGateOn(t, clk, 3, 2, withMgmt())
	ctx := testutil.Ctx(t)
	if _, err := g.cs[0].AddSecret(ctx, g.conv, "httpbin", "", "", 0, []byte(testKey)); err != nil {
		t.Fatal(err)
	}
	g.setRules(t, []gate.Rule{{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 2,
		ReasonRequired: true, DelaySeconds: 900, Veto: 1}})
	key, _ := g.program(t, "agent", map[string]any{"templates": []string{"httpbin.*"}})
	hdr := bearerHdr(key)
	const text = "2 approvals; reason required; 15 min cool-off, 1 veto"

	// The templates say the policy.
	var echo api.ProgramTemplate
	r := call(t, "GET", g.srv.URL()+"/v1/programs/templates/httpbin.echo", nil, hdr)
	r.json(t, &echo)
	if r.status != 200 || !echo.Policy.ReasonRequired || echo.Policy.DelaySeconds != 900 || echo.Policy.Veto != 1 ||
		echo.Policy.RequiredApprovals != 2 || echo.PolicyText != text {
		t.Fatalf("template httpbin.echo: %d %s", r.status, r.body)
	}
	var ts api.ProgramTemplates
	r = call(t, "GET", g.srv.URL()+"/v1/programs/templates", nil, hdr)
	r.json(t, &ts)
	for _, tm := range ts.Templates {
		want := "2 approvals"
		if tm.Name == "httpbin.echo" {
			want = text
		}
		if tm.PolicyText != want || tm.Policy.Require == nil {
			t.Errorf("listed %s: policy %+v %q, want %q", tm.Name, tm.Policy, tm.PolicyText, want)
		}
	}
	if !strings.Contains(string(r.body), `"policy":{"required_approvals":2,"require":[],"submitter_counts":true,"reason_required":false,"delay_seconds":0}`) {
		t.Errorf("a plain policy in JSON: %s", r.body)
	}

	// So does a preview, of a template and of a call by URL.
	echoBody := map[string]any{"template": "httpbin.echo", "params": map[string]string{"data": "hi"}}
	for _, body := range []map[string]any{echoBody, {"method": "POST", "url": g.baseURL + "/post", "body": map[string]any{"data": "x"}}} {
		var pv api.ProgramPreview
		r = call(t, "POST", g.srv.URL()+"/v1/programs/preview", body, hdr)
		r.json(t, &pv)
		if r.status != 200 || pv.PolicyText != text || !pv.Policy.ReasonRequired || pv.RequiredApprovals != 2 || pv.URL != g.baseURL+"/post" {
			t.Fatalf("preview %v: %d %s", body, r.status, r.body)
		}
	}

	// No reason: refused, saying how a program gives one.
	r = g.programSubmit(t, key, echoBody)
	if r.status != 400 || r.code() != twokey.EBadPayload || !strings.Contains(string(r.body), `requires a reason: give \"reason\" in the body`) ||
		!strings.Contains(string(r.body), "httpbin POST /post") || !strings.Contains(string(r.body), text) || strings.Contains(string(r.body), "--reason") {
		t.Fatalf("no reason: %d %s", r.status, r.body)
	}
	// Too long a reason: refused before the gateway sees it.
	long := map[string]any{"template": "httpbin.echo", "params": map[string]string{"data": "hi"}, "reason": strings.Repeat("é", 1001)}
	if r = g.programSubmit(t, key, long); r.status != 400 || !strings.Contains(string(r.body), "1001 characters") {
		t.Fatalf("a reason of 1001 characters: %d %s", r.status, r.body)
	}
	if r = call(t, "POST", g.srv.URL()+"/v1/programs/preview", long, hdr); r.status != 400 {
		t.Fatalf("preview with a reason of 1001 characters: %d %s", r.status, r.body)
	}
	// A plain template needs none.
	if r = g.programSubmit(t, key, map[string]any{"template": "httpbin.headers"}); r.status != 201 {
		t.Fatalf("a template whose rule needs no reason: %d %s", r.status, r.body)
	}

	submit := func(reason string) api.ProgramState {
		t.Helper()
		body := map[string]any{"template": "httpbin.echo", "params": map[string]string{"data": "hi"}, "reason": reason}
		r := g.programSubmit(t, key, body)
		var st api.ProgramState
		r.json(t, &st)
		if r.status != 201 {
			t.Fatalf("submit with a reason: %d %s", r.status, r.body)
		}
		return st
	}
	reason := "refund order 1234: the customer was charged twice"
	st := submit(reason)
	if st.Request.Reason != reason || st.PolicyText != text || !st.Policy.ReasonRequired || st.Policy.ExecutableAt != "" ||
		!strings.HasPrefix(st.Progress, "0 of 2 approvals; expires at ") {
		t.Fatalf("submitted: %+v %q %q", st.RequestState, st.PolicyText, st.Progress)
	}
	if sig := g.state(t, st.RequestID); sig.Request.Reason != reason {
		t.Fatalf("the signers' state has reason %q", sig.Request.Reason)
	}

	// The approvals are in: approved, waiting out the cool-off.
	for _, i := range []int{1, 2} {
		if err := g.approve(t, i, st.RequestID); err != nil {
			t.Fatal(err)
		}
	}
	got := g.programGet(t, key, st.RequestID, "0")
	at := clk.Now().Add(15 * time.Minute).UTC().Format(time.RFC3339)
	if got.State != gate.StateApproved || got.Policy.ExecutableAt == "" ||
		got.Progress != "approved: executes at "+at+" unless vetoed (cool-off 15 min)" || g.up.Count("/httpbin/post") != 0 {
		t.Fatalf("approved: %+v %q (want executes at %s)", got.RequestState, got.Progress, at)
	}
	var list api.ProgramRequests
	r = call(t, "GET", g.srv.URL()+"/v1/programs/requests?state=approved", nil, hdr)
	r.json(t, &list)
	if r.status != 200 || len(list.Requests) != 1 || list.Requests[0].RequestID != st.RequestID || list.Requests[0].Progress != got.Progress {
		t.Fatalf("state=approved: %d %s", r.status, r.body)
	}

	// A second one, vetoed during its cool-off.
	vetoed := submit("second try")
	for _, i := range []int{1, 2} {
		if err := g.approve(t, i, vetoed.RequestID); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := g.cs[0].Vote(ctx, g.conv, vetoed.RequestID, false, "not this one"); err != nil {
		t.Fatal(err)
	}
	v := g.programGet(t, key, vetoed.RequestID, "5s")
	if v.State != gate.StateRejected || v.Result == nil || v.Result.Reason != gate.ReasonVetoed || v.Progress != "rejected (vetoed)" || len(v.Vetoes) != 1 {
		t.Fatalf("vetoed: %+v %q", v.RequestState, v.Progress)
	}

	// The cool-off over, the first executes.
	clk.Advance(15 * time.Minute)
	done := g.programGet(t, key, st.RequestID, "10s")
	if done.State != gate.StateExecuted || done.Response == nil || done.Response.Status != 200 || done.Progress != "executed: the service answered 200" ||
		g.up.Count("/httpbin/post") != 1 {
		t.Fatalf("after the cool-off: %+v %q", done.RequestState, done.Progress)
	}
}
