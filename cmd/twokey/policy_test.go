package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// policyFixture is a real server with a conversation "ops" of alice (its
// admin), bob and carol, the gate still off, a CLI environment for each
// of them, and alice's client.
type policyFixture struct {
	srv  *testutil.Server
	env  map[string]map[string]string // name -> environment acting as them
	conv string
	ca   *client.Client
}

func newPolicyFixture(t *testing.T, opts ...testutil.Option) *policyFixture {
	t.Helper()
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up, opts...)
	ctx := testutil.Ctx(t)
	home := t.TempDir()
	fx := &policyFixture{srv: srv, env: map[string]map[string]string{}}
	var members []conversation.Member
	for _, name := range []string{"alice", "bob", "carol"} {
		id := testutil.Identity(t, name)
		path := filepath.Join(home, name+".json")
		if err := id.Save(path); err != nil {
			t.Fatal(err)
		}
		fx.env[name] = map[string]string{"TWOKEY_SERVER": srv.URL(), "TWOKEY_HOME": home, "TWOKEY_IDENTITY": path}
		if name == "alice" {
			fx.ca = testutil.Client(srv.URL(), id, nil)
		} else {
			members = append(members, conversation.Member{Key: id.KeyID(), Name: name})
		}
	}
	rec, err := fx.ca.CreateConversation(ctx, "ops", members)
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	if err := jsonUnmarshal(rec.Body, &cp); err != nil {
		t.Fatal(err)
	}
	fx.conv = cp.Conversation
	return fx
}

// as runs the CLI as name and wants exit 0.
func (fx *policyFixture) as(t *testing.T, name string, args ...string) string {
	t.Helper()
	return mustRun(t, fx.env[name], args...)
}

