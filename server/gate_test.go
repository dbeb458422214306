package server_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

const testKey = "sk_test_5a1c9e77d2b34f08"

// gateFixture is a server, a recording upstream and a conversation of n
// signers (signers[0] is the admin) with the gate on at m.
type gateFixture struct {
	srv     *testutil.Server
	up      *testutil.Upstream
	ids     []*conversation.Identity
	cs      []*client.Client
	conv    string
	clk     *clock.Fake
	baseURL string
}

func newGate(t *testing.T, n, m int, opts ...testutil.Option) *gateFixture {
	t.Helper()
	g := &gateFixture{up: testutil.NewUpstream(t)}
	g.srv = testutil.StartServer(t, g.up, opts...)
	g.enable(t, n, m)
	if _, err := g.cs[0].AddSecret(testutil.Ctx(t), g.conv, "httpbin", "", "", 0, []byte(testKey)); err != nil {
		t.Fatal(err)
	}
	return g
}

// newGateFake returns a fixture whose server and clients run on a fake
// clock, with no secret provisioned.
func newGateFake(t *testing.T, n, m int, opts ...testutil.Option) *gateFixture {
	return newGateOn(t, clock.NewFake(time.Now().UTC().Truncate(time.Second)), n, m, opts...)
}

// newGateOn is newGateFake on the fake clock clk.
func newGateOn(t *testing.T, clk *clock.Fake, n, m int, opts ...testutil.Option) *gateFixture {
	g := &gateFixture{up: testutil.NewUpstream(t), clk: clk}
	g.srv = testutil.StartServer(t, g.up, append([]testutil.Option{testutil.WithClock(clk)}, opts...)...)
	g.enable(t, n, m)
	return g
}

// enable makes n signers, a conversation "ops" of all of them created by
// signer 0, and turns its gateway on at M m.
func (g *gateFixture) enable(t *testing.T, n, m int) {
	t.Helper()
	ctx := testutil.Ctx(t)
	var clk clock.Clock
	if g.clk != nil {
		clk = g.clk
	}
	var members []conversation.Member
	g.ids, g.cs, members = testutil.Signers(t, g.srv.URL(), n, clk)
	rec, err := g.cs[0].CreateConversation(ctx, "ops", members)
	if err != nil {
		t.Fatal(err)
	}
	var p conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &p)
	g.conv = p.Conversation
	if _, err := g.cs[0].EnableGate(ctx, g.conv, m, nil); err != nil {
		t.Fatal(err)
	}
	g.baseURL = g.up.URL + "/httpbin"
}

func (g *gateFixture) now() time.Time {
	if g.clk != nil {
		return g.clk.Now()
	}
	return time.Now().UTC()
}

// submit proposes a GET of path on httpbin as signer i.
func (g *gateFixture) submit(t *testing.T, i int, path string, ttl time.Duration) string {
	t.Helper()
	rec, err := g.cs[i].Submit(testutil.Ctx(t), g.conv, gate.RequestPayload{Service: "httpbin", Method: "GET",
		URL: g.baseURL + path, ExpiresAt: conversation.FormatTime(g.now().Add(ttl))})
	if err != nil {
		t.Fatalf("submit %s: %v", path, err)
	}
	var p gate.RequestPayload
	_ = json.Unmarshal(rec.Body, &p)
	return p.RequestID
}

func (g *gateFixture) approve(t *testing.T, i int, id string) error {
	_, _, err := g.cs[i].Vote(testutil.Ctx(t), g.conv, id, true, "")
	return err
}

