package audit_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// realLog is a conversation a real server wrote, exercising every kind of
// gateway decision: executions under the default M and under a rule that
// names a template's pattern, a rejection, a cancellation, an expiry, a
// membership change that cancels a pending request, a revoked secret.
type realLog struct {
	export *audit.Export
	ids    map[string]*conversation.Identity
	eve    *conversation.Identity
}

var (
	realOnce sync.Once
	real     *realLog
)

// buildRealLog builds the log once, in the first test that needs it; the
// server stops with that test, and the export, being data, outlives it.
func buildRealLog(t *testing.T) *realLog {
	t.Helper()
	realOnce.Do(func() { real = makeRealLog(t) })
	if real == nil {
		t.Fatal("building the real log failed in an earlier test")
	}
	return real
}

func makeRealLog(t *testing.T) *realLog {
	up := testutil.NewUpstream(t)
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	srv := testutil.StartServer(t, up, testutil.WithClock(clk), func(o *testutil.Options) { o.Services["dogceo"] = up.URL + "/dog" })
	ctx := testutil.Ctx(t)
	ids := map[string]*conversation.Identity{}
	cs := map[string]*client.Client{}
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		ids[n] = testutil.Identity(t, n)
		cs[n] = testutil.Client(srv.URL(), ids[n], clk)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	rec, err := cs["alice"].CreateConversation(ctx, "ops", []conversation.Member{
		{Key: ids["bob"].KeyID(), Name: "bob"}, {Key: ids["carol"].KeyID(), Name: "carol"}})
	must(err)
	var cp conversation.CreatePayload
	must(json.Unmarshal(rec.Body, &cp))
	conv := cp.Conversation
	_, err = cs["bob"].Say(ctx, conv, "hello <everyone> & welcome")
	must(err)
	_, err = cs["alice"].EnableGate(ctx, conv, 2, []gate.Rule{{Service: "dogceo", Endpoint: "/breed/{breed}/images/random", Method: "GET", RequiredApprovals: 3}})
	must(err)
	_, err = cs["alice"].AddSecret(ctx, conv, "httpbin", "", "", 0, []byte("sk_audit_secret_0001"))
	must(err)
	exp := func(d time.Duration) string { return conversation.FormatTime(clk.Now().Add(d)) }
	submit := func(who string, p gate.RequestPayload) string {
		t.Helper()
		rec, err := cs[who].Submit(ctx, conv, p)
		must(err)
		var q gate.RequestPayload
		must(json.Unmarshal(rec.Body, &q))
		return q.RequestID
	}
	vote := func(who, id string, approve bool) {
		t.Helper()
		_, _, err := cs[who].Vote(ctx, conv, id, approve, "")
		must(err)
	}
	wait := func(id, state string) {
		t.Helper()
		st, err := cs["alice"].WaitRequest(ctx, conv, id)
		must(err)
		if st.State != state {
			t.Fatalf("request %s is %s, want %s", id, st.State, state)
		}
	}
	base := up.URL + "/httpbin"
	// Executed with the default M of 2.
	r1 := submit("alice", gate.RequestPayload{Service: "httpbin", Method: "GET", URL: base + "/headers", ExpiresAt: exp(time.Hour)})
	vote("bob", r1, true)
	wait(r1, gate.StateExecuted)
	// A template request under the pattern rule: M = 3.
	r2 := submit("bob", gate.RequestPayload{Template: "dogs.breed", Service: "dogceo", Method: "GET",
		URL: up.URL + "/dog/breed/hound/images/random", ExpiresAt: exp(time.Hour), Params: map[string]string{"breed": "hound"}})
	vote("carol", r2, true)
	if st, _ := cs["alice"].Request(ctx, conv, r2); st.State != gate.StatePending || st.RequiredApprovals != 3 {
		t.Fatalf("template request after 2 approvals: %s M=%d", st.State, st.RequiredApprovals)
	}
	vote("alice", r2, true)
	wait(r2, gate.StateExecuted)
	// Rejected.
	r3 := submit("carol", gate.RequestPayload{Service: "httpbin", Method: "GET", URL: base + "/get", ExpiresAt: exp(time.Hour)})
	vote("alice", r3, false)
	vote("bob", r3, false)
	wait(r3, gate.StateRejected)
	// Cancelled by its submitter.
	r4 := submit("alice", gate.RequestPayload{Service: "httpbin", Method: "GET", URL: base + "/get", ExpiresAt: exp(time.Hour)})
	_, err = cs["alice"].Cancel(ctx, conv, r4)
	must(err)
	// Expired.
	r5 := submit("bob", gate.RequestPayload{Service: "httpbin", Method: "GET", URL: base + "/uuid", ExpiresAt: exp(10 * time.Minute)})
	clk.Advance(11 * time.Minute)
	wait(r5, gate.StateExpired)
	// A pending request cancelled by a membership change that adds dave.
	r6 := submit("alice", gate.RequestPayload{Service: "httpbin", Method: "POST", URL: base + "/post", Body: json.RawMessage(`{"a":[1,2,{"b":"<c>"}]}`), ExpiresAt: exp(time.Hour)})
	rec, err = cs["alice"].Propose(ctx, conv, gate.ProposePayload{Add: []conversation.Member{{Key: ids["dave"].KeyID(), Name: "dave"}}})
	must(err)
	var pp gate.ProposePayload
	must(json.Unmarshal(rec.Body, &pp))
	for _, who := range []string{"bob", "carol"} {
		_, err := cs[who].ApproveProposal(ctx, conv, pp.ProposalID)
		must(err)
	}
	wait(r6, gate.StateCancelled)
	// dave, a signer now, asks and alice approves.
	_, err = cs["dave"].Say(ctx, conv, "hi, I am new")
	must(err)
	r7 := submit("dave", gate.RequestPayload{Service: "httpbin", Method: "GET", URL: base + "/anything/dave", ExpiresAt: exp(time.Hour)})
	vote("alice", r7, true)
	wait(r7, gate.StateExecuted)
	// A program's request, written by the gateway, needs M signers.
	pst, err := srv.Engine().SubmitProgram(conv, "ci-bot", "", gate.RequestPayload{Service: "httpbin", Method: "GET",
		URL: base + "/anything/program", ExpiresAt: exp(time.Hour)})
	must(err)
	vote("bob", pst.RequestID, true)
	if st, _ := cs["alice"].Request(ctx, conv, pst.RequestID); st.State != gate.StatePending {
		t.Fatalf("a program request executed on one approval: %s", st.State)
	}
	vote("carol", pst.RequestID, true)
	wait(pst.RequestID, gate.StateExecuted)
	// The key is revoked; a request then fails with no_secret.
	_, err = cs["carol"].RevokeSecret(ctx, conv, "", "httpbin")
	must(err)
	r8 := submit("carol", gate.RequestPayload{Service: "httpbin", Method: "GET", URL: base + "/get", ExpiresAt: exp(time.Hour)})
	vote("dave", r8, true)
	wait(r8, gate.StateFailed)
	// One still pending at the end.
	submit("bob", gate.RequestPayload{Service: "httpbin", Method: "GET", URL: base + "/ip", ExpiresAt: exp(time.Hour)})
	x, err := audit.Fetch(ctx, cs["carol"], conv)
	must(err)
	return &realLog{export: x, ids: ids, eve: testutil.Identity(t, "eve")}
}

