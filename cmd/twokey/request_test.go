package main

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/templates"
)

// localPreview is what 'twokey request --preview' printed when it worked
// the preview out itself, from the catalog and the gate it fetched: kept
// here to show that the lines the server now makes are the same.
func localPreview(t *testing.T, cat *api.Catalog, g *api.GateInfo, convName, name string, kv map[string]string) string {
	t.Helper()
	tm, svc := findTemplate(cat, name)
	if tm == nil {
		t.Fatalf("no template %s", name)
	}
	res, err := tm.Resolve(svc.BaseURL, kv)
	if err != nil {
		t.Fatal(err)
	}
	m, rule := gate.Threshold(g.RequiredApprovals, g.Rules, gate.Target{Service: tm.Service, Path: res.Path, Pattern: tm.Endpoint, Method: res.Method})
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", res.Method, res.URL)
	for _, k := range slices.Sorted(maps.Keys(res.Headers)) {
		fmt.Fprintf(&b, "  %s: %s\n", k, res.Headers[k])
	}
	if len(res.Body) > 0 {
		fmt.Fprintf(&b, "  body %s\n", res.Body)
	}
	fmt.Fprintf(&b, "service %s (key %s), template %s, risk %s\n", svc.Name, orDefault(svc.Auth, "none"), tm.Name, tm.Risk)
	if !g.Enabled {
		fmt.Fprintf(&b, "the gateway is off in %s: enable it before submitting\n", convName)
	} else if rule != nil {
		fmt.Fprintf(&b, "rule %s %s %s applies: %d of %d signers must approve (suggested %d)\n", rule.Service, rule.Method, rule.Endpoint, m, len(g.Signers), tm.SuggestedApprovals)
	} else {
		fmt.Fprintf(&b, "no rule applies: the default %d of %d signers must approve (suggested %d)\n", m, len(g.Signers), tm.SuggestedApprovals)
	}
	fmt.Fprintln(&b, "preview only: nothing submitted")
	return b.String()
}