func (g *gateFixture) wait(t *testing.T, id string) *api.RequestState {
	t.Helper()
	st, err := g.cs[0].WaitRequest(testutil.Ctx(t), g.conv, id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (g *gateFixture) state(t *testing.T, id string) *api.RequestState {
	t.Helper()
	st, err := g.cs[0].Request(testutil.Ctx(t), g.conv, id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// response returns the gate.response record of an executed request.
func (g *gateFixture) response(t *testing.T, st *api.RequestState) gate.ResponsePayload {
	t.Helper()
	recs, err := g.cs[0].Records(testutil.Ctx(t), g.conv, st.Result.Seq, 1)
	if err != nil || len(recs) != 1 || recs[0].Kind != conversation.KindGateResponse {
		t.Fatalf("no gate.response at %d: %v %v", st.Result.Seq+1, recs, err)
	}
	var p gate.ResponsePayload
	_ = json.Unmarshal(recs[0].Body, &p)
	return p
}

func TestThresholdMetAndNotMet(t *testing.T) {
	g := newGate(t, 3, 2)
	id := g.submit(t, 0, "/headers", time.Hour)
	if st := g.state(t, id); st.State != gate.StatePending || len(st.Approvals) != 1 || st.RequiredApprovals != 2 {
		t.Fatalf("after submit: %+v", st)
	}
	if n := g.up.Count("/httpbin/headers"); n != 0 {
		t.Fatalf("upstream called %d times before the threshold", n)
	}
	if err := g.approve(t, 1, id); err != nil {
		t.Fatal(err)
	}
	st := g.wait(t, id)
	if st.State != gate.StateExecuted || st.Result.Status != 200 {
		t.Fatalf("after second approval: %+v %+v", st, st.Result)
	}
	reqs := g.up.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/httpbin/headers" {
		t.Fatalf("upstream received %v", reqs)
	}
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer "+testKey {
		t.Fatalf("upstream Authorization = %q", got)
	}
	resp := g.response(t, st)
	if strings.Contains(resp.Body, testKey) || resp.Redactions == 0 || !strings.Contains(resp.Body, "[redacted]") {
		t.Fatalf("response not redacted (%d redactions): %s", resp.Redactions, resp.Body)
	}
	if resp.BodyDigest != conversation.Digest([]byte(resp.Body)) {
		t.Fatal("body_digest does not match the redacted body")
	}
	// A vote after resolution is refused and changes nothing.
	if err := g.approve(t, 2, id); twokey.ErrorCode(err) != twokey.ERequestClosed {
		t.Fatalf("vote after execution: %v", err)
	}
	if _, err := g.cs[2].VoteDigest(testutil.Ctx(t), g.conv, id, st.RequestDigest, true, ""); twokey.ErrorCode(err) != twokey.ERequestClosed {
		t.Fatalf("raw vote after execution: %v", err)
	}
	if len(g.up.Requests()) != 1 {
		t.Fatal("a late vote caused another call")
	}
}

func TestOneOfNExecutesAtSubmission(t *testing.T) {
	g := newGate(t, 3, 1)
	id := g.submit(t, 2, "/get", time.Hour)
	st := g.wait(t, id)
	if st.State != gate.StateExecuted || g.up.Count("/httpbin/get") != 1 {
		t.Fatalf("1-of-3 did not execute at submission: %+v", st)
	}
}

func TestVotesAreCountedPerDistinctSignerAndBoundToTheDigest(t *testing.T) {
	g := newGate(t, 3, 3)
	ctx := testutil.Ctx(t)
	id := g.submit(t, 0, "/headers", time.Hour)
	other := g.submit(t, 0, "/get", time.Hour)
	st := g.state(t, id)
	// The submitter approving again.
	if err := g.approve(t, 0, id); twokey.ErrorCode(err) != twokey.EAlreadyVoted {
		t.Fatalf("submitter's second approval: %v", err)
	}
	// An approval bound to another request's digest.
	otherSt := g.state(t, other)
	if _, err := g.cs[1].VoteDigest(ctx, g.conv, id, otherSt.RequestDigest, true, ""); twokey.ErrorCode(err) != twokey.EDigestMismatch {
		t.Fatalf("approval with another request's digest: %v", err)
	}
	// A malformed digest.
	if _, err := g.cs[1].VoteDigest(ctx, g.conv, id, strings.TrimPrefix(st.RequestDigest, "sha256:"), true, ""); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("approval with an unprefixed digest: %v", err)
	}
	if err := g.approve(t, 1, id); err != nil {
		t.Fatal(err)
	}
	if err := g.approve(t, 1, id); twokey.ErrorCode(err) != twokey.EAlreadyVoted {
		t.Fatalf("second approval by the same signer: %v", err)
	}
	if st := g.state(t, id); len(st.Approvals) != 2 || st.State != gate.StatePending {
		t.Fatalf("approvals counted %d, state %s; want 2, pending", len(st.Approvals), st.State)
	}
	// A non-member's approval.
	eve := testutil.Client(g.srv.URL(), testutil.Identity(t, "eve"), nil)
	if _, err := eve.VoteDigest(ctx, g.conv, id, st.RequestDigest, true, ""); twokey.ErrorCode(err) != twokey.ENotMember {
		t.Fatalf("non-member approval: %v", err)
	}
	if g.up.Count("/httpbin/headers") != 0 {
		t.Fatal("executed below the threshold")
	}
}

func TestApprovalReplayedIntoAnotherConversation(t *testing.T) {
	g := newGate(t, 2, 2)
	ctx := testutil.Ctx(t)
	id := g.submit(t, 0, "/headers", time.Hour)
	st := g.state(t, id)
	// signer1 signs an approval for conversation A...
	h, _ := g.cs[1].Header(ctx, g.conv)
	env, _ := conversation.SignJSON(g.ids[1], conversation.KindGateApprove, gate.VotePayload{Header: h, RequestID: id, RequestDigest: st.RequestDigest})
	// ...and someone replays it into conversation B, where both are signers too.
	rec, err := g.cs[0].CreateConversation(ctx, "other", []conversation.Member{{Key: g.ids[1].KeyID(), Name: "s1"}})
	if err != nil {
		t.Fatal(err)
	}
	var p conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &p)
	if _, err := g.cs[0].EnableGate(ctx, p.Conversation, 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := g.cs[0].PostEnvelope(ctx, p.Conversation, env); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("replayed approval: %v", err)
	}
	// An approval naming conversation B for A's request is unknown there.
	hb, _ := g.cs[1].Header(ctx, p.Conversation)
	if _, err := g.cs[1].Post(ctx, p.Conversation, conversation.KindGateApprove, gate.VotePayload{Header: hb, RequestID: id, RequestDigest: st.RequestDigest}); twokey.ErrorCode(err) != twokey.EUnknownRequest {
		t.Fatalf("approval of A's request in B: %v", err)
	}
	// An approval bound to another gateway.
	hx := h
	hx.Gateway = g.ids[0].KeyID()
	if _, err := g.cs[1].Post(ctx, g.conv, conversation.KindGateApprove, gate.VotePayload{Header: hx, RequestID: id, RequestDigest: st.RequestDigest}); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("approval for another gateway: %v", err)
	}
	if g.state(t, id).State != gate.StatePending {
		t.Fatal("a replayed approval counted")
	}
	// The genuine approval still works.
	if _, err := g.cs[1].PostEnvelope(ctx, g.conv, env); err != nil {
		t.Fatal(err)
	}
	if st := g.wait(t, id); st.State != gate.StateExecuted {
		t.Fatalf("state %s", st.State)
	}
}

