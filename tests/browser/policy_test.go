package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// TestBrowserCoolOffVeto: under a rule with a 15-minute cool-off, bob's
// approval in the page meets the requirement; the card shows the request
// approved with a live countdown to executable_at and a Veto button, and
// bob's veto (a gate.reject with a reason, bound to the digest) ends it:
// the card says vetoed, with who and why, and nothing was called.
func TestBrowserCoolOffVeto(t *testing.T) {
	b := newBrowser(t)
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up)
	conv, cs, bobFile := goSetup(t, srv, gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2, DelaySeconds: 900})
	ctx := testutil.Ctx(t)
	if _, err := cs[0].AddSecret(ctx, conv, "httpbin", "", "", 0, []byte("sk_cooloff_0123456789")); err != nil {
		t.Fatal(err)
	}
	rec, err := cs[0].Submit(ctx, conv, gate.RequestPayload{Template: "httpbin.headers", Service: "httpbin", Method: "GET", URL: up.URL + "/httpbin/headers",
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	var rp gate.RequestPayload
	if err := json.Unmarshal(rec.Body, &rp); err != nil {
		t.Fatal(err)
	}
	rid := rp.RequestID

	bob := newPage(t, b, "bob", srv.URL())
	bob.importIdentity(bobFile)
	bob.open("#/c/" + conv + "/r/" + rid)
	req := `#req-` + rid
	bob.waitFor(req + ` button[data-action=approve]`)
	if txt := bob.text(req + ` dd.policy`); txt != "2 approvals; 15 min cool-off, 1 veto" {
		t.Fatalf("the policy line says %q; want Go's Describe", txt)
	}
	bob.click(req + ` button[data-action=approve]`)
	bob.waitFor(card("gate.approved"))
	bob.waitFor(req + ` button[data-action=veto]`)
	if txt := bob.text(req + ` dd.state`); !strings.Contains(txt, "approved") || !regexp.MustCompile(`executes in 1[45]m`).MatchString(txt) {
		t.Fatalf("the approved card's state says %q; want approved and a countdown", txt)
	}
	// the countdown is live: it ticks down without a reload
	first := bob.text(req + ` .countdown.cooloff`)
	cctx, cancel := context.WithTimeout(bob.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(cctx, chromedp.Poll[bool](fmt.Sprintf(`(() => { const el = document.querySelector(%q); return !!el && el.textContent !== %q })()`, req+` .countdown.cooloff`, first),
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the countdown stays at %q: %v", first, err)
	}
	if n := bob.count(req + ` button[data-action=approve]`); n != 0 {
		t.Fatalf("the approved request still offers Approve")
	}
	screenshot(t, bob.ctx, "cool-off")

	bob.fill(req+` input[data-field=veto-reason]`, "wrong account, stop it")
	bob.click(req + ` button[data-action=veto]`)
	bob.waitFor(card("gate.rejected"))
	txt := waitText(t, bob, req+` dd.state`, "vetoed")
	if !strings.Contains(txt, "signer1") || !strings.Contains(txt, "wrong account, stop it") {
		t.Fatalf("the vetoed card's state says %q; want who vetoed and why", txt)
	}
	if n := bob.count(req + ` button`); n != 0 {
		t.Fatalf("the vetoed request still offers %d buttons", n)
	}
	if txt := bob.text(card("gate.rejected")); !strings.Contains(txt, "vetoed") {
		t.Fatalf("the gate.rejected card says %q", txt)
	}
	if txt := bob.text(`ol.log li[data-kind="gate.reject"]`); !strings.Contains(txt, "Vetoes") || !strings.Contains(txt, "wrong account") {
		t.Fatalf("the veto's own card says %q", txt)
	}
	st, err := cs[0].Request(ctx, conv, rid)
	if err != nil || st.State != "rejected" || len(st.Vetoes) != 1 {
		t.Fatalf("the server's state: %v %+v", err, st)
	}
	if n := up.Count("/httpbin/headers"); n != 0 {
		t.Fatalf("upstream saw %d calls of a vetoed request", n)
	}
	noPageErrors(t, bob.ctx)
}

// TestBrowserGroupsAndReason: a gateway enabled with groups shows them in
// the panel; a request under a rule that requires a finance approval and
// a reason shows its reason (as text) and policy; the form refuses to
// submit without the reason the rule requires; bob's approval fills the
// finance slot, and after the 1-second cool-off the executed card says
// which key filled it. Then bob proposes, from the panel, a rule that says
// more than M and a groups change.
func TestBrowserGroupsAndReason(t *testing.T) {
	b := newBrowser(t)
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up)
	ctx := testutil.Ctx(t)
	ids, cs, members := testutil.Signers(t, srv.URL(), 3, nil)
	rec, err := cs[0].CreateConversation(ctx, "ops", members)
	if err != nil {
		t.Fatal(err)
	}
	conv := conversationOf(t, rec)
	h, err := cs[0].Header(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	rule := gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 2,
		Require: []gate.Require{{Group: "finance", Approvals: 1}}, ReasonRequired: true, DelaySeconds: 1}
	groups := map[string][]string{"finance": {ids[1].KeyID()}, "security": {ids[0].KeyID(), ids[2].KeyID()}}
	if _, err := cs[0].Post(ctx, conv, conversation.KindGateEnable, gate.EnablePayload{Header: h, RequiredApprovals: 2, Rules: []gate.Rule{rule}, Groups: groups}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs[0].AddSecret(ctx, conv, "httpbin", "", "", 0, []byte("sk_groups_0123456789")); err != nil {
		t.Fatal(err)
	}
	const why = "quarterly audit <b>now</b> & then"
	rec, err = cs[0].Submit(ctx, conv, gate.RequestPayload{Template: "httpbin.headers", Service: "httpbin", Method: "GET", URL: up.URL + "/httpbin/headers",
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour)), Reason: why})
	if err != nil {
		t.Fatal(err)
	}
	var rp gate.RequestPayload
	if err := json.Unmarshal(rec.Body, &rp); err != nil {
		t.Fatal(err)
	}
	rid := rp.RequestID
	bobFile := filepath.Join(t.TempDir(), "bob.json")
	if err := ids[1].Save(bobFile); err != nil {
		t.Fatal(err)
	}

	bob := newPage(t, b, "bob", srv.URL())
	bob.importIdentity(bobFile)
	bob.open("#/c/" + conv)
	req := `#req-` + rid
	bob.waitFor(req)
	// the groups, in the panel and on the gate.enabled card
	if txt := bob.text(`div.gate-info ul.groups`); !strings.Contains(txt, "finance: signer1") || !strings.Contains(txt, "security: signer0, signer2") {
		t.Fatalf("the panel's groups say %q", txt)
	}
	if txt := bob.text(card("gate.enabled")); !strings.Contains(txt, "finance: signer1") || !strings.Contains(txt, "2 approvals, including 1 of finance; reason required; 1 s cool-off, 1 veto") {
		t.Fatalf("the gate.enabled card says %q", txt)
	}
	// the reason, as text, and the policy
	if got := bob.text(req + ` dd.why`); got != why {
		t.Fatalf("the request's reason is drawn as %q, want %q", got, why)
	}
	if n := bob.count(req + ` dd.why b`); n != 0 {
		t.Fatalf("the reason's HTML became %d elements", n)
	}
	if got := bob.text(req + ` dd.policy`); got != "2 approvals, including 1 of finance; reason required; 1 s cool-off, 1 veto" {
		t.Fatalf("the policy line says %q", got)
	}

	// the form: no reason, no request
	bob.choose(`form.request-form select[name=template]`, "httpbin.headers")
	waitText(t, bob, `form.request-form pre.preview`, "preview only")
	waitText(t, bob, `form.request-form .field .hint[id^=reason-hint]`, "Required")
	bob.click(`form.request-form button[type=submit]`)
	waitText(t, bob, `form.request-form p.msg`, "requires a reason")
	bob.fill(`form.request-form textarea[name=reason]`, "bob's own reason")
	rid2 := bob.submitRequest()
	if got := bob.text(`#req-` + rid2 + ` dd.why`); got != "bob's own reason" {
		t.Fatalf("bob's request's reason is drawn as %q", got)
	}

	// bob (finance) approves alice's request: approved, then executed
	bob.open("#/c/" + conv + "/r/" + rid)
	bob.fill(req+` input[data-field=vote-reason]`, "checked the ledger")
	bob.click(req + ` button[data-action=approve]`)
	bob.waitFor(card("gate.approved"))
	bob.waitFor(card("gate.executed"))
	if txt := bob.text(card("gate.executed")); !strings.Contains(txt, "signer1 for finance") {
		t.Fatalf("the executed card says %q; want the slot bob filled", txt)
	}
	if txt := bob.text(req); !strings.Contains(txt, "executed") || !strings.Contains(txt, "signer1 for finance") || !strings.Contains(txt, "checked the ledger") {
		t.Fatalf("the executed request's card says %q", txt)
	}
	if n := up.Count("/httpbin/headers"); n != 1 {
		t.Fatalf("upstream saw %d calls, want 1", n)
	}

	// a rule that says more than M, from the Add-rule form
	bob.open("#/c/" + conv)
	bob.choose(`form.rule-add select`, "httpbin.headers")
	bob.fill(`form.rule-add input[type=number]`, "2")
	bob.click(`form.rule-add details.more summary`)
	bob.fill(`form.rule-add input[data-group=finance]`, "1")
	bob.click(`form.rule-add input[data-field=no-self]`)
	bob.click(`form.rule-add input[data-field=reason-required]`)
	bob.fill(`form.rule-add input[data-field=delay-minutes]`, "15")
	bob.click(`form.rule-add button[type=submit]`)
	const wantRule = "+ rule httpbin GET /headers → 2 approvals, including 1 of finance; not the submitter; reason required; 15 min cool-off, 1 veto"
	waitText(t, bob, card("member.propose"), wantRule)

	// a groups change, proposed from the panel: ops, with signer2
	bob.click(`form.groups-change button[data-action=add-group]`)
	bob.fill(`form.groups-change fieldset.group-row:last-of-type input[data-field=group-name]`, "ops")
	bob.click(fmt.Sprintf(`form.groups-change fieldset.group-row:last-of-type input[data-key=%q]`, ids[2].KeyID()))
	bob.click(`form.groups-change button[type=submit]`)
	if txt := waitAnyText(t, bob, card("member.propose"), "+ group ops"); !strings.Contains(txt, "+signer2") || !strings.Contains(txt, "1/3 approvals") {
		t.Fatalf("the proposal card says %q", txt)
	}
	noPageErrors(t, bob.ctx)
}

// waitAnyText waits until one of the elements sel matches has want in its
// text, and returns that text.
func waitAnyText(t *testing.T, p *page, sel, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(`(() => { const el = [...document.querySelectorAll(%q)].find(e => e.textContent.includes(%q)); return el ? el.textContent : false })()`, sel, want),
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("%s: no %s says %q: %v", p.name, sel, want, err)
	}
	return s
}