// usage runs the CLI as alice and wants a usage error (exit 2) whose
// message holds each of want.
func (fx *policyFixture) usage(t *testing.T, want []string, args ...string) {
	t.Helper()
	code, out, stderr := run(t, fx.env["alice"], args...)
	if code != 2 {
		t.Fatalf("twokey %s: exit %d, want 2\n%s%s", strings.Join(args, " "), code, out, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("twokey %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, stderr)
		}
	}
}

func wantIn(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// capture is the first submatch of re in out.
func capture(t *testing.T, out, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%q not in\n%s", re, out)
	}
	return m[1]
}

// TestGateEnableGroupsAndPolicyFlags: gate enable's --group and the
// policy flags round-trip (gate show lists the groups by name, gate rule
// ls and gate show give each rule's whole policy); gate rule add takes the
// same flags; the mistakes are usage errors naming the fix; member
// propose --group and --drop-group change the groups by proposal.
func TestGateEnableGroupsAndPolicyFlags(t *testing.T) {
	fx := newPolicyFixture(t)
	rule := gate.Rule{Service: "httpbin", Endpoint: "*", Method: "POST", RequiredApprovals: 2,
		Require: []gate.Require{{Group: "finance", Approvals: 1}, {Group: "security", Approvals: 1}}, ReasonRequired: true, DelaySeconds: 900, Veto: 1}
	f := false
	rule.SubmitterCounts = &f
	describe := rule.Policy().Describe()
	if !strings.Contains(describe, "including 1 of finance and 1 of security") || !strings.Contains(describe, "15 min cool-off") {
		t.Fatalf("Describe: %q", describe)
	}

	// Mistakes, refused before anything is posted.
	fx.usage(t, []string{"--require add to a rule", "--rule approvals=1"},
		"gate", "enable", "ops", "--approvals", "1", "--require", "finance=1")
	fx.usage(t, []string{"--delay", "write the fields inside each SPEC", "delay=15m"},
		"gate", "enable", "ops", "--approvals", "1", "--rule", "service=httpbin,approvals=1", "--rule", "service=fun,approvals=1", "--delay", "15m")
	fx.usage(t, []string{"--veto 2 applies only during a cool-off", "--delay"},
		"gate", "enable", "ops", "--approvals", "1", "--rule", "service=httpbin,approvals=1", "--veto", "2")
	fx.usage(t, []string{"--delay", "15m, 1h or 90s"},
		"gate", "enable", "ops", "--approvals", "1", "--rule", "service=httpbin,approvals=1", "--delay", "soon")
	fx.usage(t, []string{"--require", "GROUP=K"},
		"gate", "enable", "ops", "--approvals", "1", "--rule", "service=httpbin,approvals=1", "--require", "finance")
	fx.usage(t, []string{"--group finance", `"mallory" names 0 members`},
		"gate", "enable", "ops", "--approvals", "1", "--group", "finance=alice,mallory")
	fx.usage(t, []string{"--group finance is given twice"},
		"gate", "enable", "ops", "--approvals", "1", "--group", "finance=alice", "--group", "finance=bob")
	fx.usage(t, []string{"NAME=MEMBER,MEMBER"}, "gate", "enable", "ops", "--approvals", "1", "--group", "finance")

	out := fx.as(t, "alice", "gate", "enable", "ops", "--approvals", "1",
		"--group", "finance=alice,bob", "--group", "security=carol",
		"--rule", "service=httpbin,method=POST,approvals=2",
		"--require", "finance=1,security=1", "--no-self-approval", "--reason-required", "--delay", "15m", "--veto", "1")
	wantIn(t, "gate enable", out, "gateway enabled in ops: 1 of 3 signers must approve",
		"  group finance    alice, bob\n", "  group security   carol\n", describe)
	g, err := fx.ca.Gate(testutil.Ctx(t), fx.conv)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Groups["finance"]) != 2 || len(g.Groups["security"]) != 1 {
		t.Fatalf("groups in force: %v", g.Groups)
	}
	if len(g.Rules) != 1 || !g.Rules[0].Equal(gate.Normalize([]gate.Rule{rule})[0]) {
		t.Fatalf("rules in force: %+v, want %+v", g.Rules, rule)
	}
	show := fx.as(t, "alice", "gate", "show", "ops")
	wantIn(t, "gate show", show, "  group finance    alice, bob\n", "  group security   carol\n", "POLICY", describe)
	ls := fx.as(t, "alice", "gate", "rule", "ls", "ops")
	if !regexp.MustCompile(`(?m)^httpbin\s+\*\s+POST\s+2\s+5\s+` + regexp.QuoteMeta(describe) + `$`).MatchString(ls) {
		t.Errorf("gate rule ls does not give the rule's policy %q:\n%s", describe, ls)
	}

	// gate rule add: the same flags, on flags or on a SPEC; the proposal
	// shows the rule with its policy; when applied, rule ls lists it.
	fx.usage(t, []string{"--veto 1 applies only during a cool-off"}, "gate", "rule", "add", "ops", "--service", "fun", "--approvals", "1", "--veto", "1")
	out = fx.as(t, "alice", "gate", "rule", "add", "ops", "service=fun,approvals=2", "--require", "security=1", "--delay", "90s")
	id := capture(t, out, `proposed ([0-9a-f-]{36}) to change rules`)
	wantIn(t, "gate rule add", out, "fun")
	for _, who := range []string{"bob", "carol"} {
		fx.as(t, who, "member", "approve", "ops", id, "--yes")
	}
	ls = fx.as(t, "alice", "gate", "rule", "ls", "ops")
	wantIn(t, "gate rule ls", ls, "2 approvals, including 1 of security; 90 s cool-off, 1 veto")

	// member propose --group sets one group (the others stay), and
	// --drop-group drops one; both apply once every signer approves.
	fx.usage(t, []string{"--drop-group nope", "the groups are finance, security"}, "member", "propose", "ops", "--drop-group", "nope")
	out = fx.as(t, "alice", "member", "propose", "ops", "--group", "finance=alice,carol")
	wantIn(t, "member propose --group", out, "to change groups", "~ group finance")
	id = capture(t, out, `proposed ([0-9a-f-]{36}) to change`)
	for _, who := range []string{"bob", "carol"} {
		fx.as(t, who, "member", "approve", "ops", id, "--yes")
	}
	show = fx.as(t, "alice", "gate", "show", "ops")
	wantIn(t, "gate show after --group", show, "  group finance    alice, carol\n", "  group security   carol\n")
	members := fx.as(t, "alice", "member", "ls", "ops")
	if !regexp.MustCompile(`(?m)^carol\s+\S+  signer; groups finance, security$`).MatchString(members) ||
		!regexp.MustCompile(`(?m)^bob\s+\S+  signer$`).MatchString(members) {
		t.Errorf("member ls does not name the groups:\n%s", members)
	}

	// A new group, by proposal: the diff names it with its members.
	out = fx.as(t, "alice", "member", "propose", "ops", "--group", "audit=bob")
	wantIn(t, "member propose --group audit=bob", out, "+ group audit: bob")
}