func TestConcurrentFinalApprovalsExecuteOnce(t *testing.T) {
	g := newGate(t, 21, 2)
	id := g.submit(t, 0, "/anything/once", time.Hour)
	st := g.state(t, id)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	start := make(chan struct{})
	for i := 1; i <= 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			_, errs[i-1] = g.cs[i].VoteDigest(testutil.Ctx(t), g.conv, id, st.RequestDigest, true, "")
		}(i)
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch twokey.ErrorCode(err) {
		case "":
			ok++
		case twokey.ERequestClosed:
		default:
			t.Fatalf("unexpected vote error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d final approvals accepted, want exactly 1", ok)
	}
	g.wait(t, id)
	if n := g.up.Count("/httpbin/anything/once"); n != 1 {
		t.Fatalf("upstream called %d times, want 1", n)
	}
}

func TestKeysNeverLeaveTheirService(t *testing.T) {
	g := newGate(t, 2, 1)
	ctx := testutil.Ctx(t)
	exp := conversation.FormatTime(time.Now().Add(time.Hour))
	host := strings.TrimPrefix(g.up.URL, "http://")
	for name, u := range map[string]string{
		"another host named like the service": "http://httpbin.org.evil.example/httpbin/headers",
		"userinfo trick":                      "http://" + host + "@127.0.0.2:1/httpbin/headers",
		"another port":                        "http://127.0.0.1:1/httpbin/headers",
		"https instead of http":               "https://" + host + "/httpbin/headers",
		"path outside the base":               "http://" + host + "/other",
		"prefix without a boundary":           "http://" + host + "/httpbinx/headers",
		"dot-dot out of the base":             "http://" + host + "/httpbin/../other",
	} {
		_, err := g.cs[0].Submit(ctx, g.conv, gate.RequestPayload{Service: "httpbin", Method: "GET", URL: u, ExpiresAt: exp})
		if code := twokey.ErrorCode(err); code != twokey.EHostMismatch {
			t.Errorf("%s (%s): got %v, want host_mismatch", name, u, err)
		}
	}
	// A header naming the secret's header is refused.
	_, err := g.cs[0].Submit(ctx, g.conv, gate.RequestPayload{Service: "httpbin", Method: "GET", URL: g.baseURL + "/headers",
		Headers: map[string]string{"authorization": "Bearer mine"}, ExpiresAt: exp})
	if twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("request setting Authorization: %v", err)
	}
	// A template whose pattern the path does not match.
	_, err = g.cs[0].Submit(ctx, g.conv, gate.RequestPayload{Template: "httpbin.headers", Service: "httpbin", Method: "GET",
		URL: g.baseURL + "/get", ExpiresAt: exp})
	if twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("template mismatch: %v", err)
	}
	if n := len(g.up.Requests()); n != 0 {
		t.Fatalf("upstream got %d requests", n)
	}
	// A redirect to another host (a real server that records what it gets)
	// is returned as the response, never followed with the key.
	other := testutil.NewUpstream(t)
	id := g.submit(t, 0, "/redirect-to?url="+url.QueryEscape(other.URL+"/stolen"), time.Hour)
	st := g.wait(t, id)
	if st.State != gate.StateExecuted || st.Result.Status != 302 {
		t.Fatalf("redirect: %+v", st.Result)
	}
	if n := len(g.up.Requests()); n != 1 {
		t.Fatalf("upstream got %d requests, want 1", n)
	}
	if got := g.up.Requests()[0].Header.Get("Authorization"); got != "Bearer "+testKey {
		t.Fatalf("the service itself did not get the key: %q", got)
	}
	if n := len(other.Requests()); n != 0 {
		t.Fatalf("the redirect target got %d requests (Authorization %q)", n, other.Requests()[0].Header.Get("Authorization"))
	}
}

