package agent_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/twokey/twokey/agent"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// setRules puts rules in force in f's conversation: signer 0 proposes
// them and the others approve.
func (f *fixture) setRules(t *testing.T, rules []gate.Rule) {
	t.Helper()
	ctx := testutil.Ctx(t)
	rec, err := f.cs[0].Propose(ctx, f.conv, gate.ProposePayload{Rules: &rules})
	if err != nil {
		t.Fatal(err)
	}
	var pp gate.ProposePayload
	_ = json.Unmarshal(rec.Body, &pp)
	for _, c := range f.cs[1:] {
		if _, err := c.ApproveProposal(ctx, f.conv, pp.ProposalID); err != nil {
			t.Fatal(err)
		}
	}
}

// waitMatch reads notifications until one satisfies ok, and returns it.
func (p *progress) waitMatch(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	ctx := testutil.Ctx(t)
	for {
		select {
		case m := <-p.ch:
			if ok(m) {
				return m
			}
		case <-ctx.Done():
			t.Fatalf("no progress %s", what)
		}
	}
}

type policyJSON struct {
	RequiredApprovals int  `json:"required_approvals"`
	ReasonRequired    bool `json:"reason_required"`
	DelaySeconds      int  `json:"delay_seconds"`
	Veto              int  `json:"veto"`
	Require           []struct {
		Group     string `json:"group"`
		Approvals int    `json:"approvals"`
	} `json:"require"`
}