// TestPolicyRefusalsNameTheRule: what no set of signers can meet is
// refused by the server, and the CLI passes on its message, which names
// the rule and the fix: at gate enable, at gate rule add, at a proposal
// that drops a group a rule requires, and at the submission of a request
// only its submitter could fill a slot of.
func TestPolicyRefusalsNameTheRule(t *testing.T) {
	fx := newPolicyFixture(t)
	refused := func(who string, want []string, args ...string) {
		t.Helper()
		code, out, stderr := run(t, fx.env[who], args...)
		if code != 1 {
			t.Fatalf("twokey %s: exit %d, want 1\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
		wantIn(t, "twokey "+strings.Join(args, " "), stderr, want...)
	}
	refused("alice", []string{"rule 1 (httpbin * *)", "group finance has 1 signer but the rule needs 2", "require 1"},
		"gate", "enable", "ops", "--approvals", "1", "--group", "finance=bob", "--rule", "service=httpbin,approvals=2", "--require", "finance=2")
	fx.as(t, "alice", "gate", "enable", "ops", "--approvals", "1", "--group", "finance=bob",
		"--rule", "service=httpbin,approvals=2,require=finance:1", "--no-self-approval")
	refused("alice", []string{"rule 2 (fun * *)", "group nope, which is not set"},
		"gate", "rule", "add", "ops", "--service", "fun", "--approvals", "2", "--require", "nope=1")
	refused("alice", []string{"finance"}, "member", "propose", "ops", "--drop-group", "finance")
	refused("bob", []string{"without its submitter", "another signer of finance must submit"}, "request", "ops", "httpbin.headers")
}

// TestRequestUnderRequireRule: a request under a rule with require shows
// its policy in the preview and when submitted, carries its --reason
// (shown by request show and the log), and executes only once the group
// slots are filled: bob for finance is not enough, carol for security
// completes it; the assignment is in the state and in the log.
func TestRequestUnderRequireRule(t *testing.T) {
	fx := newPolicyFixture(t)
	ctx := testutil.Ctx(t)
	fx.as(t, "alice", "gate", "enable", "ops", "--approvals", "1", "--group", "finance=bob", "--group", "security=carol",
		"--rule", "service=httpbin,approvals=2", "--require", "finance=1,security=1", "--reason-required")
	if _, err := fx.ca.AddSecret(ctx, fx.conv, "httpbin", "", "", 0, []byte("sk_policy_cli_91")); err != nil {
		t.Fatal(err)
	}
	describe := "2 approvals, including 1 of finance and 1 of security; reason required"

	pv := fx.as(t, "alice", "request", "ops", "httpbin.headers", "--preview")
	wantIn(t, "request --preview", pv, "rule httpbin * * applies", "policy: "+describe+"\npreview only: nothing submitted\n")

	// A rule that requires a reason refuses a request without one before
	// anything is signed; an empty or too long reason is refused too.
	fx.usage(t, []string{"requires a reason", "--reason TEXT"}, "request", "ops", "httpbin.headers")
	fx.usage(t, []string{"--reason is empty"}, "request", "ops", "httpbin.headers", "--reason", " ")
	fx.usage(t, []string{"--reason has 1001 characters", "at most 1000"}, "request", "ops", "httpbin.headers", "--reason", strings.Repeat("é", 1001))
	fx.usage(t, []string{"--reason has 1001 characters"}, "approve", "ops", "abcd", "--reason", strings.Repeat("x", 1001))

	out := fx.as(t, "alice", "request", "ops", "httpbin.headers", "--reason", "quarterly audit of the key")
	id := capture(t, out, `submitted request ([0-9a-f-]{36})`)
	wantIn(t, "request", out, "policy: "+describe)

	out = fx.as(t, "bob", "approve", "ops", id[:8], "--reason", "finance ok")
	wantIn(t, "bob's approve", out, "request is pending, approvals 2/2; it still needs 1 more of security")
	st, err := fx.ca.Request(ctx, fx.conv, id)
	if err != nil || st.State != gate.StatePending {
		t.Fatalf("after bob: %+v %v", st, err)
	}
	show := fx.as(t, "alice", "request", "show", "ops", id[:8])
	wantIn(t, "request show", show, "why        quarterly audit of the key", "policy     "+describe, "state      pending", "needs      1 more of security")

	out = fx.as(t, "carol", "approve", "ops", id[:8])
	wantIn(t, "carol's approve", out, "approved "+id)
	if strings.Contains(out, "veto") {
		t.Errorf("a request with no cool-off has nothing to veto:\n%s", out)
	}
	st, err = fx.ca.WaitRequest(ctx, fx.conv, id)
	if err != nil || st.State != gate.StateExecuted {
		t.Fatalf("after carol: %+v %v", st, err)
	}
	show = fx.as(t, "alice", "request", "show", "ops", id[:8])
	wantIn(t, "request show", show, "state      executed", "groups     bob for finance, carol for security")

	log := fx.as(t, "alice", "log", "ops")
	wantIn(t, "log", log,
		"group finance: bob", "group security: carol",
		"rule httpbin * * needs "+describe,
		"     why: quarterly audit of the key\n",
		"     policy "+describe+"\n",
		"APPROVE "+id[:8]+"  (2/2): finance ok",
		"APPROVE "+id[:8]+"  (3/2)",
		"     groups: bob for finance, carol for security\n")
}

// TestCoolOffApprovedVetoAndExecute: under a rule with a delay, the
// request that meets its approvals is approved and shows when it
// executes and how many vetoes stop it; veto refuses a pending request;
// a veto during the cool-off rejects it ("vetoed"); another request
// executes once the cool-off is over (the server's clock moved by hand).
func TestCoolOffApprovedVetoAndExecute(t *testing.T) {
	clk := clock.NewFake(time.Now())
	fx := newPolicyFixture(t, testutil.WithClock(clk))
	ctx := testutil.Ctx(t)
	fx.as(t, "alice", "gate", "enable", "ops", "--approvals", "1",
		"--rule", "service=httpbin,approvals=2", "--delay", "2m")
	if _, err := fx.ca.AddSecret(ctx, fx.conv, "httpbin", "", "", 0, []byte("sk_policy_cli_92")); err != nil {
		t.Fatal(err)
	}
	approvedRe := `approved — executes at \d\d:\d\d:\d\d UTC \((in \d+m?[\d.]*s|due now)\) unless vetoed \(0 of 1 vetoes\)`

	out := fx.as(t, "alice", "request", "ops", "httpbin.headers", "--reason", "first")
	wantIn(t, "request", out, "policy: 2 approvals; 2 min cool-off, 1 veto")
	r1 := capture(t, out, `submitted request ([0-9a-f-]{36})`)
	out = fx.as(t, "alice", "request", "ops", "httpbin.headers")
	r2 := capture(t, out, `submitted request ([0-9a-f-]{36})`)

	// Nothing to veto while pending: use reject.
	fx.usage(t, []string{"is pending, not in a cool-off", "twokey reject ops " + r2[:8]}, "veto", "ops", r2[:8])

	out = fx.as(t, "bob", "approve", "ops", r1[:8])
	if !regexp.MustCompile(`request is ` + approvedRe + `; veto with: twokey veto ops ` + r1[:8]).MatchString(out) {
		t.Fatalf("bob's approve does not show the cool-off:\n%s", out)
	}
	show := fx.as(t, "alice", "request", "show", "ops", r1[:8])
	if !regexp.MustCompile(`state\s+` + approvedRe).MatchString(show) {
		t.Fatalf("request show does not show the cool-off:\n%s", show)
	}
	if strings.Contains(show, "expires") {
		t.Errorf("an approved request no longer expires, but request show says so:\n%s", show)
	}
	reqs := fx.as(t, "alice", "requests", "ops", "--state", "approved")
	wantIn(t, "requests --state approved", reqs, r1[:8])

	out = fx.as(t, "carol", "veto", "ops", r1[:8], "--reason", "wrong account")
	wantIn(t, "veto", out, "vetoed "+r1, "request is rejected: vetoed (1 of 1 vetoes)")
	st, err := fx.ca.Request(ctx, fx.conv, r1)
	if err != nil || st.State != gate.StateRejected || st.Result == nil || st.Result.Reason != gate.ReasonVetoed {
		t.Fatalf("after the veto: %+v %v", st, err)
	}
	show = fx.as(t, "alice", "request", "show", "ops", r1[:8])
	wantIn(t, "request show after veto", show, "rejected (vetoed during the cool-off)", "vetoes     1 of 1 (carol)")

	// The second request waits out its cool-off, then executes.
	out = fx.as(t, "bob", "approve", "ops", r2[:8], "--reason", "fine by me")
	if !regexp.MustCompile(approvedRe).MatchString(out) {
		t.Fatalf("r2 not approved:\n%s", out)
	}
	clk.Advance(2*time.Minute + time.Second)
	st, err = fx.ca.WaitRequest(ctx, fx.conv, r2)
	if err != nil || st.State != gate.StateExecuted {
		t.Fatalf("r2 after the cool-off: %+v %v", st, err)
	}

	log := fx.as(t, "alice", "log", "ops")
	wantIn(t, "log", log,
		"rule httpbin * * needs 2 approvals; 2 min cool-off, 1 veto",
		"why: first",
		"APPROVED "+r1[:8]+"  by alice, bob; executes at ",
		"unless vetoed (1 veto stops it) · now rejected",
		"VETO    "+r1[:8]+"  (1 of 1 vetoes): wrong account",
		"REJECTED "+r1[:8]+"  reason vetoed during the cool-off by carol",
		"APPROVE "+r2[:8]+"  (2/2): fine by me",
		"APPROVED "+r2[:8]+"  by alice, bob",
		"EXECUTED "+r2[:8])
}