// A service whose upstream refuses connections fails the request with
// reason connection_refused, in one attempt.
func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	srv := testutil.StartServer(t, nil, func(o *testutil.Options) { o.Services = map[string]string{"httpbin": dead + "/httpbin"} })
	ctx := testutil.Ctx(t)
	alice := testutil.Client(srv.URL(), testutil.Identity(t, "alice"), nil)
	rec, err := alice.CreateConversation(ctx, "solo", nil)
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &cp)
	if _, err := alice.EnableGate(ctx, cp.Conversation, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddSecret(ctx, cp.Conversation, "httpbin", "", "", 0, []byte(testKey)); err != nil {
		t.Fatal(err)
	}
	rec, err = alice.Submit(ctx, cp.Conversation, gate.RequestPayload{Service: "httpbin", Method: "GET", URL: dead + "/httpbin/get",
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	var p gate.RequestPayload
	_ = json.Unmarshal(rec.Body, &p)
	st, err := alice.WaitRequest(ctx, cp.Conversation, p.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != gate.StateFailed || st.Result == nil || st.Result.Reason != gate.ReasonConnection {
		t.Fatalf("refused connection: %s %+v, want failed %s", st.State, st.Result, gate.ReasonConnection)
	}
}

func TestRequestValidation(t *testing.T) {
	g := newGate(t, 2, 2)
	ctx := testutil.Ctx(t)
	now := time.Now()
	for name, tc := range map[string]struct {
		p    gate.RequestPayload
		code string
	}{
		"expired already":      {gate.RequestPayload{Service: "httpbin", Method: "GET", URL: g.baseURL + "/get", ExpiresAt: conversation.FormatTime(now.Add(-time.Second))}, twokey.EBadPayload},
		"more than 7 days":     {gate.RequestPayload{Service: "httpbin", Method: "GET", URL: g.baseURL + "/get", ExpiresAt: conversation.FormatTime(now.Add(8 * 24 * time.Hour))}, twokey.EBadPayload},
		"unknown service":      {gate.RequestPayload{Service: "nope", Method: "GET", URL: g.baseURL + "/get", ExpiresAt: conversation.FormatTime(now.Add(time.Hour))}, twokey.EBadPayload},
		"request id not uuid":  {gate.RequestPayload{RequestID: "42", Service: "httpbin", Method: "GET", URL: g.baseURL + "/get", ExpiresAt: conversation.FormatTime(now.Add(time.Hour))}, twokey.EBadPayload},
		"lower-case method":    {gate.RequestPayload{Service: "httpbin", Method: "get", URL: g.baseURL + "/get", ExpiresAt: conversation.FormatTime(now.Add(time.Hour))}, twokey.EBadPayload},
		"host header smuggled": {gate.RequestPayload{Service: "httpbin", Method: "GET", URL: g.baseURL + "/get", Headers: map[string]string{"Host": "evil"}, ExpiresAt: conversation.FormatTime(now.Add(time.Hour))}, twokey.EBadPayload},
	} {
		if _, err := g.cs[0].Submit(ctx, g.conv, tc.p); twokey.ErrorCode(err) != tc.code {
			t.Errorf("%s: got %v, want %s", name, err, tc.code)
		}
	}
	// A non-signer (a non-member) cannot submit.
	eve := testutil.Client(g.srv.URL(), testutil.Identity(t, "eve"), nil)
	if _, err := eve.Submit(ctx, g.conv, gate.RequestPayload{Service: "httpbin", Method: "GET", URL: g.baseURL + "/get", ExpiresAt: conversation.FormatTime(now.Add(time.Hour))}); twokey.ErrorCode(err) != twokey.ENotMember {
		t.Fatalf("non-member submit: %v", err)
	}
}

func TestDuplicateRequestIDAcrossConversationsAndRestarts(t *testing.T) {
	g := newGate(t, 2, 2)
	ctx := testutil.Ctx(t)
	id := g.submit(t, 0, "/get", time.Hour)
	p := gate.RequestPayload{RequestID: id, Service: "httpbin", Method: "GET", URL: g.baseURL + "/get", ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))}
	if _, err := g.cs[1].Submit(ctx, g.conv, p); twokey.ErrorCode(err) != twokey.EDuplicateRequest {
		t.Fatalf("same id again: %v", err)
	}
	srv := g.srv.Restart(t)
	c := testutil.Client(srv.URL(), g.ids[1], nil)
	if _, err := c.Submit(ctx, g.conv, p); twokey.ErrorCode(err) != twokey.EDuplicateRequest {
		t.Fatalf("same id after restart: %v", err)
	}
	// In another conversation of the same server.
	rec, err := c.CreateConversation(ctx, "solo", nil)
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &cp)
	if _, err := c.EnableGate(ctx, cp.Conversation, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, cp.Conversation, p); twokey.ErrorCode(err) != twokey.EDuplicateRequest {
		t.Fatalf("same id in another conversation: %v", err)
	}
	// The pending request survived the restart with its approval.
	st, err := c.Request(ctx, g.conv, id)
	if err != nil || st.State != gate.StatePending || len(st.Approvals) != 1 {
		t.Fatalf("after restart: %+v %v", st, err)
	}
}

