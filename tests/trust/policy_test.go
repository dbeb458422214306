package trust_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// Policies beyond M-of-N (PROTOCOL 9), end to end over the real server on a
// fake clock: each field of a rule, the cool-off and its veto, and the
// audit of every log afterwards.

// policyFixture is n signers (signer0 the admin) on a fake clock, with the
// gateway enabled with default M 1, the groups (by signer index) and rules
// given, and a key for httpbin.
func policyFixture(t *testing.T, n int, groups map[string][]int, rules ...gate.Rule) *fixture {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	fx := &fixture{up: testutil.NewUpstream(t), clk: clk}
	fx.srv = testutil.StartServer(t, fx.up, testutil.WithClock(clk))
	fx.base = fx.up.URL + "/httpbin"
	ctx := testutil.Ctx(t)
	var members []conversation.Member
	fx.ids, fx.cs, members = testutil.Signers(t, fx.srv.URL(), n, clk)
	fx.conv = mustConv(t, fx.cs[0], "policies", members)
	gw, err := fx.cs[0].Gateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fx.gw = gw.SigningKey
	if _, err := fx.cs[0].Post(ctx, fx.conv, conversation.KindGateEnable, gate.EnablePayload{Header: fx.header(),
		RequiredApprovals: 1, Rules: rules, Groups: fx.groups(groups)}); err != nil {
		t.Fatalf("enable: %v", err)
	}
	if _, err := fx.cs[0].AddSecret(ctx, fx.conv, "httpbin", "", "", 0, []byte(fixtureKey)); err != nil {
		t.Fatal(err)
	}
	return fx
}

// groups names signers by index as key ids.
func (fx *fixture) groups(by map[string][]int) map[string][]string {
	out := map[string][]string{}
	for g, is := range by {
		out[g] = []string{}
		for _, i := range is {
			out[g] = append(out[g], fx.ids[i].KeyID())
		}
	}
	return out
}

// submitWhy posts a request of path as signer i with reason.
func (fx *fixture) submitWhy(t *testing.T, i int, path, reason string) (string, error) {
	t.Helper()
	p := fx.request(path)
	p.Reason = reason
	_, err := fx.cs[i].Post(testutil.Ctx(t), fx.conv, conversation.KindGateRequest, p)
	return p.RequestID, err
}

// vote posts signer i's approval or rejection of id with reason.
func (fx *fixture) vote(t *testing.T, i int, id string, approve bool, reason string) error {
	t.Helper()
	_, _, err := fx.cs[i].Vote(testutil.Ctx(t), fx.conv, id, approve, reason)
	return err
}

