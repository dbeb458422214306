package notify_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/notify"
)

// TestCoolOffThroughTheServer drives a real server on a fake clock
// through a request under a rule with a reason and a 15 min cool-off (a
// target naming no events): its request.created carries the reason, the
// approval that meets the rule gives request.approved with executable_at
// and the veto count, and at executable_at request.executed follows; a
// second request vetoed in its cool-off gives request.rejected, reason
// vetoed.
func TestCoolOffThroughTheServer(t *testing.T) {
	rcv := &recv{}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rcv.mu.Lock()
		rcv.hits = append(rcv.hits, hit{r.URL.Path, r.Header.Clone(), b})
		rcv.mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up, testutil.WithClock(clk), func(o *testutil.Options) {
		o.Notifications = []config.Notification{{Name: "json", URL: rcv.URL + "/json"}}
	})
	ctx := testutil.Ctx(t)
	_, cs, members := testutil.Signers(t, srv.URL(), 3, clk)
	rec, err := cs[0].CreateConversation(ctx, "ops", members)
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	json.Unmarshal(rec.Body, &cp)
	conv := cp.Conversation
	rules := []gate.Rule{{Service: "httpbin", Endpoint: "*", Method: "POST", RequiredApprovals: 2, ReasonRequired: true, DelaySeconds: 900}}
	if _, err := cs[0].EnableGate(ctx, conv, 2, rules); err != nil {
		t.Fatal(err)
	}
	if _, err := cs[0].AddSecret(ctx, conv, "httpbin", "", "", 0, []byte(apiKey)); err != nil {
		t.Fatal(err)
	}
	const reason = "close the duplicate ticket"
	submit := func() string {
		t.Helper()
		rec, err := cs[0].Submit(ctx, conv, gate.RequestPayload{Service: "httpbin", Method: "POST", URL: up.URL + "/httpbin/anything",
			Body: json.RawMessage(`{"a":1}`), ExpiresAt: conversation.FormatTime(clk.Now().Add(time.Hour)), Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		var p gate.RequestPayload
		json.Unmarshal(rec.Body, &p)
		return p.RequestID
	}
	vote := func(i int, id string, approve bool) {
		t.Helper()
		if _, _, err := cs[i].Vote(ctx, conv, id, approve, ""); err != nil {
			t.Fatal(err)
		}
	}
	executed := submit()
	vote(1, executed, true) // with the submitter's: 2, and the cool-off starts
	approvedAt := clk.Now()
	vetoed := submit()
	vote(1, vetoed, true)
	vote(2, vetoed, false) // a veto
	if st, err := cs[0].WaitRequest(ctx, conv, vetoed); err != nil || st.State != gate.StateRejected {
		t.Fatalf("vetoed: %+v %v", st, err)
	}
	clk.Advance(15 * time.Minute)
	if st, err := cs[0].WaitRequest(ctx, conv, executed); err != nil || st.State != gate.StateExecuted {
		t.Fatalf("executed: %+v %v", st, err)
	}

	events := func() map[string][]notify.Event {
		out := map[string][]notify.Event{}
		for _, h := range rcv.got() {
			var ev notify.Event
			if err := json.Unmarshal(h.body, &ev); err != nil {
				t.Fatalf("json body %s: %v", h.body, err)
			}
			out[ev.Type+" "+ev.Data.Request.ID] = append(out[ev.Type+" "+ev.Data.Request.ID], ev)
		}
		return out
	}
	want := []string{notify.RequestCreated + " " + executed, notify.RequestApproved + " " + executed, notify.RequestExecuted + " " + executed,
		notify.RequestCreated + " " + vetoed, notify.RequestApproved + " " + vetoed, notify.RequestRejected + " " + vetoed}
	var got map[string][]notify.Event
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got = events(); len(got) >= len(want) {
			break
		}
	}
	for _, k := range want {
		if len(got[k]) != 1 {
			t.Fatalf("%s: %d events (all: %v)", k, len(got[k]), got)
		}
		if ev := got[k][0]; ev.Data.Reason != reason || ev.Data.Request.Policy != "2 approvals; reason required; 15 min cool-off, 1 veto" {
			t.Errorf("%s: reason %q, policy %q", k, ev.Data.Reason, ev.Data.Request.Policy)
		}
	}
	ap := got[notify.RequestApproved+" "+executed][0].Data.Request
	if ap.State != gate.StateApproved || ap.ExecutableAt == nil || !ap.ExecutableAt.Equal(approvedAt.Add(15*time.Minute)) || ap.Veto != 1 || ap.K != 2 {
		t.Fatalf("request.approved: %+v", ap)
	}
	rj := got[notify.RequestRejected+" "+vetoed][0].Data.Request
	if rj.Reason != gate.ReasonVetoed || len(rj.Vetoes) != 1 {
		t.Fatalf("request.rejected by a veto: %+v", rj)
	}
}