func TestExpiryAtTheExactBoundary(t *testing.T) {
	g := newGateFake(t, 3, 3)
	id := g.submit(t, 0, "/get", time.Hour)
	st := g.state(t, id)
	exp, _ := time.Parse(time.RFC3339Nano, st.ExpiresAt)
	g.clk.Set(exp.Add(-time.Millisecond))
	if err := g.approve(t, 1, id); err != nil {
		t.Fatalf("approval a millisecond before expiry: %v", err)
	}
	g.clk.Set(exp)
	st = g.state(t, id)
	if st.State != gate.StateExpired || st.Result == nil || st.Result.Reason != gate.ReasonExpired {
		t.Fatalf("at expires_at the request is %s", st.State)
	}
	if _, err := g.cs[2].VoteDigest(testutil.Ctx(t), g.conv, id, st.RequestDigest, true, ""); twokey.ErrorCode(err) != twokey.ERequestExpired {
		t.Fatalf("approval at expiry: %v", err)
	}
	recs, _ := g.cs[0].Records(testutil.Ctx(t), g.conv, 0, 100)
	if last := recs[len(recs)-1]; last.Kind != conversation.KindGateExpired {
		t.Fatalf("last record is %s, want gate.expired", last.Kind)
	}
	if len(g.up.Requests()) != 0 {
		t.Fatal("an expired request was executed")
	}
}

func TestRejectionEndsARequestWhenMIsOutOfReach(t *testing.T) {
	g := newGate(t, 3, 2)
	id := g.submit(t, 0, "/get", time.Hour)
	if _, _, err := g.cs[1].Vote(testutil.Ctx(t), g.conv, id, false, "no"); err != nil {
		t.Fatal(err)
	}
	if st := g.state(t, id); st.State != gate.StatePending {
		t.Fatalf("one rejection of three ended it: %s", st.State)
	}
	if _, _, err := g.cs[2].Vote(testutil.Ctx(t), g.conv, id, false, "no"); err != nil {
		t.Fatal(err)
	}
	if st := g.state(t, id); st.State != gate.StateRejected {
		t.Fatalf("two rejections of three with M=2: %s", st.State)
	}
	// Cancel: only by the submitter.
	id2 := g.submit(t, 0, "/get", time.Hour)
	if _, err := g.cs[1].Cancel(testutil.Ctx(t), g.conv, id2); twokey.ErrorCode(err) != twokey.EForbidden {
		t.Fatalf("cancel by another: %v", err)
	}
	if _, err := g.cs[0].Cancel(testutil.Ctx(t), g.conv, id2); err != nil {
		t.Fatal(err)
	}
	if st := g.state(t, id2); st.State != gate.StateCancelled {
		t.Fatalf("after cancel: %s", st.State)
	}
	if len(g.up.Requests()) != 0 {
		t.Fatal("a rejected or cancelled request executed")
	}
}