// clone deep-copies an export through JSON, as a file would carry it.
func clone(t *testing.T, x *audit.Export) *audit.Export {
	t.Helper()
	b, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	y, err := audit.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// rechain renumbers the records and recomputes every chain value, as a
// forger who rewrote the log would.
func rechain(x *audit.Export) {
	var c conversation.Chain
	for i := range x.Records {
		r := &x.Records[i]
		r.Seq = uint64(i + 1)
		pae, _ := conversation.PAEOf(r.Envelope)
		c = c.Next(pae)
		r.Chain = c.String()
	}
}

// resign replaces a record's signature with id's over the same payload.
func resign(r *conversation.Record, id *conversation.Identity) {
	payload, _ := base64.StdEncoding.DecodeString(r.Envelope.Payload)
	r.Envelope = conversation.Sign(id, r.Kind, payload)
	r.Author = id.KeyID()
}

func find(t *testing.T, x *audit.Export, kind string, nth int) int {
	t.Helper()
	for i, r := range x.Records {
		if r.Kind == kind {
			if nth == 0 {
				return i
			}
			nth--
		}
	}
	t.Fatalf("no %s record", kind)
	return -1
}

func TestARealLogVerifies(t *testing.T) {
	rl := buildRealLog(t)
	x := clone(t, rl.export)
	rep, err := audit.Verify(x, audit.Options{Gateway: x.Gateway})
	if err != nil {
		t.Fatalf("a log the server wrote does not verify: %v", err)
	}
	if rep.Executed != 4 || rep.Rejected != 1 || rep.Cancelled != 2 || rep.Expired != 1 || rep.Failed != 1 ||
		rep.Pending != 1 || rep.MembershipChanges != 1 || rep.Requests != 10 || rep.Signers != 4 {
		t.Fatalf("report: %+v", rep)
	}
	if len(rep.Checkpoints) != 1 || rep.Checkpoints[0] != rep.Records {
		t.Fatalf("checkpoint not checked: %+v", rep)
	}
	// Every execution with the M the gateway signed and the audit
	// re-derived, and the rule that set it.
	if len(rep.Executions) != 5 {
		t.Fatalf("executions: %+v", rep.Executions)
	}
	for _, e := range rep.Executions {
		wantM, wantRule := 2, "default"
		if e.Service == "dogceo" {
			wantM, wantRule = 3, "rule dogceo GET /breed/{breed}/images/random -> 3"
		}
		if e.Required != wantM || e.RuleText() != wantRule || e.Approvals < e.Required && e.Outcome == "executed" {
			t.Errorf("execution %+v: want M %d by %s", e, wantM, wantRule)
		}
	}
	if e := rep.Executions[1]; e.Endpoint != "/breed/hound/images/random" || e.Approvals != 3 {
		t.Errorf("the dogs execution: %+v", e)
	}
	s := rep.Summary()
	for _, want := range []string{"4 executed", "none ran twice", "signed by the gateway, matches the chain", "OK",
		"M 3 by rule dogceo GET /breed/{breed}/images/random -> 3, 3 approvals, executed", "GET httpbin /headers: M 2 by default, 2 approvals, executed",
		"failed no_secret"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	// The export's catalog holds only what the requests name.
	if len(x.Services) != 2 || len(x.Templates) != 1 || x.Templates[0].Endpoint != "/breed/{breed}/images/random" {
		t.Fatalf("export catalog: %+v %+v", x.Services, x.Templates)
	}
}

func TestTamperedExportsFail(t *testing.T) {
	rl := buildRealLog(t)
	eve := rl.eve
	cases := []struct {
		name   string
		tamper func(t *testing.T, x *audit.Export) (seq uint64)
		check  audit.Check
		opt    audit.Options
	}{
		{"edit a byte of a signed payload", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindChatMessage, 0)
			p, _ := base64.StdEncoding.DecodeString(x.Records[i].Envelope.Payload)
			p = bytes.Replace(p, []byte("hello"), []byte("hellO"), 1)
			x.Records[i].Envelope.Payload = base64.StdEncoding.EncodeToString(p)
			return x.Records[i].Seq
		}, audit.CheckSignature, audit.Options{}},
		{"edit a byte of a record's body", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindChatMessage, 0)
			x.Records[i].Body = bytes.Replace(x.Records[i].Body, []byte("hello"), []byte("hellO"), 1)
			return x.Records[i].Seq
		}, audit.CheckRecord, audit.Options{}},
		{"edit a byte of a chain value", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindGateApprove, 0)
			c := []byte(x.Records[i].Chain)
			c[len(c)-1] ^= 1
			x.Records[i].Chain = string(c)
			return x.Records[i].Seq
		}, audit.CheckChain, audit.Options{}},
		{"edit a byte of a signature", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindGateExecuted, 0)
			s, _ := base64.StdEncoding.DecodeString(x.Records[i].Envelope.Signatures[0].Sig)
			s[5] ^= 0x40
			x.Records[i].Envelope.Signatures[0].Sig = base64.StdEncoding.EncodeToString(s)
			return x.Records[i].Seq
		}, audit.CheckSignature, audit.Options{}},
		{"drop a record", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindChatMessage, 1)
			seq := x.Records[i].Seq
			x.Records = append(x.Records[:i], x.Records[i+1:]...)
			return seq + 1
		}, audit.CheckSeq, audit.Options{}},
		{"drop an approval and re-chain", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindGateApprove, 0)
			x.Records = append(x.Records[:i], x.Records[i+1:]...)
			rechain(x)
			// The execution it enabled now lacks it.
			return x.Records[find(t, x, conversation.KindGateExecuted, 0)].Seq
		}, audit.CheckThreshold, audit.Options{}},
		{"drop a chat message and re-chain", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindChatMessage, 1)
			x.Records = append(x.Records[:i], x.Records[i+1:]...)
			rechain(x)
			return x.Records[len(x.Records)-1].Seq // the checkpoint is past the end now
		}, audit.CheckCheckpoint, audit.Options{}},
		{"drop the last record", func(t *testing.T, x *audit.Export) uint64 {
			x.Records = x.Records[:len(x.Records)-1]
			return x.Records[len(x.Records)-1].Seq
		}, audit.CheckCheckpoint, audit.Options{}},
		{"swap two records", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindChatMessage, 0)
			x.Records[i], x.Records[i+1] = x.Records[i+1], x.Records[i]
			return x.Records[i].Seq
		}, audit.CheckSeq, audit.Options{}},
		{"swap two chat messages and re-chain", func(t *testing.T, x *audit.Export) uint64 {
			i, j := find(t, x, conversation.KindChatMessage, 0), find(t, x, conversation.KindChatMessage, 1)
			x.Records[i], x.Records[j] = x.Records[j], x.Records[i]
			rechain(x)
			// dave's chat now comes before he joined.
			return uint64(i + 1)
		}, audit.CheckAuthority, audit.Options{}},
		{"swap a request and its approval and re-chain", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindGateApprove, 0)
			x.Records[i-1], x.Records[i] = x.Records[i], x.Records[i-1]
			rechain(x)
			return uint64(i)
		}, audit.CheckState, audit.Options{}},
		{"forge an approval under a signer's key id", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindGateApprove, 0)
			payload, _ := base64.StdEncoding.DecodeString(x.Records[i].Envelope.Payload)
			forged := conversation.Sign(eve, conversation.KindGateApprove, payload)
			forged.Signatures[0].KeyID = x.Records[i].Author
			x.Records[i].Envelope = forged
			return x.Records[i].Seq
		}, audit.CheckSignature, audit.Options{}},
		{"forge an approval by an outsider and re-chain", func(t *testing.T, x *audit.Export) uint64 {
			// Eve signs an approval of the pending request and inserts it.
			i := len(x.Records)
			last := x.Records[i-1]
			var req gate.RequestPayload
			_ = json.Unmarshal(last.Body, &req)
			pae, _ := base64.StdEncoding.DecodeString(last.Envelope.Payload)
			env, _ := conversation.SignJSON(eve, conversation.KindGateApprove, gate.VotePayload{
				Header:    conversation.Header{Conversation: x.Conversation, CreatedAt: last.ReceivedAt, Gateway: x.Gateway},
				RequestID: req.RequestID, RequestDigest: conversation.Digest(pae)})
			b, _ := base64.StdEncoding.DecodeString(env.Payload)
			x.Records = append(x.Records, conversation.Record{ReceivedAt: last.ReceivedAt, Kind: conversation.KindGateApprove,
				Author: eve.KeyID(), Envelope: env, Body: b})
			rechain(x)
			return uint64(i + 1)
		}, audit.CheckAuthority, audit.Options{}},
		{"re-sign a gateway record with another key", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindGateExecuted, 1)
			resign(&x.Records[i], eve)
			rechain(x)
			return x.Records[i].Seq
		}, audit.CheckGateway, audit.Options{}},
		{"re-sign a member's approval with another key", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindGateApprove, 1)
			resign(&x.Records[i], eve)
			rechain(x)
			return x.Records[i].Seq
		}, audit.CheckAuthority, audit.Options{}},
		{"re-sign the whole log as another gateway", func(t *testing.T, x *audit.Export) uint64 {
			for i := range x.Records {
				if conversation.GatewayKind(x.Records[i].Kind) {
					resign(&x.Records[i], eve)
				}
			}
			rechain(x)
			last := x.Records[len(x.Records)-1]
			x.Checkpoint.Envelope, _ = conversation.SignJSON(eve, conversation.KindCheckpoint, map[string]any{
				"conversation": x.Conversation, "created_at": last.ReceivedAt, "seq": last.Seq, "chain": last.Chain})
			x.Checkpoint.Seq, x.Checkpoint.Chain = last.Seq, last.Chain
			x.Gateway = eve.KeyID()
			// Members' signatures still name the real gateway.
			return x.Records[find(t, x, conversation.KindGateEnable, 0)].Seq
		}, audit.CheckBinding, audit.Options{}},
		{"another gateway's export against a pinned key", func(t *testing.T, x *audit.Export) uint64 {
			x.Gateway = eve.KeyID()
			return 0
		}, audit.CheckGateway, audit.Options{Gateway: rl.export.Gateway}},
		{"a checkpoint not signed by the gateway", func(t *testing.T, x *audit.Export) uint64 {
			x.Checkpoint.Envelope, _ = conversation.SignJSON(eve, conversation.KindCheckpoint, map[string]any{
				"conversation": x.Conversation, "created_at": x.ExportedAt, "seq": x.Checkpoint.Seq, "chain": x.Checkpoint.Chain})
			return 0
		}, audit.CheckCheckpoint, audit.Options{}},
		{"a kept chain value the log no longer matches", func(t *testing.T, x *audit.Export) uint64 {
			return 3
		}, audit.CheckCheckpoint, audit.Options{Anchors: []audit.Anchor{{Seq: 3, Chain: "sha256:" + strings.Repeat("ab", 32)}}}},
		{"a service's base URL moved", func(t *testing.T, x *audit.Export) uint64 {
			setBaseURL(x, "httpbin", "https://evil.example/httpbin")
			// The first record that signs an httpbin endpoint disagrees.
			return x.Records[find(t, x, conversation.KindGateExecuted, 0)].Seq
		}, audit.CheckDecision, audit.Options{}},
		{"a service's base URL shortened to a prefix", func(t *testing.T, x *audit.Export) uint64 {
			// Below a shorter base, /httpbin/headers would escape a rule on
			// /headers; the gateway signed /headers.
			setBaseURL(x, "httpbin", strings.TrimSuffix(baseURLOf(x, "httpbin"), "/httpbin"))
			return x.Records[find(t, x, conversation.KindGateExecuted, 0)].Seq
		}, audit.CheckDecision, audit.Options{}},
		{"a template's pattern renamed, and an approval dropped and re-chained", func(t *testing.T, x *audit.Export) uint64 {
			// Renaming the pattern the rule names does not take the rule
			// away: the gateway signed the pattern it matched with, which
			// the export's template no longer is.
			x.Templates[0].Endpoint = "/breed/{b}/images/random"
			i := find(t, x, conversation.KindGateApprove, 2) // alice's, the third of dogs.breed's
			x.Records = append(x.Records[:i], x.Records[i+1:]...)
			rechain(x)
			return x.Records[find(t, x, conversation.KindGateExecuted, 1)].Seq
		}, audit.CheckDecision, audit.Options{}},
		{"a template's pattern changed so the request no longer fits it", func(t *testing.T, x *audit.Export) uint64 {
			x.Templates[0].Endpoint = "/breeds/{breed}"
			return x.Records[find(t, x, conversation.KindGateExecuted, 1)].Seq
		}, audit.CheckDecision, audit.Options{}},
		{"a gateway record's signed M lowered and re-signed", func(t *testing.T, x *audit.Export) uint64 {
			// Only the gateway's key could sign a lower M; any other
			// signature is refused (replay_test shows the gateway's own
			// lie caught).
			i := find(t, x, conversation.KindGateExecuted, 1)
			p, _ := base64.StdEncoding.DecodeString(x.Records[i].Envelope.Payload)
			p = bytes.Replace(p, []byte(`"required_approvals":3`), []byte(`"required_approvals":1`), 1)
			x.Records[i].Envelope.Payload = base64.StdEncoding.EncodeToString(p)
			x.Records[i].Body = p
			resign(&x.Records[i], eve)
			rechain(x)
			return x.Records[i].Seq
		}, audit.CheckGateway, audit.Options{}},
		{"a received_at edited to before the previous record's", func(t *testing.T, x *audit.Export) uint64 {
			i := find(t, x, conversation.KindGateApprove, 0)
			prev, _ := conversation.ParseTime(x.Records[i-1].ReceivedAt)
			x.Records[i].ReceivedAt = conversation.FormatTime(prev.Add(-time.Second))
			return x.Records[i].Seq
		}, audit.CheckRecord, audit.Options{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := clone(t, rl.export)
			seq := tc.tamper(t, x)
			_, err := audit.Verify(x, tc.opt)
			f, ok := err.(*audit.Failure)
			if !ok {
				t.Fatalf("tampered export verified (err %v)", err)
			}
			if f.Check != tc.check || f.Seq != seq {
				t.Fatalf("failed at record %d (%s check), want record %d (%s check): %v", f.Seq, f.Check, seq, tc.check, f)
			}
			// The original still verifies: the tamper touched a copy.
			if _, err := audit.Verify(clone(t, rl.export), audit.Options{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func setBaseURL(x *audit.Export, service, url string) {
	for i := range x.Services {
		if x.Services[i].Name == service {
			x.Services[i].BaseURL = url
		}
	}
}

func baseURLOf(x *audit.Export, service string) string {
	for _, s := range x.Services {
		if s.Name == service {
			return s.BaseURL
		}
	}
	return ""
}

// TestCatalogEditsCannotLowerM: the export's catalog facts are unsigned,
// but M comes from the endpoint and pattern the gateway signed, so editing
// them either changes nothing or fails the audit; it never lowers an M.
func TestCatalogEditsCannotLowerM(t *testing.T) {
	rl := buildRealLog(t)
	want, err := audit.Verify(clone(t, rl.export), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(x *audit.Export){
		"templates removed":                     func(x *audit.Export) { x.Templates = nil },
		"services removed":                      func(x *audit.Export) { x.Services = nil },
		"a pattern renamed (same paths)":        func(x *audit.Export) { x.Templates[0].Endpoint = "/breed/{x}/images/random" },
		"a pattern widened (every path of it)":  func(x *audit.Export) { x.Templates[0].Endpoint = "/breed/{x}/images/{y}" },
		"a base URL with a trailing slash only": func(x *audit.Export) { setBaseURL(x, "httpbin", baseURLOf(x, "httpbin")+"/") },
	} {
		t.Run(name, func(t *testing.T) {
			x := clone(t, rl.export)
			edit(x)
			// Facts the signed ones are checked against, gone or changed,
			// fail the decision check: without them a gateway could split
			// each URL, or name each pattern, where it liked.
			failing := map[string]string{
				"services removed":                     "no base URL for service",
				"templates removed":                    "has no template dogs.breed",
				"a pattern renamed (same paths)":       "the template changed since this request",
				"a pattern widened (every path of it)": "the template changed since this request",
			}
			if why, ok := failing[name]; ok {
				_, err := audit.Verify(x, audit.Options{})
				if f, ok := err.(*audit.Failure); !ok || f.Check != audit.CheckDecision || !strings.Contains(f.Reason, why) {
					t.Fatalf("%v, want a decision failure saying %q", err, why)
				}
				return
			}
			got, err := audit.Verify(x, audit.Options{})
			if err != nil {
				t.Fatalf("an edit that changes no endpoint fails: %v", err)
			}
			if len(got.Executions) != len(want.Executions) {
				t.Fatalf("%d executions, want %d", len(got.Executions), len(want.Executions))
			}
			for i := range got.Executions {
				if g, w := got.Executions[i], want.Executions[i]; g.Required != w.Required || g.RuleText() != w.RuleText() || g.Endpoint != w.Endpoint {
					t.Fatalf("execution %d: M %d %s %s, want M %d %s %s", i, g.Required, g.RuleText(), g.Endpoint, w.Required, w.RuleText(), w.Endpoint)
				}
			}
		})
	}
}

func TestParseRefusesWhatIsNotAnExport(t *testing.T) {
	rl := buildRealLog(t)
	good, _ := rl.export.Marshal()
	for name, data := range map[string][]byte{
		"not JSON":      []byte("{"),
		"other format":  bytes.Replace(good, []byte(audit.Format), []byte("twokey-audit/0"), 1),
		"no checkpoint": bytes.Replace(good, []byte(`"checkpoint"`), []byte(`"checkpoint_"`), 1),
		"no records":    []byte(`{"format":"` + audit.Format + `","conversation":"x","checkpoint":{},"records":[]}`),
	} {
		if _, err := audit.Parse(data); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, err := audit.Parse(good); err != nil {
		t.Fatal(err)
	}
}