// TestReasonAndCoolOff, over both transports (PROTOCOL 9): describe and
// preview give a template's policy, as text and structured; a proposal
// without the reason its rule requires is a tool error saying to pass
// reason, one with it reaches the signers; once approved, get_request
// reports the cool-off ("approved: executes at ... unless vetoed") in its
// progress and its result, and a veto ends it as the signers' answer.
func TestReasonAndCoolOff(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			f := newFixture(t)
			f.setRules(t, []gate.Rule{{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 2,
				ReasonRequired: true, DelaySeconds: 900, Veto: 1}})
			p := newProgress()
			cs := tr.connect(t, f, f.key(t, api.KeyCreate{Name: "agent", Templates: []string{"httpbin.*"}}), p)
			ctx := testutil.Ctx(t)
			const text = "2 approvals; reason required; 15 min cool-off, 1 veto"

			var desc struct {
				Policy     *policyJSON `json:"policy"`
				PolicyText string      `json:"policy_text"`
				Message    string      `json:"message"`
			}
			ok(t, call(t, cs, agent.ToolDescribeTemplate, map[string]any{"name": "httpbin.echo"}), &desc)
			if desc.Policy == nil || !desc.Policy.ReasonRequired || desc.Policy.DelaySeconds != 900 || desc.Policy.Veto != 1 ||
				desc.Policy.Require == nil || desc.PolicyText != text || !strings.Contains(desc.Message, "pass reason") ||
				!strings.Contains(desc.Message, "cool-off of 15 min") {
				t.Fatalf("describe_template: %+v", desc)
			}
			var plain struct {
				Policy     *policyJSON `json:"policy"`
				PolicyText string      `json:"policy_text"`
				Message    string      `json:"message"`
			}
			ok(t, call(t, cs, agent.ToolDescribeTemplate, map[string]any{"name": "httpbin.headers"}), &plain)
			if plain.Policy == nil || plain.Policy.ReasonRequired || plain.PolicyText != "2 approvals" || strings.Contains(plain.Message, "reason") {
				t.Fatalf("describe_template of a plain rule: %+v", plain)
			}
			var list struct {
				Templates []struct {
					Name   string `json:"name"`
					Policy string `json:"policy"`
				} `json:"templates"`
			}
			ok(t, call(t, cs, agent.ToolListTemplates, nil), &list)
			for _, tm := range list.Templates {
				if tm.Name == "httpbin.echo" && tm.Policy != text {
					t.Errorf("list_templates: httpbin.echo's policy %q", tm.Policy)
				}
			}

			args := map[string]any{"template": "httpbin.echo", "params": map[string]any{"data": "hi"}}
			var pv struct {
				Policy     *policyJSON `json:"policy"`
				PolicyText string      `json:"policy_text"`
				Message    string      `json:"message"`
			}
			ok(t, call(t, cs, agent.ToolPreviewRequest, args), &pv)
			if pv.Policy == nil || !pv.Policy.ReasonRequired || pv.PolicyText != text || !strings.Contains(pv.Message, "pass reason") {
				t.Fatalf("preview_request: %+v", pv)
			}

			refused(t, call(t, cs, agent.ToolProposeRequest, args), "bad_payload", "this template's rule requires a reason: pass reason", text)
			refused(t, call(t, cs, agent.ToolProposeRequest, map[string]any{"template": "httpbin.echo", "params": map[string]any{"data": "hi"},
				"reason": strings.Repeat("x", 1001)}), "1001 characters", "shorten reason")

			reason := "post the greeting the user asked for"
			args["reason"] = reason
			var st struct {
				requestOut
				RequestReason string `json:"request_reason"`
				Policy        string `json:"policy"`
				ExecutableAt  string `json:"executable_at"`
				Vetoes        int    `json:"vetoes"`
			}
			ok(t, call(t, cs, agent.ToolProposeRequest, args), &st)
			if st.State != "pending" || st.RequestReason != reason || st.Policy != text || !strings.Contains(st.Message, "cool-off of 15 min") {
				t.Fatalf("propose_request: %+v", st)
			}

			type got struct {
				res *mcp.CallToolResult
				err error
			}
			done := make(chan got, 1)
			go func() {
				params := &mcp.CallToolParams{Name: agent.ToolGetRequest, Arguments: map[string]any{"request_id": st.RequestID, "wait_seconds": 60}}
				params.SetProgressToken("wait-policy")
				res, err := cs.CallTool(ctx, params)
				done <- got{res, err}
			}()
			p.waitFor(t, ctx, "0 of 2 approvals")
			for _, i := range []int{1, 2} {
				if _, _, err := f.cs[i].Vote(ctx, f.conv, st.RequestID, true, ""); err != nil {
					t.Fatal(err)
				}
			}
			msg := p.waitMatch(t, "approved", func(m string) bool { return strings.HasPrefix(m, "approved: ") })
			if !strings.HasPrefix(msg, "approved: executes at ") || !strings.HasSuffix(msg, "Z unless vetoed (cool-off 15 min)") {
				t.Fatalf("progress in the cool-off: %q", msg)
			}

			var mid struct {
				requestOut
				ExecutableAt string `json:"executable_at"`
			}
			ok(t, call(t, cs, agent.ToolGetRequest, map[string]any{"request_id": st.RequestID}), &mid)
			if mid.State != "approved" || mid.ExecutableAt == "" || !strings.Contains(mid.Message, "unless vetoed (cool-off 15 min)") ||
				!strings.Contains(mid.Message, "a rejection by any signer stops it") {
				t.Fatalf("get_request in the cool-off: %+v", mid)
			}
			var rs struct {
				Requests []struct {
					RequestID    string `json:"request_id"`
					ExecutableAt string `json:"executable_at"`
				} `json:"requests"`
			}
			ok(t, call(t, cs, agent.ToolListRequests, map[string]any{"state": "approved"}), &rs)
			if len(rs.Requests) != 1 || rs.Requests[0].RequestID != st.RequestID || rs.Requests[0].ExecutableAt != mid.ExecutableAt {
				t.Fatalf("list_requests approved: %+v", rs)
			}

			if _, _, err := f.cs[0].Vote(ctx, f.conv, st.RequestID, false, "not now"); err != nil {
				t.Fatal(err)
			}
			var g got
			select {
			case g = <-done:
			case <-ctx.Done():
				t.Fatal("get_request did not return")
			}
			if g.err != nil {
				t.Fatal(g.err)
			}
			var fin struct {
				requestOut
				Vetoes int `json:"vetoes"`
			}
			ok(t, g.res, &fin)
			if fin.State != "rejected" || fin.Reason != gate.ReasonVetoed || fin.Vetoes != 1 || !strings.HasPrefix(fin.Message, "Vetoed") {
				t.Fatalf("get_request after a veto: %+v", fin)
			}
		})
	}
}