func TestMembershipChangesAreUnanimousAndCancelPending(t *testing.T) {
	g := newGate(t, 3, 2)
	ctx := testutil.Ctx(t)
	dave := testutil.Identity(t, "dave")
	// Direct member.add is refused once the gate is on.
	if _, err := g.cs[0].AddMember(ctx, g.conv, conversation.Member{Key: dave.KeyID(), Name: "dave"}); twokey.ErrorCode(err) != twokey.EGateEnabled {
		t.Fatalf("member.add with the gate on: %v", err)
	}
	pending := g.submit(t, 0, "/get", time.Hour)
	// Adding needs every current signer.
	rec, err := g.cs[0].Propose(ctx, g.conv, gate.ProposePayload{Add: []conversation.Member{{Key: dave.KeyID(), Name: "dave"}}})
	if err != nil {
		t.Fatal(err)
	}
	var pp gate.ProposePayload
	_ = json.Unmarshal(rec.Body, &pp)
	if _, err := g.cs[1].ApproveProposal(ctx, g.conv, pp.ProposalID); err != nil {
		t.Fatal(err)
	}
	gi, _ := g.cs[0].Gate(ctx, g.conv)
	if len(gi.Signers) != 3 {
		t.Fatalf("2 of 3 approvals added a member: %d signers", len(gi.Signers))
	}
	if _, err := g.cs[2].ApproveProposal(ctx, g.conv, pp.ProposalID); err != nil {
		t.Fatal(err)
	}
	gi, _ = g.cs[0].Gate(ctx, g.conv)
	if len(gi.Signers) != 4 {
		t.Fatalf("unanimous approval: %d signers, want 4", len(gi.Signers))
	}
	if st := g.state(t, pending); st.State != gate.StateCancelled || st.Result.Reason != gate.ReasonMembershipChanged {
		t.Fatalf("pending request after membership change: %s", st.State)
	}
	// Removing signer2 needs everyone but signer2.
	pending = g.submit(t, 2, "/get", time.Hour)
	rec, err = g.cs[0].Propose(ctx, g.conv, gate.ProposePayload{Remove: []string{g.ids[2].KeyID()}})
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(rec.Body, &pp)
	if _, err := g.cs[2].ApproveProposal(ctx, g.conv, pp.ProposalID); twokey.ErrorCode(err) != twokey.ENotSigner {
		t.Fatalf("the removed signer's approval of its removal: %v", err)
	}
	dc := testutil.Client(g.srv.URL(), dave, nil)
	for _, c := range []*client.Client{g.cs[1], dc} {
		if _, err := c.ApproveProposal(ctx, g.conv, pp.ProposalID); err != nil {
			t.Fatal(err)
		}
	}
	gi, _ = g.cs[0].Gate(ctx, g.conv)
	if len(gi.Signers) != 3 {
		t.Fatalf("after removal: %d signers, want 3", len(gi.Signers))
	}
	st := g.state(t, pending)
	if st.State != gate.StateCancelled {
		t.Fatalf("pending request after removal: %s", st.State)
	}
	// The removed signer's later votes and requests are refused.
	id := g.submit(t, 0, "/get", time.Hour)
	st = g.state(t, id)
	if _, err := g.cs[2].VoteDigest(ctx, g.conv, id, st.RequestDigest, true, ""); twokey.ErrorCode(err) != twokey.ENotMember {
		t.Fatalf("removed signer's approval: %v", err)
	}
	// A proposal leaving M above the signers is refused.
	if _, err := g.cs[0].Propose(ctx, g.conv, gate.ProposePayload{RequiredApprovals: 4}); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("impossible M: %v", err)
	}
	if len(g.up.Requests()) != 0 {
		t.Fatal("something executed")
	}
}

func TestRulesAreChosenBySpecificity(t *testing.T) {
	g := newGate(t, 3, 1)
	ctx := testutil.Ctx(t)
	rules := []gate.Rule{
		{Service: "httpbin", Endpoint: "/anything/{x}", Method: "POST", RequiredApprovals: 3},
		{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2},
		{Service: "*", Endpoint: "*", Method: "*", RequiredApprovals: 1},
	}
	rec, err := g.cs[0].Propose(ctx, g.conv, gate.ProposePayload{Rules: &rules})
	if err != nil {
		t.Fatal(err)
	}
	var pp gate.ProposePayload
	_ = json.Unmarshal(rec.Body, &pp)
	for _, i := range []int{1, 2} {
		if _, err := g.cs[i].ApproveProposal(ctx, g.conv, pp.ProposalID); err != nil {
			t.Fatal(err)
		}
	}
	get := g.submit(t, 0, "/get", time.Hour)
	if st := g.state(t, get); st.RequiredApprovals != 2 || st.Rule == nil || st.Rule.Service != "httpbin" {
		t.Fatalf("GET /get: M=%d rule=%v, want the service rule's 2", st.RequiredApprovals, st.Rule)
	}
	// The POST rule names a template pattern; it applies to the concrete
	// path whether or not the request names a template, so leaving the
	// template out cannot escape it.
	p := gate.RequestPayload{Service: "httpbin", Method: "POST", URL: g.baseURL + "/anything/x", ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour)), Body: json.RawMessage(`{"a":1}`)}
	rec, err = g.cs[0].Submit(ctx, g.conv, p)
	if err != nil {
		t.Fatal(err)
	}
	var sp gate.RequestPayload
	_ = json.Unmarshal(rec.Body, &sp)
	if st := g.state(t, sp.RequestID); st.RequiredApprovals != 3 || st.Rule == nil || st.Rule.Endpoint != "/anything/{x}" {
		t.Fatalf("POST without a template: M=%d rule=%v, want the pattern rule's 3", st.RequiredApprovals, st.Rule)
	}
	// Another spelling of the same endpoint falls under the same rule.
	p.URL = g.baseURL + "/anything/y/"
	rec, err = g.cs[0].Submit(ctx, g.conv, p)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(rec.Body, &sp)
	if st := g.state(t, sp.RequestID); st.RequiredApprovals != 3 {
		t.Fatalf("POST /anything/y/: M=%d, want the pattern rule's 3", st.RequiredApprovals)
	}
	// A rule set with the same triple twice is refused.
	dup := append(rules, gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 3})
	if _, err := g.cs[0].Propose(ctx, g.conv, gate.ProposePayload{Rules: &dup}); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("duplicate rule: %v", err)
	}
}

