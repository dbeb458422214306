package notify

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// coolingRequest is request id under a rule of 2 approvals with a 15 min
// cool-off, approved by alice and bob, its reason given.
func coolingRequest(id, reason string, at time.Time) *gate.Request {
	r := request(id, "ed25519:alice", "ed25519:bob")
	pol := gate.Policy{RequiredApprovals: 2, Require: []gate.Require{}, SubmitterCounts: true, DelaySeconds: 900, Veto: 1}
	r.Policy = &pol
	r.State, r.ExecutableAt, r.Payload.Reason = gate.StateApproved, at, reason
	r.Approvers = []string{"ed25519:alice", "ed25519:bob"}
	return r
}

// TestCoolOffEvents (PROTOCOL 9): a gate.approved record is a
// request.approved event, sent to a target that names no events, with
// executable_at, the vetoes that stop it and the policy; the request's
// reason is on it clipped to 200 characters at detail summary and whole
// at full, and a line of the slack and ntfy texts; a veto is a
// request.rejected whose reason is vetoed, naming who vetoed.
func TestCoolOffEvents(t *testing.T) {
	rcv := map[string]*receiver{}
	var targets []config.Notification
	for _, name := range []string{"summary", "full", "slack", "ntfy"} {
		rcv[name] = newReceiver(t)
		n := config.Notification{Name: name, URL: rcv[name].URL}
		switch name {
		case "full":
			n.Detail = "full"
		case "slack", "ntfy":
			n.Format = name
		}
		targets = append(targets, n)
	}
	f := newFixture(t, targets...)
	at := time.Date(2026, 3, 1, 12, 15, 0, 0, time.UTC)
	reason := strings.Repeat("é", 150) + " " + strings.Repeat("refund the double charge ", 10) // 401 characters
	r := coolingRequest("r-1", reason, at)
	f.commit([]*gate.Request{r}, record(conversation.KindGateApproved, "ed25519:gw",
		gate.ApprovedPayload{RequestID: "r-1", Approvers: r.Approvers, ExecutableAt: conversation.FormatTime(at)}))
	f.quiet()

	one := func(name string) hit {
		t.Helper()
		hs := rcv[name].got()
		if len(hs) != 1 {
			t.Fatalf("%s: %d hits", name, len(hs))
		}
		return hs[0]
	}
	sum, full := decodeEvent(t, one("summary")), decodeEvent(t, one("full"))
	for _, ev := range []Event{sum, full} {
		q := ev.Data.Request
		if ev.Type != RequestApproved || q == nil || q.State != gate.StateApproved || q.ExecutableAt == nil || !q.ExecutableAt.Equal(at) ||
			q.Veto != 1 || q.Policy != "2 approvals; 15 min cool-off, 1 veto" || len(q.WaitingOn) != 0 || q.K != 2 || q.Reason != "" {
			t.Fatalf("request.approved: %+v %+v", ev, q)
		}
	}
	if full.Data.Reason != reason {
		t.Fatalf("detail full: reason %q, want it whole", full.Data.Reason)
	}
	if n := utf8.RuneCountInString(sum.Data.Reason); n != SummaryReasonChars || !strings.HasSuffix(sum.Data.Reason, "…") ||
		!strings.HasPrefix(reason, strings.TrimSuffix(sum.Data.Reason, "…")) {
		t.Fatalf("detail summary: reason of %d characters %q, want %d ending in …", n, sum.Data.Reason, SummaryReasonChars)
	}
	var slack struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(one("slack").body, &slack); err != nil || !strings.Contains(slack.Text, "executes at 2026-03-01T12:15:00Z unless vetoed") ||
		!strings.Contains(slack.Text, "\nReason: éé") {
		t.Fatalf("slack: %s %v", one("slack").body, err)
	}
	nt := one("ntfy")
	if nt.header.Get("Priority") != "4" || !strings.Contains(nt.header.Get("Title"), "cool-off until 2026-03-01T12:15:00Z") ||
		!strings.Contains(string(nt.body), "\nReason: ") || !strings.Contains(string(nt.body), "a rejection by any signer stops it") {
		t.Fatalf("ntfy: %v %s", nt.header, nt.body)
	}

	// Carol vetoes it.
	r = coolingRequest("r-1", reason, at)
	r.State, r.Vetoes = gate.StateRejected, []string{"ed25519:carol"}
	r.Result = &gate.Result{Reason: gate.ReasonVetoed}
	f.commit([]*gate.Request{r},
		record(conversation.KindGateReject, "ed25519:carol", gate.VotePayload{RequestID: "r-1"}),
		record(conversation.KindGateRejected, "ed25519:gw", gate.ClosedPayload{RequestID: "r-1", Reason: gate.ReasonVetoed}))
	f.quiet()
	hs := rcv["summary"].got()
	if len(hs) != 2 {
		t.Fatalf("summary: %d hits after the veto", len(hs))
	}
	ev := decodeEvent(t, hs[1])
	if ev.Type != RequestRejected || ev.Data.Request.Reason != gate.ReasonVetoed || len(ev.Data.Request.Vetoes) != 1 || ev.Data.Request.Vetoes[0] != "carol" {
		t.Fatalf("the veto: %s", hs[1].body)
	}
	if nh := rcv["ntfy"].got(); len(nh) != 2 || !strings.Contains(string(nh[1].body), "was rejected (vetoed during its cool-off by carol)") {
		t.Fatalf("ntfy after the veto: %d %v", len(nh), nh)
	}
}

func TestClipReason(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 200, "short"},
		{strings.Repeat("a", 200), 200, strings.Repeat("a", 200)},
		{strings.Repeat("a", 201), 200, strings.Repeat("a", 199) + "…"},
		{"ééé", 2, "é…"},
	} {
		if got := clipReason(c.in, c.n); got != c.want {
			t.Errorf("clipReason(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