func (fx *fixture) get(t *testing.T, id string) *api.RequestState {
	t.Helper()
	st, err := fx.cs[0].Request(testutil.Ctx(t), fx.conv, id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// settle waits (a bounded poll: the call runs on its own goroutine) until
// id is in one of states, and returns its state object.
func (fx *fixture) settle(t *testing.T, id string, states ...string) *api.RequestState {
	t.Helper()
	for range 2000 {
		st := fx.get(t, id)
		if slices.Contains(states, st.State) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("request %s never reached %v (it is %s)", id, states, fx.get(t, id).State)
	return nil
}

// records lists the payloads of conv's records of kind about request id.
func (fx *fixture) records(t *testing.T, kind, id string) []map[string]any {
	t.Helper()
	recs, err := fx.cs[0].Records(testutil.Ctx(t), fx.conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, r := range recs {
		if r.Kind != kind {
			continue
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body["request_id"] == id {
			body["received_at"] = r.ReceivedAt
			out = append(out, body)
		}
	}
	return out
}

func code(err error) string { return twokey.ErrorCode(err) }

func TestPolicyRequireFillsSlotsWithDistinctKeys(t *testing.T) {
	t.Parallel()
	// signer1 is in finance and security both: one person, one slot.
	fx := policyFixture(t, 4, map[string][]int{"finance": {1, 2}, "security": {1, 3}},
		gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2,
			Require: []gate.Require{{Group: "finance", Approvals: 1}, {Group: "security", Approvals: 1}}})
	id, err := fx.submitWhy(t, 1, "/anything/slots", "")
	if err != nil {
		t.Fatal(err)
	}
	st := fx.get(t, id)
	if st.State != gate.StatePending || st.Policy.RequiredApprovals != 2 || len(st.Policy.Require) != 2 || !st.Policy.SubmitterCounts {
		t.Fatalf("after the submission by a key in both groups: %+v (policy %+v)", st.State, st.Policy)
	}
	// signer0 is in no group: 2 approvals, but security still has no
	// slot filled by a key other than signer1's finance... signer1 can
	// take either slot, so one more key of either group meets it; signer0
	// counts toward M but fills no slot.
	if err := fx.vote(t, 0, id, true, ""); err != nil {
		t.Fatal(err)
	}
	if s := fx.get(t, id).State; s != gate.StatePending {
		t.Fatalf("with signer0 (in no group) and signer1 (in both) the request is %s; one key cannot fill two slots", s)
	}
	if err := fx.vote(t, 3, id, true, "security ok"); err != nil {
		t.Fatal(err)
	}
	st = fx.settle(t, id, gate.StateExecuted, gate.StateFailed)
	if st.State != gate.StateExecuted {
		t.Fatalf("state %s, want executed", st.State)
	}
	want := map[string]string{fx.ids[1].KeyID(): "finance", fx.ids[3].KeyID(): "security"}
	if !maps.Equal(st.Assignment, want) {
		t.Fatalf("assignment %v, want signer1 for finance and signer3 for security", st.Assignment)
	}
	ex := fx.records(t, conversation.KindGateExecuted, id)
	if len(ex) != 1 || ex[0]["assignment"] == nil {
		t.Fatalf("gate.executed records: %v", ex)
	}
	if n := fx.up.Count("/httpbin/anything/slots"); n != 1 {
		t.Fatalf("upstream got %d calls, want 1", n)
	}
	fx.verifyLog(t)
}

func TestPolicyEarlyRejectionWhenUnreachable(t *testing.T) {
	t.Parallel()
	fx := policyFixture(t, 4, map[string][]int{"security": {3}},
		gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2,
			Require: []gate.Require{{Group: "security", Approvals: 1}}})
	id, err := fx.submitWhy(t, 0, "/anything/unreachable", "")
	if err != nil {
		t.Fatal(err)
	}
	// Two signers remain undecided, but the only key of security said no.
	if err := fx.vote(t, 3, id, false, "not on my watch"); err != nil {
		t.Fatal(err)
	}
	st := fx.get(t, id)
	if st.State != gate.StateRejected || st.Result == nil || st.Result.Reason != gate.ReasonRejected {
		t.Fatalf("after security's only member rejected: %s %+v, want rejected at once", st.State, st.Result)
	}
	fx.verifyLog(t)
}

func TestPolicySubmitterDoesNotCount(t *testing.T) {
	t.Parallel()
	no := false
	fx := policyFixture(t, 3, nil, gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2, SubmitterCounts: &no})
	id, err := fx.submitWhy(t, 0, "/anything/self", "")
	if err != nil {
		t.Fatal(err)
	}
	st := fx.get(t, id)
	if len(st.Approvals) != 0 || st.Policy.SubmitterCounts {
		t.Fatalf("approvals %v policy %+v: the submitter's request must not count", st.Approvals, st.Policy)
	}
	if err := fx.vote(t, 0, id, true, ""); code(err) != twokey.EAlreadyVoted {
		t.Fatalf("the submitter approving its own request: %v, want already_voted", err)
	}
	if err := fx.vote(t, 1, id, true, ""); err != nil {
		t.Fatal(err)
	}
	if s := fx.get(t, id).State; s != gate.StatePending {
		t.Fatalf("one approval besides the submitter: %s, want pending", s)
	}
	if err := fx.vote(t, 2, id, true, ""); err != nil {
		t.Fatal(err)
	}
	st = fx.settle(t, id, gate.StateExecuted, gate.StateFailed)
	ex := fx.records(t, conversation.KindGateExecuted, id)
	if st.State != gate.StateExecuted || len(ex) != 1 {
		t.Fatalf("state %s, %d gate.executed", st.State, len(ex))
	}
	approvers := fmt.Sprint(ex[0]["approvers"])
	if strings.Contains(approvers, fx.ids[0].KeyID()) {
		t.Fatalf("gate.executed lists the submitter among approvers %s", approvers)
	}
	// With 3 signers a rule of 3 that does not count the submitter is
	// impossible: refused when set, naming the rule.
	_, err = fx.cs[0].Propose(testutil.Ctx(t), fx.conv, gate.ProposePayload{Rules: &[]gate.Rule{{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 3, SubmitterCounts: &no}}})
	if code(err) != twokey.EBadPayload || !strings.Contains(twokey.ErrorMessage(err), "rule 1 (httpbin * *)") {
		t.Fatalf("an impossible rule: %v, want bad_payload naming rule 1", err)
	}
	fx.verifyLog(t)
}

func TestPolicyReasonRequired(t *testing.T) {
	t.Parallel()
	fx := policyFixture(t, 2, nil, gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2, ReasonRequired: true})
	if _, err := fx.submitWhy(t, 0, "/anything/why", ""); code(err) != twokey.EBadPayload || !strings.Contains(twokey.ErrorMessage(err), "requires a reason") {
		t.Fatalf("without a reason: %v, want bad_payload saying a reason is required", err)
	}
	if _, err := fx.submitWhy(t, 0, "/anything/why", strings.Repeat("é", gate.MaxReasonChars+1)); code(err) != twokey.EBadPayload {
		t.Fatalf("a reason of 1001 characters: %v, want bad_payload", err)
	}
	long := strings.Repeat("é", gate.MaxReasonChars) // 2,000 bytes, 1,000 code points
	id, err := fx.submitWhy(t, 0, "/anything/why", long)
	if err != nil {
		t.Fatalf("a reason of 1000 characters: %v", err)
	}
	if st := fx.get(t, id); st.Request.Reason != long || !st.Policy.ReasonRequired {
		t.Fatalf("the state object does not carry the reason or the policy: %+v", st.Policy)
	}
	if err := fx.vote(t, 1, id, true, "looks right"); err != nil {
		t.Fatal(err)
	}
	fx.settle(t, id, gate.StateExecuted)
	fx.verifyLog(t)
}

func TestPolicyCoolOff(t *testing.T) {
	t.Parallel()
	rule := gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2, DelaySeconds: 900}
	fx := policyFixture(t, 3, nil, rule)
	t.Run("executes at executable_at, once", func(t *testing.T) {
		id, err := fx.submitWhy(t, 0, "/anything/cool", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.vote(t, 1, id, true, ""); err != nil {
			t.Fatal(err)
		}
		st := fx.get(t, id)
		ap := fx.records(t, conversation.KindGateApproved, id)
		if st.State != gate.StateApproved || len(ap) != 1 || st.Policy.Veto != 1 || st.Policy.DelaySeconds != 900 {
			t.Fatalf("after the approvals: %s, %d gate.approved, policy %+v", st.State, len(ap), st.Policy)
		}
		at, _ := conversation.ParseTime(ap[0]["received_at"].(string))
		exec, _ := conversation.ParseTime(ap[0]["executable_at"].(string))
		if !exec.Equal(at.Add(900*time.Second)) || st.Policy.ExecutableAt != ap[0]["executable_at"] {
			t.Fatalf("executable_at %v, want received_at %v + 15 min (state says %s)", exec, at, st.Policy.ExecutableAt)
		}
		// It no longer expires: an hour passes in the window? No: expiry
		// is an hour away and the window 15 min; approvals change nothing.
		if err := fx.vote(t, 2, id, true, "me too"); err != nil {
			t.Fatalf("an approval during the cool-off: %v", err)
		}
		fx.clk.Advance(exec.Sub(fx.clk.Now()) - time.Millisecond)
		if s := fx.get(t, id).State; s != gate.StateApproved || fx.up.Count("/httpbin/anything/cool") != 0 {
			t.Fatalf("a millisecond before executable_at: %s, %d calls", s, fx.up.Count("/httpbin/anything/cool"))
		}
		fx.clk.Advance(time.Millisecond)
		st = fx.settle(t, id, gate.StateExecuted, gate.StateFailed)
		if st.State != gate.StateExecuted || fx.up.Count("/httpbin/anything/cool") != 1 {
			t.Fatalf("at executable_at: %s, %d calls; want executed once", st.State, fx.up.Count("/httpbin/anything/cool"))
		}
		ex := fx.records(t, conversation.KindGateExecuted, id)
		done, _ := conversation.ParseTime(ex[0]["received_at"].(string))
		if done.Before(exec) {
			t.Fatalf("executed at %v, before executable_at %v", done, exec)
		}
		if err := fx.vote(t, 2, id, false, "late"); code(err) != twokey.ERequestClosed && code(err) != twokey.EAlreadyVoted {
			t.Fatalf("a vote after the execution: %v", err)
		}
	})
	t.Run("a veto stops it", func(t *testing.T) {
		id, _ := fx.submitWhy(t, 0, "/anything/veto", "")
		if err := fx.vote(t, 1, id, true, ""); err != nil {
			t.Fatal(err)
		}
		fx.clk.Advance(10 * time.Minute)
		// signer1 approved, and may still say stop.
		if err := fx.vote(t, 1, id, false, "wait, wrong account"); err != nil {
			t.Fatalf("a veto by an approver: %v", err)
		}
		st := fx.get(t, id)
		if st.State != gate.StateRejected || st.Result.Reason != gate.ReasonVetoed || len(st.Vetoes) != 1 {
			t.Fatalf("after the veto: %s %+v vetoes %v", st.State, st.Result, st.Vetoes)
		}
		fx.clk.Advance(time.Hour)
		if n := fx.up.Count("/httpbin/anything/veto"); n != 0 {
			t.Fatalf("a vetoed request was sent %d times", n)
		}
	})
	t.Run("the submitter cancels it", func(t *testing.T) {
		id, _ := fx.submitWhy(t, 0, "/anything/cancel", "")
		if err := fx.vote(t, 2, id, true, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := fx.cs[0].Cancel(testutil.Ctx(t), fx.conv, id); err != nil {
			t.Fatalf("cancel during the cool-off: %v", err)
		}
		if st := fx.get(t, id); st.State != gate.StateCancelled || st.Result.Reason != gate.ReasonCancelled {
			t.Fatalf("after the cancel: %s %+v", st.State, st.Result)
		}
	})
	t.Run("a membership change cancels it", func(t *testing.T) {
		id, _ := fx.submitWhy(t, 0, "/anything/member", "")
		if err := fx.vote(t, 2, id, true, ""); err != nil {
			t.Fatal(err)
		}
		groups := fx.groups(map[string][]int{"ops": {1, 2}})
		fx.propose(t, 0, gate.ProposePayload{Groups: &groups}, 1, 2)
		st := fx.get(t, id)
		if st.State != gate.StateCancelled || st.Result.Reason != gate.ReasonMembershipChanged {
			t.Fatalf("after a change of groups: %s %+v", st.State, st.Result)
		}
		g, err := fx.cs[0].Gate(testutil.Ctx(t), fx.conv)
		if err != nil || !gate.GroupsEqual(g.Groups, groups) {
			t.Fatalf("GET gate groups %v, %v; want %v", g.Groups, err, groups)
		}
		fx.clk.Advance(time.Hour)
		if n := fx.up.Count("/httpbin/anything/member"); n != 0 {
			t.Fatalf("a cancelled request was sent %d times", n)
		}
	})
	fx.verifyLog(t)
}

// TestPolicyImpossibleChangesRefused: a group naming a non-signer, a rule
// no set of signers can meet, and a group change that would leave a rule
// in force impossible are refused, with the rule or group named.
func TestPolicyImpossibleChangesRefused(t *testing.T) {
	t.Parallel()
	fx := policyFixture(t, 3, map[string][]int{"finance": {1, 2}},
		gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2, Require: []gate.Require{{Group: "finance", Approvals: 2}}})
	ctx := testutil.Ctx(t)
	small := fx.groups(map[string][]int{"finance": {1}})
	_, err := fx.cs[0].Propose(ctx, fx.conv, gate.ProposePayload{Groups: &small})
	if code(err) != twokey.EBadPayload || !strings.Contains(twokey.ErrorMessage(err), "rule 1") || !strings.Contains(twokey.ErrorMessage(err), "finance") {
		t.Fatalf("shrinking finance below the rule's 2: %v", err)
	}
	stranger := testutil.Identity(t, "stranger")
	bad := map[string][]string{"finance": {fx.ids[1].KeyID(), stranger.KeyID()}}
	if _, err := fx.cs[0].Propose(ctx, fx.conv, gate.ProposePayload{Groups: &bad}); code(err) != twokey.EBadPayload || !strings.Contains(twokey.ErrorMessage(err), "not a signer") {
		t.Fatalf("a group naming a non-signer: %v", err)
	}
	// Removing a member of finance would leave the rule impossible too.
	if _, err := fx.cs[0].Propose(ctx, fx.conv, gate.ProposePayload{Remove: []string{fx.ids[2].KeyID()}}); code(err) != twokey.EBadPayload || !strings.Contains(twokey.ErrorMessage(err), "finance") {
		t.Fatalf("removing a member the rule needs: %v", err)
	}
	// A request the signers cannot meet without its submitter is refused
	// at submission, naming the group.
	no := false
	fx2 := policyFixture(t, 3, map[string][]int{"security": {1}},
		gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 1, SubmitterCounts: &no, Require: []gate.Require{{Group: "security", Approvals: 1}}})
	if _, err := fx2.submitWhy(t, 1, "/anything/alone", ""); code(err) != twokey.EBadPayload || !strings.Contains(twokey.ErrorMessage(err), "security") {
		t.Fatalf("security's only member submitting under a rule that does not count it: %v", err)
	}
	if _, err := fx2.submitWhy(t, 0, "/anything/alone", ""); err != nil {
		t.Fatalf("another signer submitting it: %v", err)
	}
}

