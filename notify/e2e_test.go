package notify_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/notify"
)

const (
	jsonSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	// What a receiver must never see: the service's key (in the vault),
	// a request's header value and its body (which httpbin echoes in the
	// response too).
	apiKey     = "sk_live_vaultvalue_5f1e2d3c4b"
	headerVal  = "hdr-value-7781-private"
	bodyMarker = "body-value-9931-private"
)

type hit struct {
	path   string
	header http.Header
	body   []byte
}

type recv struct {
	*httptest.Server
	mu   sync.Mutex
	hits []hit
}

func (r *recv) got() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits)
}

// TestEventsThroughTheServer drives a real server (engine, bbolt store,
// vault) on a fake clock through every event, with five targets from
// twokey.yaml's settings: json (every event), json with detail full,
// slack, ntfy and one whose receiver hangs. Every json payload is signed,
// follows the schema and links to its request; no payload of any format
// carries a secret, a header value or a body; and the hanging receiver
// delays no approval.
func TestEventsThroughTheServer(t *testing.T) {
	rcv := &recv{}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rcv.mu.Lock()
		rcv.hits = append(rcv.hits, hit{r.URL.Path, r.Header.Clone(), b})
		rcv.mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	var holding atomic.Int32
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // so that the server sees the connection close
		holding.Add(1)
		defer holding.Add(-1)
		<-r.Context().Done() // until the server's notifier closes
	}))
	t.Cleanup(hang.Close) // after the server stops (cleanups run last first)
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up, testutil.WithClock(clk), func(o *testutil.Options) {
		o.PublicURL = "https://twokey.example/"
		o.Notifications = []config.Notification{
			{Name: "json", URL: rcv.URL + "/json", Secret: jsonSecret, Events: notify.Events},
			{Name: "full", URL: rcv.URL + "/full", Detail: "full", Conversations: []string{"ops"}},
			{Name: "slack", URL: rcv.URL + "/slack", Format: "slack"},
			{Name: "ntfy", URL: rcv.URL + "/ntfy", Format: "ntfy"},
			{Name: "hang", URL: hang.URL},
		}
	})
	ctx := testutil.Ctx(t)
	ids, cs, members := testutil.Signers(t, srv.URL(), 3, clk)
	rec, err := cs[0].CreateConversation(ctx, "ops", members)
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	json.Unmarshal(rec.Body, &cp)
	conv := cp.Conversation
	if _, err := cs[0].EnableGate(ctx, conv, 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cs[0].AddSecret(ctx, conv, "httpbin", "", "", 0, []byte(apiKey)); err != nil {
		t.Fatal(err)
	}
	submit := func(path string, ttl time.Duration) string {
		t.Helper()
		rec, err := cs[0].Submit(ctx, conv, gate.RequestPayload{Service: "httpbin", Method: "POST", URL: up.URL + "/httpbin" + path,
			Headers: map[string]string{"X-Trace": headerVal}, Body: json.RawMessage(`{"card":"` + bodyMarker + `"}`),
			ExpiresAt: conversation.FormatTime(clk.Now().Add(ttl))})
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
	executed := submit("/anything", time.Hour)
	vote(1, executed, true)
	if st, err := cs[0].WaitRequest(ctx, conv, executed); err != nil || st.State != gate.StateExecuted {
		t.Fatalf("executed: %+v %v", st, err)
	}
	if holding.Load() == 0 {
		t.Fatal("the hanging receiver holds no connection: the check below proves nothing")
	}
	// The approval executed while a receiver held its connection.
	failed := submit("/reset", time.Hour)
	vote(1, failed, true)
	if st, _ := cs[0].WaitRequest(ctx, conv, failed); st.State != gate.StateFailed {
		t.Fatalf("failed: %+v", st)
	}
	rejected := submit("/anything", time.Hour)
	vote(1, rejected, false)
	vote(2, rejected, false)
	cancelled := submit("/anything", time.Hour)
	if _, err := cs[0].Cancel(ctx, conv, cancelled); err != nil {
		t.Fatal(err)
	}
	expired := submit("/anything", time.Minute)
	clk.Advance(2 * time.Minute)
	if st, _ := cs[0].WaitRequest(ctx, conv, expired); st.State != gate.StateExpired {
		t.Fatalf("expired: %+v", st)
	}
	prec, err := cs[0].Propose(ctx, conv, gate.ProposePayload{Remove: []string{ids[2].KeyID()}})
	if err != nil {
		t.Fatal(err)
	}
	var pp gate.ProposePayload
	json.Unmarshal(prec.Body, &pp)
	if _, err := cs[1].ApproveProposal(ctx, conv, pp.ProposalID); err != nil {
		t.Fatal(err)
	}

	want := map[string]int{notify.RequestCreated: 5, notify.RequestApprovedBy: 2, notify.RequestExecuted: 1, notify.RequestFailed: 1,
		notify.RequestRejected: 1, notify.RequestCancelled: 1, notify.RequestExpired: 1, notify.MembershipProposed: 1,
		notify.MembershipChanged: 1, notify.QuorumAtRisk: 1}
	total := 0
	for _, n := range want {
		total += n
	}
	byType := func() map[string][]notify.Event {
		out := map[string][]notify.Event{}
		for _, h := range rcv.got() {
			if h.path != "/json" {
				continue
			}
			var ev notify.Event
			if err := json.Unmarshal(h.body, &ev); err != nil {
				t.Fatalf("json body %s: %v", h.body, err)
			}
			out[ev.Type] = append(out[ev.Type], ev)
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; n < total && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		n = 0
		for _, evs := range byType() {
			n += len(evs)
		}
	}
	got := byType()
	for typ, n := range want {
		if len(got[typ]) != n {
			t.Errorf("%s: %d events, want %d", typ, len(got[typ]), n)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	link := func(id string) string { return "https://twokey.example/#/c/" + conv + "/r/" + id }
	for _, h := range rcv.got() {
		if h.path != "/json" {
			continue
		}
		if err := notify.Verify(jsonSecret, h.header, h.body, clk.Now(), 5*time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		var ev notify.Event
		json.Unmarshal(h.body, &ev)
		if ev.Version != 1 || ev.ID != h.header.Get(notify.HeaderID) || ev.Data.Conversation.ID != conv || ev.Data.Conversation.Name != "ops" {
			t.Errorf("envelope: %s", h.body)
		}
		if r := ev.Data.Request; r != nil && (ev.Data.Link != link(r.ID) || r.M != 2 || r.Service != "httpbin" || r.Method != "POST") {
			t.Errorf("request event: %s", h.body)
		}
		if ev.Data.URL != "" || ev.Data.Params != nil {
			t.Errorf("detail in a summary target: %s", h.body)
		}
	}
	created := got[notify.RequestCreated][0].Data.Request
	if created.ID != executed || created.K != 1 || !slices.Equal(created.WaitingOn, []string{"signer1", "signer2"}) ||
		!slices.Equal(created.Approvals, []string{"signer0"}) || created.Submitter != "signer0" || created.State != gate.StatePending {
		t.Errorf("request.created: %+v", created)
	}
	if by := got[notify.RequestApprovedBy][0]; by.Data.By != "signer1" || by.Data.Request.K != 2 {
		t.Errorf("request.approved_by: %+v", by.Data)
	}
	if ex := got[notify.RequestExecuted][0].Data.Request; ex.Status != 200 || ex.State != gate.StateExecuted {
		t.Errorf("request.executed: %+v", ex)
	}
	if fl := got[notify.RequestFailed][0].Data.Request; fl.ID != failed || fl.Reason == "" {
		t.Errorf("request.failed: %+v", fl)
	}
	if rj := got[notify.RequestRejected][0].Data.Request; rj.ID != rejected || !slices.Equal(rj.Rejections, []string{"signer1", "signer2"}) {
		t.Errorf("request.rejected: %+v", rj)
	}
	if ch := got[notify.MembershipChanged][0].Data.Membership; !slices.Equal(ch.Remove, []string{"signer2"}) || !slices.Equal(ch.Signers, []string{"signer0", "signer1"}) {
		t.Errorf("membership.changed: %+v", ch)
	}
	if pr := got[notify.MembershipProposed][0].Data.Membership; pr.Proposer != "signer0" || !slices.Equal(pr.Needed, []string{"signer1"}) {
		t.Errorf("membership.proposed: %+v", pr)
	}
	if q := got[notify.QuorumAtRisk][0].Data.Quorum; q.Signers != 2 || q.HighestM != 2 {
		t.Errorf("gate.quorum_at_risk: %+v", q)
	}
	// Slack, ntfy and detail full got theirs too (approved_by is off by
	// default); detail full carries the URL.
	deadline = time.Now().Add(5 * time.Second)
	count := func(path string) (n int) {
		for _, h := range rcv.got() {
			if h.path == path {
				n++
			}
		}
		return n
	}
	for _, p := range []string{"/full", "/slack", "/ntfy"} {
		for count(p) < total-2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := count(p); n != total-2 {
			t.Errorf("%s got %d, want %d", p, n, total-2)
		}
	}
	for _, h := range rcv.got() {
		if h.path == "/full" && strings.Contains(string(h.body), `"type":"request.created"`) && !strings.Contains(string(h.body), `"url":"`+up.URL+"/httpbin/") {
			t.Errorf("detail full without the URL: %s", h.body)
		}
	}
	// No payload, header or body, of any target carries a secret.
	for _, h := range rcv.got() {
		all := string(h.body)
		for k, vs := range h.header {
			all += "\n" + k + ": " + strings.Join(vs, ",")
		}
		for _, s := range []string{apiKey, headerVal, bodyMarker, strings.TrimPrefix(jsonSecret, "whsec_")} {
			if strings.Contains(all, s) {
				t.Errorf("a webhook to %s carries %q:\n%s", h.path, s, all)
			}
		}
	}
	ds, err := srv.Notifier().Deliveries("json", api.DeliveryDelivered, 0)
	if err != nil || len(ds) != total {
		t.Fatalf("json deliveries: %d, %v", len(ds), err)
	}
	if w, _ := srv.Notifier().Target("hang"); w.Queued != total-2 || w.Source != "config" {
		t.Fatalf("hang target: %+v", w)
	}
}