func TestUpstreamFaults(t *testing.T) {
	g := newGate(t, 1, 1, testutil.WithTimeout(500*time.Millisecond))
	hang := g.submit(t, 0, "/hang", time.Hour)
	if st := g.wait(t, hang); st.State != gate.StateFailed || st.Result.Reason != gate.ReasonTimeout {
		t.Fatalf("hanging upstream: %s %+v", st.State, st.Result)
	}
	big := g.submit(t, 0, "/big", time.Hour)
	st := g.wait(t, big)
	if st.State != gate.StateExecuted {
		t.Fatalf("5 MB answer: %s", st.State)
	}
	resp := g.response(t, st)
	if !resp.Truncated || len(resp.Body) != twokey.MaxResponseBody || resp.BodyDigest == conversation.Digest([]byte(resp.Body)) {
		t.Fatalf("5 MB answer: truncated=%v body=%d digest of the whole body expected", resp.Truncated, len(resp.Body))
	}
	reset := g.submit(t, 0, "/reset", time.Hour)
	if st := g.wait(t, reset); st.State != gate.StateFailed {
		t.Fatalf("reset connection: %s", st.State)
	}
	// A service that needs a key and has none: no_secret, nothing sent.
	ctx := testutil.Ctx(t)
	if _, err := g.cs[0].RevokeSecret(ctx, g.conv, "", "httpbin"); err != nil {
		t.Fatal(err)
	}
	before := len(g.up.Requests())
	nokey := g.submit(t, 0, "/headers", time.Hour)
	if st := g.wait(t, nokey); st.State != gate.StateFailed || st.Result.Reason != gate.ReasonNoSecret {
		t.Fatalf("no secret: %s %+v", st.State, st.Result)
	}
	if len(g.up.Requests()) != before {
		t.Fatal("a request without a live secret reached the upstream")
	}
}

func TestSecretTTLAtTheBoundary(t *testing.T) {
	g := newGateFake(t, 1, 1)
	ctx := testutil.Ctx(t)
	if _, err := g.cs[0].AddSecret(ctx, g.conv, "httpbin", "", "", time.Hour, []byte(testKey)); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(time.Hour - time.Millisecond)
	st := g.wait(t, g.submit(t, 0, "/headers", time.Hour))
	if st.State != gate.StateExecuted {
		t.Fatalf("a millisecond before the TTL: %s %+v", st.State, st.Result)
	}
	g.clk.Advance(time.Millisecond)
	st = g.wait(t, g.submit(t, 0, "/headers", time.Hour))
	if st.State != gate.StateFailed || st.Result.Reason != gate.ReasonNoSecret {
		t.Fatalf("at the TTL: %s %+v", st.State, st.Result)
	}
	if n := g.up.Count("/httpbin/headers"); n != 1 {
		t.Fatalf("upstream got %d calls, want 1", n)
	}
}