// TestVetoRacesTimer: a veto posted while the clock reaches executable_at
// on another goroutine ends the request exactly one way: executed (and
// sent once) or rejected as vetoed (and never sent), never both.
func TestVetoRacesTimer(t *testing.T) {
	t.Parallel()
	fx := policyFixture(t, 2, nil, gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2, DelaySeconds: 60})
	outcomes := map[string]int{}
	for i := range 20 {
		path := fmt.Sprint("/anything/race-", i)
		id, err := fx.submitWhy(t, 0, path, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.vote(t, 1, id, true, ""); err != nil {
			t.Fatal(err)
		}
		exec, _ := conversation.ParseTime(fx.get(t, id).Policy.ExecutableAt)
		fx.clk.Advance(exec.Sub(fx.clk.Now()) - time.Millisecond)
		// Every third round the veto lands a millisecond early (so both
		// endings are seen); the others race the timer from two
		// goroutines, in either order of start.
		done := make(chan error, 1)
		switch i % 3 {
		case 0:
			done <- fx.vote(t, 0, id, false, "stop")
			fx.clk.Advance(time.Millisecond)
		case 1:
			go func() { done <- fx.vote(t, 0, id, false, "stop") }()
			fx.clk.Advance(time.Millisecond)
		case 2:
			go fx.clk.Advance(time.Millisecond)
			done <- fx.vote(t, 0, id, false, "stop")
		}
		verr := <-done
		st := fx.settle(t, id, gate.StateExecuted, gate.StateFailed, gate.StateRejected)
		sent := fx.up.Count("/httpbin" + path)
		ex, rj := fx.records(t, conversation.KindGateExecuted, id), fx.records(t, conversation.KindGateRejected, id)
		switch st.State {
		case gate.StateExecuted:
			if sent != 1 || len(ex) != 1 || len(rj) != 0 || verr == nil {
				t.Fatalf("round %d executed: sent %d, %d executed, %d rejected, veto error %v", i, sent, len(ex), len(rj), verr)
			}
		case gate.StateRejected:
			if sent != 0 || len(ex) != 0 || len(rj) != 1 || verr != nil || st.Result.Reason != gate.ReasonVetoed {
				t.Fatalf("round %d vetoed: sent %d, %d executed, %d rejected, veto error %v", i, sent, len(ex), len(rj), verr)
			}
		default:
			t.Fatalf("round %d: %s", i, st.State)
		}
		outcomes[st.State]++
	}
	if outcomes[gate.StateRejected] == 0 || outcomes[gate.StateExecuted] == 0 {
		t.Fatalf("outcomes %v: both endings must occur", outcomes)
	}
	t.Logf("outcomes: %v", outcomes)
	fx.verifyLog(t)
}