// TestPreviewIsTheEndpoints: 'twokey request --preview' prints exactly
// the lines of POST .../preview, and those are what the CLI printed when
// it made the preview itself: templates with a path parameter, headers, a
// query and a body, with the gate off, with no rule and with a rule (a
// pattern rule among them) that applies.
func TestPreviewIsTheEndpoints(t *testing.T) {
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up)
	ctx := testutil.Ctx(t)
	alice, bob := testutil.Identity(t, "alice"), testutil.Identity(t, "bob")
	ca, cb := testutil.Client(srv.URL(), alice, nil), testutil.Client(srv.URL(), bob, nil)
	rec, err := ca.CreateConversation(ctx, "ops", []conversation.Member{{Key: bob.KeyID(), Name: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	if err := jsonUnmarshal(rec.Body, &cp); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := alice.Save(filepath.Join(home, "identity.json")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TWOKEY_SERVER": srv.URL(), "TWOKEY_HOME": home}
	cat, err := ca.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cases := [][]string{
		{"httpbin.headers"},
		{"httpbin.echo", "data=hello from twokey"},
		{"dogs.breed", "breed=hound"},
		{"hn.get-item", "id=8863"},
		{"jokes.dad"},
		{"trivia.random"},
	}
	compare := func(stage string, wantLine string) {
		t.Helper()
		g, err := ca.Gate(ctx, cp.Conversation)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			kv, err := templates.ParseArgs(c[1:])
			if err != nil {
				t.Fatal(err)
			}
			pv, err := ca.Preview(ctx, cp.Conversation, c[0], kv)
			if err != nil {
				t.Fatalf("%s %v: %v", stage, c, err)
			}
			out := mustRun(t, env, append([]string{"request", "ops"}, append(c, "--preview")...)...)
			if want := strings.Join(pv.Lines, "\n") + "\n"; out != want {
				t.Errorf("%s %v: the CLI printed\n%s\nthe endpoint's lines are\n%s", stage, c, out, want)
			}
			if want := localPreview(t, cat, g, "ops", c[0], kv); out != want {
				t.Errorf("%s %v: the CLI printed\n%s\nas it computed it before\n%s", stage, c, out, want)
			}
			if c[0] == "hn.get-item" && !strings.Contains(out, wantLine) {
				t.Errorf("%s: %q not in\n%s", stage, wantLine, out)
			}
		}
	}
	compare("gate off", "the gateway is off in ops: enable it before submitting")

	if _, err := ca.EnableGate(ctx, cp.Conversation, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddSecret(ctx, cp.Conversation, "httpbin", "", "", 0, []byte("sk_preview_cli_77")); err != nil {
		t.Fatal(err)
	}
	compare("no rules", "no rule applies: the default 1 of 2 signers must approve (suggested 1)")

	rules := []gate.Rule{
		{Service: "httpbin", Endpoint: "*", Method: "POST", RequiredApprovals: 2},
		{Service: "hackernews", Endpoint: "/item/{id}.json", Method: "*", RequiredApprovals: 2},
		{Service: "*", Endpoint: "*", Method: "GET", RequiredApprovals: 1},
	}
	prop, err := ca.Propose(ctx, cp.Conversation, gate.ProposePayload{Rules: &rules})
	if err != nil {
		t.Fatal(err)
	}
	var pp gate.ProposePayload
	_ = jsonUnmarshal(prop.Body, &pp)
	if _, err := cb.ApproveProposal(ctx, cp.Conversation, pp.ProposalID); err != nil {
		t.Fatal(err)
	}
	compare("rules", "rule hackernews * /item/{id}.json applies: 2 of 2 signers must approve (suggested 1)")

	// An unknown template is a usage error (exit 2), as it always was; a
	// refusal of the preview is the endpoint's, and names what to do: it
	// is about the command line's parameters, so it is usage (exit 2) too.
	code, _, stderr := run(t, env, "request", "ops", "nope.nothing", "--preview")
	if code != 2 || !strings.Contains(stderr, "'twokey templates'") {
		t.Fatalf("unknown template: exit %d, %s", code, stderr)
	}
	code, _, stderr = run(t, env, "request", "ops", "dogs.breed", "--preview")
	if code != 2 || !strings.Contains(stderr, `missing required parameter "breed"`) {
		t.Fatalf("missing param: exit %d, %s", code, stderr)
	}
}

// TestRuleNotesAreTheChecksShadows: the "note: ..." lines 'twokey gate
// rule add' prints are the shadows POST .../rules/check names for the same
// set.
func TestRuleNotesAreTheChecksShadows(t *testing.T) {
	srv := testutil.StartServer(t, nil)
	ctx := testutil.Ctx(t)
	alice, bob := testutil.Identity(t, "alice"), testutil.Identity(t, "bob")
	ca := testutil.Client(srv.URL(), alice, nil)
	rec, err := ca.CreateConversation(ctx, "ops", []conversation.Member{{Key: bob.KeyID(), Name: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	_ = jsonUnmarshal(rec.Body, &cp)
	broad := gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2}
	old := gate.Rule{Service: "httpbin", Endpoint: "/get", Method: "*", RequiredApprovals: 1}
	if _, err := ca.EnableGate(ctx, cp.Conversation, 2, []gate.Rule{broad, old}); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := alice.Save(filepath.Join(home, "identity.json")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TWOKEY_SERVER": srv.URL(), "TWOKEY_HOME": home}
	added := gate.Rule{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 1}
	check, err := ca.CheckRules(ctx, cp.Conversation, []gate.Rule{broad, old, added})
	if err != nil || check.Error != nil || len(check.Shadows) != 1 {
		t.Fatalf("check: %+v %v", check, err)
	}
	out := mustRun(t, env, "gate", "rule", "add", "ops", "--service", "httpbin", "--endpoint", "/post", "--method", "post", "--approvals", "1")
	var notes []string
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(l, "note: "); ok {
			notes = append(notes, s)
		}
	}
	if !slices.Equal(notes, check.Shadows) {
		t.Fatalf("the CLI noted %q; the check names %q", notes, check.Shadows)
	}
}