func TestRemovedMemberStopsReceivingLive(t *testing.T) {
	g := newGate(t, 2, 1)
	ctx := testutil.Ctx(t)
	ws, err := g.cs[1].Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": g.conv, "after": 0})
	rec, err := g.cs[0].Propose(ctx, g.conv, gate.ProposePayload{Remove: []string{g.ids[1].KeyID()}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Seq == 0 {
		t.Fatal("no record")
	}
	secret, err := g.cs[0].Say(ctx, g.conv, "for members only")
	if err != nil {
		t.Fatal(err)
	}
	for {
		var fr struct {
			Op     string
			Record *conversation.Record
			Error  *struct{ Code string }
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := ws.ReadJSON(&fr); err != nil {
			t.Fatalf("no refusal before the socket ended: %v", err)
		}
		if fr.Op == "record" && fr.Record.Seq >= secret.Seq {
			t.Fatalf("removed member received record %d (%s)", fr.Record.Seq, fr.Record.Kind)
		}
		if fr.Op == "error" {
			if fr.Error.Code != twokey.ENotMember {
				t.Fatalf("error %s", fr.Error.Code)
			}
			return
		}
	}
}

func TestAFailedCommitLosesNothingAndHoldsNoReservation(t *testing.T) {
	g := newGate(t, 2, 2)
	ctx := testutil.Ctx(t)
	before, _ := g.srv.Store().LastSeq(g.conv)
	g.srv.Store().SetWriteHook(func() error { return fmt.Errorf("no space left on device") })
	p := gate.RequestPayload{RequestID: client.NewID(), Service: "httpbin", Method: "GET", URL: g.baseURL + "/get",
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))}
	_, err := g.cs[0].Submit(ctx, g.conv, p)
	if twokey.ErrorCode(err) != twokey.EUnavailable {
		t.Fatalf("submit on a full disk: %v", err)
	}
	if strings.Contains(err.Error(), "no space") {
		t.Fatalf("the storage error's detail reached the client: %v", err)
	}
	g.srv.Store().SetWriteHook(nil)
	if after, _ := g.srv.Store().LastSeq(g.conv); after != before {
		t.Fatal("a failed commit left records")
	}
	// The same request id is free again, and everything works.
	if _, err := g.cs[0].Submit(ctx, g.conv, p); err != nil {
		t.Fatalf("resubmit after the disk recovered: %v", err)
	}
	if err := g.approve(t, 1, p.RequestID); err != nil {
		t.Fatal(err)
	}
	if st := g.wait(t, p.RequestID); st.State != gate.StateExecuted {
		t.Fatalf("state %s", st.State)
	}
}

// The read endpoints of PROTOCOL 5 and 7 answer with the field names the
// contract gives, checked on the raw JSON (not through our own structs).
func TestGateAndRequestStateShapes(t *testing.T) {
	g := newGate(t, 2, 2)
	ctx := testutil.Ctx(t)
	id := g.submit(t, 0, "/get", time.Hour)
	tok, err := g.cs[0].Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) map[string]json.RawMessage {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", g.srv.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		var m map[string]json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	need := func(what string, m map[string]json.RawMessage, fields ...string) {
		t.Helper()
		for _, f := range fields {
			if _, ok := m[f]; !ok {
				t.Errorf("%s has no %q field: %v", what, f, keysOf(m))
			}
		}
	}
	gi := get("/v1/conversations/" + g.conv + "/gate")
	need("gate", gi, "enabled", "signers", "required_approvals", "rules", "secrets")
	if string(gi["enabled"]) != "true" || string(gi["required_approvals"]) != "2" {
		t.Errorf("gate: enabled=%s required_approvals=%s", gi["enabled"], gi["required_approvals"])
	}
	var secrets []map[string]any
	if err := json.Unmarshal(gi["secrets"], &secrets); err != nil || len(secrets) != 1 {
		t.Fatalf("gate secrets: %s %v", gi["secrets"], err)
	}
	if strings.Contains(string(gi["secrets"]), testKey) {
		t.Fatal("the gate's secrets metadata holds the key")
	}
	st := get("/v1/conversations/" + g.conv + "/requests/" + id)
	need("request", st, "state", "required_approvals", "approvals", "rejections", "request_digest", "expires_at", "result")
	var state string
	var approvals, rejections []string
	_ = json.Unmarshal(st["state"], &state)
	_ = json.Unmarshal(st["approvals"], &approvals)
	_ = json.Unmarshal(st["rejections"], &rejections)
	if state != "pending" || len(approvals) != 1 || approvals[0] != g.ids[0].KeyID() || rejections == nil || len(rejections) != 0 {
		t.Errorf("request: state %q approvals %v rejections %v (%s)", state, approvals, rejections, st["rejections"])
	}
	var digest string
	_ = json.Unmarshal(st["request_digest"], &digest)
	if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
		t.Errorf("request_digest %q", digest)
	}
	if err := g.approve(t, 1, id); err != nil {
		t.Fatal(err)
	}
	g.wait(t, id)
	st = get("/v1/conversations/" + g.conv + "/requests/" + id)
	_ = json.Unmarshal(st["state"], &state)
	var result map[string]json.RawMessage
	if err := json.Unmarshal(st["result"], &result); err != nil || state != "executed" {
		t.Fatalf("executed request: state %q result %s", state, st["result"])
	}
	if string(result["status"]) != "200" {
		t.Errorf("result %s", st["result"])
	}
}

func keysOf(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