// TestCoolOffSurvivesKill9: the server is killed (kill -9) inside a
// cool-off and started again after executable_at has passed: the call is
// made once, at or after executable_at, and the log verifies. The child
// runs on real time, so the window is 2 s and the test waits it out with
// a bounded poll.
func TestCoolOffSurvivesKill9(t *testing.T) {
	t.Parallel()
	up := testutil.NewUpstream(t)
	dir := t.TempDir()
	p := startProc(t, dir, up)
	alice, bob := testutil.Identity(t, "alice"), testutil.Identity(t, "bob")
	ca, cb := client.New(p.url, alice), client.New(p.url, bob)
	ctx := testutil.Ctx(t)
	conv := mustConv(t, ca, "cool", []conversation.Member{{Name: "bob", Key: bob.KeyID()}})
	if _, err := ca.EnableGate(ctx, conv, 2, []gate.Rule{{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2, DelaySeconds: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddSecret(ctx, conv, "httpbin", "", "", 0, []byte(fixtureKey)); err != nil {
		t.Fatal(err)
	}
	rid := client.NewID()
	if _, err := ca.Submit(ctx, conv, gate.RequestPayload{RequestID: rid, Service: "httpbin", Method: "GET",
		URL: up.URL + "/httpbin/anything/kill9", ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cb.Vote(ctx, conv, rid, true, ""); err != nil {
		t.Fatal(err)
	}
	st, err := ca.Request(ctx, conv, rid)
	if err != nil || st.State != gate.StateApproved {
		t.Fatalf("after the approvals: %+v, %v", st, err)
	}
	exec, _ := conversation.ParseTime(st.Policy.ExecutableAt)
	p.kill()
	for time.Now().Before(exec.Add(200 * time.Millisecond)) { // the window passes while the server is down
		time.Sleep(50 * time.Millisecond)
	}
	if n := up.Count("/httpbin/anything/kill9"); n != 0 {
		t.Fatalf("the call was made %d times before the restart", n)
	}
	p = startProc(t, dir, up)
	ca = client.New(p.url, alice)
	st, err = ca.WaitRequest(ctx, conv, rid)
	if err != nil || st.State != gate.StateExecuted {
		t.Fatalf("after the restart: %+v, %v", st, err)
	}
	if n := up.Count("/httpbin/anything/kill9"); n != 1 {
		t.Fatalf("the call was made %d times, want once", n)
	}
	recs, err := ca.Records(ctx, conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	executed := 0
	for _, r := range recs {
		if r.Kind == conversation.KindGateExecuted {
			executed++
			at, _ := conversation.ParseTime(r.ReceivedAt)
			if at.Before(exec) {
				t.Fatalf("executed at %v, before executable_at %v", at, exec)
			}
		}
	}
	if executed != 1 {
		t.Fatalf("%d gate.executed records, want 1", executed)
	}
	gw, err := ca.Gateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	x, err := audit.Fetch(ctx, ca, conv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(x, audit.Options{Gateway: gw.SigningKey}); err != nil {
		t.Fatalf("the log after the restart does not verify: %v", err)
	}
}
