package browser_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// page is one person's tab on the app.
type page struct {
	t    *testing.T
	ctx  context.Context
	name string
	base string
}

// stepTimeout bounds each step a page takes (a wait included).
const stepTimeout = 30 * time.Second

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// evalAs returns a JavaScript expression's value.
func evalAs[T any](p *page, js string) T {
	p.t.Helper()
	v, err := tryEvalJS[T](p.ctx, js)
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, js, err)
	}
	return v
}

func (p *page) open(fragment string) {
	p.t.Helper()
	p.do(chromedp.Navigate(p.base+"/"+fragment), chromedp.WaitReady(chromedp.CSS("header.top")))
}

// text is the text of the first element sel matches, once it is visible.
func (p *page) text(sel string) string {
	p.t.Helper()
	p.waitFor(sel)
	return evalAs[string](p, fmt.Sprintf(`document.querySelector(%q).textContent`, sel))
}

func (p *page) click(sel string) {
	p.t.Helper()
	p.do(chromedp.WaitEnabled(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// fill types value into an emptied field, key by key.
func (p *page) fill(sel, value string) {
	p.t.Helper()
	p.waitFor(sel)
	evalAs[bool](p, fmt.Sprintf(`(() => { document.querySelector(%q).value = ''; return true })()`, sel))
	p.do(chromedp.SendKeys(chromedp.CSS(sel), value))
}

// choose sets a select's value and fires its change event, as a person
// choosing with the keyboard does.
func (p *page) choose(sel, value string) {
	p.t.Helper()
	p.waitFor(sel)
	if !evalAs[bool](p, fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		if (![...el.options].some(o => o.value === %q)) return false;
		el.value = %q; el.dispatchEvent(new Event('change', {bubbles: true})); return true })()`, sel, value, value)) {
		p.t.Fatalf("%s: %s has no option %q", p.name, sel, value)
	}
}

// waitFor waits (bounded by the tab's timeout) until sel matches a visible element.
func (p *page) waitFor(sel string) {
	p.t.Helper()
	p.do(chromedp.WaitVisible(chromedp.CSS(sel)))
}

// count is how many elements match sel now.
func (p *page) count(sel string) int {
	p.t.Helper()
	return evalAs[int](p, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// createIdentity makes name's identity in the page and returns its key id.
func (p *page) createIdentity() string {
	p.t.Helper()
	p.open("#/id")
	p.fill(`form[aria-label="create an identity"] input[type=text]`, p.name)
	p.click(`form[aria-label="create an identity"] button[type=submit]`)
	p.waitFor(`ul.ids li.active`)
	key := strings.TrimSpace(p.text(`ul.ids li.active code.keyid`))
	if len(key) != 43 {
		p.t.Fatalf("%s: key id %q is not 43 characters", p.name, key)
	}
	return key
}

// importIdentity imports a twokey id file through the file input.
func (p *page) importIdentity(path string) {
	p.t.Helper()
	p.open("#/id")
	p.do(chromedp.SetUploadFiles(chromedp.CSS(`form[aria-label="import an identity"] input[type=file]`), []string{path}))
	p.click(`form[aria-label="import an identity"] button[type=submit]`)
	p.waitFor(`ul.ids li.active`)
}

// submitRequest submits the request form and returns the new request's
// id, once the page has moved to its deep link and drawn it.
func (p *page) submitRequest() string {
	p.t.Helper()
	before := evalAs[string](p, `location.hash`)
	p.click(`form.request-form button[type=submit]`)
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	rid, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(`(() => {
		const m = location.hash.match(/^#\/c\/[^/]+\/r\/([0-9a-f-]{36})$/);
		return m && location.hash !== %q && document.getElementById('req-' + m[1]) ? m[1] : false })()`, before), chromedp.WithPollingTimeout(stepTimeout)))
	if err != nil {
		p.t.Fatalf("%s: the request was not submitted: %v; the form says %q", p.name, err,
			evalAs[string](p, `document.querySelector('form.request-form p.msg').textContent`))
	}
	return rid
}

// card is the selector of the first card of kind in the log.
func card(kind string) string { return fmt.Sprintf(`ol.log li[data-kind=%q]`, kind) }

func newPage(t *testing.T, browser context.Context, name, base string) *page {
	return &page{t: t, ctx: newTab(t, browser), name: name, base: base}
}

// TestBrowserApproveFlow is the whole story in three browsers: alice, bob
// and carol make identities in their pages, alice creates a conversation,
// enables 2-of-3, seals an API key in the page and requests
// httpbin.headers; bob approves by clicking and the executed and response
// cards reach all three; then a rejection and an expiry (the server's
// clock, injected, moves past the request's expires_at).
func TestBrowserApproveFlow(t *testing.T) {
	b := newBrowser(t)
	clk := clock.NewFake(time.Now())
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up, testutil.WithClock(clk))
	base := srv.URL()
	alice, bob, carol := newPage(t, b, "alice", base), newPage(t, b, "bob", base), newPage(t, b, "carol", base)
	alice.createIdentity()
	bobKey, carolKey := bob.createIdentity(), carol.createIdentity()
	screenshot(t, alice.ctx, "identities")

	// alice creates the conversation with bob and carol by key id
	alice.open("#/new")
	alice.fill(`form.card input[type=text]`, "ops")
	alice.fill(`form.card textarea`, "bob="+bobKey+"\ncarol="+carolKey)
	alice.click(`form.card button[type=submit]`)
	alice.waitFor(card("conversation.create"))
	conv := evalAs[string](alice, `location.hash.split('/')[2]`)
	if len(conv) != 36 {
		t.Fatalf("after create the page is at %q, want #/c/ID", conv)
	}

	// chat, seen by bob
	alice.fill(`form.chat input`, "deploying the httpbin check")
	alice.click(`form.chat button[type=submit]`)
	bob.open("#/c/" + conv)
	if got := bob.text(card("chat.message") + ` p.text`); got != "deploying the httpbin check" {
		t.Fatalf("bob sees the message as %q", got)
	}

	// the server's refusal is shown in its own words: 5 of 3 cannot be
	alice.fill(`form.enable input[type=number]`, "5")
	alice.click(`form.enable button[type=submit]`)
	waitText(t, alice, `aside.side p.msg`, "The server refused:")
	// enable 2 of 3
	alice.fill(`form.enable input[type=number]`, "2")
	alice.click(`form.enable button[type=submit]`)
	alice.waitFor(card("gate.enabled"))
	if txt := alice.text(card("gate.enabled")); !strings.Contains(txt, "2 of 3 signers") {
		t.Fatalf("gate.enabled card says %q", txt)
	}

	// an API key, sealed in the page
	const secretValue = "sk_browser_4f9c2a7e1b8d"
	alice.choose(`form.secret-add select`, "httpbin")
	alice.fill(`form.secret-add input[type=password]`, secretValue)
	alice.click(`form.secret-add button[type=submit]`)
	alice.waitFor(card("gate.secret.stored"))
	left := evalAs[string](alice, `document.querySelector('form.secret-add input[type=password]').value`)
	if left != "" {
		t.Fatalf("the key field still holds %q after sealing", left)
	}

	alice.choose(`form.request-form select[name=template]`, "httpbin.headers")
	waitText(t, alice, `form.request-form pre.preview`, "preview only")
	screenshot(t, alice.ctx, "request-form")
	rid := alice.submitRequest()

	// bob: waiting for you, then the deep link, then Approve
	bob.open("#/")
	bob.waitFor(`ul.queue li.qitem a`)
	if txt := bob.text(`ul.convs`); strings.Contains(txt, "unread") || !strings.Contains(txt, "1 wait for you") {
		t.Fatalf("bob's conversation list says %q; want 1 waiting for him, and nothing unread (he watched it all)", txt)
	}
	carol.open("#/")
	if txt := waitText(t, carol, `ul.convs`, "unread"); !strings.Contains(txt, "6 unread") || !strings.Contains(txt, "1 wait for you") {
		t.Fatalf("carol's conversation list says %q; want the 6 records she has not seen and 1 waiting for her", txt)
	}
	screenshot(t, bob.ctx, "home")
	bob.click(`ul.queue li.qitem a`)
	bob.waitFor(`#req-` + rid + ` button[data-action=approve]`)
	if txt := bob.text(`#req-` + rid); !strings.Contains(txt, "1/2") || !strings.Contains(txt, "alice") || !strings.Contains(txt, "/headers") {
		t.Fatalf("bob's request card says %q; want 1/2 approvals by alice and the /headers URL", txt)
	}
	screenshot(t, bob.ctx, "request")
	bob.click(`#req-` + rid + ` button[data-action=approve]`)
	for _, p := range []*page{alice, bob, carol} {
		if p == carol {
			p.open("#/c/" + conv + "/r/" + rid)
		}
		p.waitFor(card("gate.executed"))
		p.waitFor(card("gate.response"))
		if txt := p.text(card("gate.response")); !strings.Contains(txt, "[redacted]") || strings.Contains(txt, secretValue) {
			t.Fatalf("%s's response card: %q; want the key redacted", p.name, txt)
		}
	}
	screenshot(t, carol.ctx, "executed")
	if n := up.Count("/httpbin/headers"); n != 1 {
		t.Fatalf("upstream saw /httpbin/headers %d times, want exactly once", n)
	}
	got := up.Requests()[0].Header.Get("Authorization")
	if got != "Bearer "+secretValue {
		t.Fatalf("upstream got Authorization %q, want the key sealed in the page", got)
	}

	// a rejection: bob and carol click Reject, with reasons
	alice.open("#/c/" + conv)
	alice.choose(`form.request-form select[name=template]`, "httpbin.echo")
	alice.fill(`form.request-form input[data-param=data]`, "drop-tables")
	waitText(t, alice, `form.request-form pre.preview`, "drop-tables")
	rid2 := alice.submitRequest()
	for _, p := range []*page{bob, carol} {
		p.open("#/c/" + conv + "/r/" + rid2)
		p.fill(`#req-`+rid2+` .actions input[type=text]`, "not today, "+p.name)
		p.click(`#req-` + rid2 + ` button[data-action=reject]`)
	}
	alice.waitFor(card("gate.rejected"))
	if txt := alice.text(`#req-` + rid2); !strings.Contains(txt, "not today, bob") || !strings.Contains(txt, "rejected") {
		t.Fatalf("the rejected request's card says %q", txt)
	}

	// a cancel: only the submitter has the button
	alice.choose(`form.request-form select[name=template]`, "httpbin.headers")
	waitText(t, alice, `form.request-form pre.preview`, "preview only")
	rid3 := alice.submitRequest()
	bob.open("#/c/" + conv + "/r/" + rid3)
	bob.waitFor(`#req-` + rid3 + ` button[data-action=approve]`)
	if n := bob.count(`#req-` + rid3 + ` button[data-action=cancel]`); n != 0 {
		t.Fatalf("bob is offered Cancel on alice's request")
	}
	alice.click(`#req-` + rid3 + ` button[data-action=cancel]`)
	alice.waitFor(card("gate.cancelled"))
	bob.waitFor(card("gate.cancelled"))
	if n := bob.count(`#req-` + rid3 + ` button`); n != 0 {
		t.Fatalf("the cancelled request still offers bob %d buttons", n)
	}

	// an expiry: carol asks for 15 minutes; the server's clock passes it
	carol.open("#/c/" + conv)
	carol.choose(`form.request-form select[name=template]`, "httpbin.headers")
	carol.choose(`form.request-form select[name=expires]`, "900")
	waitText(t, carol, `form.request-form pre.preview`, "preview only")
	carol.submitRequest()
	clk.Advance(16 * time.Minute)
	carol.waitFor(card("gate.expired"))
	if n := up.Count("/httpbin/headers"); n != 1 {
		t.Fatalf("upstream saw /httpbin/headers %d times after the expiry, want still 1", n)
	}
}

// waitText waits until sel's text contains want and returns it.
func waitText(t *testing.T, p *page, sel, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(`(() => { const el = document.querySelector(%q); return el && el.textContent.includes(%q) ? el.textContent : false })()`, sel, want), chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		last := evalAs[string](p, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || '(none)'`, sel))
		t.Fatalf("%s: %s never said %q; it says %q: %v", p.name, sel, want, last, err)
	}
	return s
}

// tamperingProxy forwards to target and, in every page of records it
// passes, rewrites the URL inside gate.request payloads (and the body the
// server decoded, so that only the signature can tell).
func tamperingProxy(t *testing.T, target string) string {
	t.Helper()
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != "GET" || !strings.HasSuffix(resp.Request.URL.Path, "/messages") || resp.StatusCode != 200 {
			return nil
		}
		var page api.RecordPage
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			return err
		}
		resp.Body.Close()
		for i, r := range page.Records {
			if r.Kind != conversation.KindGateRequest {
				continue
			}
			raw, _ := base64.StdEncoding.DecodeString(r.Envelope.Payload)
			raw = []byte(strings.Replace(string(raw), "/headers", "/anything/transfer-all", 1))
			page.Records[i].Envelope.Payload = base64.StdEncoding.EncodeToString(raw)
			page.Records[i].Body = raw
		}
		body, _ := json.Marshal(page)
		resp.Body = ioNopCloser(body)
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", fmt.Sprint(len(body)))
		return nil
	}
	ts := httptest.NewServer(rp)
	t.Cleanup(ts.Close)
	return ts.URL
}

// goSetup makes a conversation ops of Go identities signer0 (its admin),
// signer1 ("bob") and signer2, with the gateway on at 2 of 3 under rules,
// and writes bob's identity file for the page to import.
func goSetup(t *testing.T, srv *testutil.Server, rules ...gate.Rule) (conv string, clients []*client.Client, bobFile string) {
	t.Helper()
	ctx := testutil.Ctx(t)
	ids, cs, members := testutil.Signers(t, srv.URL(), 3, nil)
	rec, err := cs[0].CreateConversation(ctx, "ops", members)
	if err != nil {
		t.Fatal(err)
	}
	conv = conversationOf(t, rec)
	if _, err := cs[0].EnableGate(ctx, conv, 2, rules); err != nil {
		t.Fatal(err)
	}
	bobFile = filepath.Join(t.TempDir(), "bob.json")
	if err := ids[1].Save(bobFile); err != nil {
		t.Fatal(err)
	}
	return conv, cs, bobFile
}

func conversationOf(t *testing.T, rec conversation.Record) string {
	var h conversation.Header
	if err := json.Unmarshal(rec.Body, &h); err != nil || h.Conversation == "" {
		t.Fatalf("record has no conversation: %v %s", err, rec.Body)
	}
	return h.Conversation
}

// TestBrowserTamperedRecordIsRed loads bob's page through a proxy that
// alters alice's signed request on its way: the card is drawn red with the
// reason, and it has no Approve button, while the honest records verify.
func TestBrowserTamperedRecordIsRed(t *testing.T) {
	b := newBrowser(t)
	srv := testutil.StartServer(t, testutil.NewUpstream(t))
	conv, cs, bobFile := goSetup(t, srv)
	ctx := testutil.Ctx(t)
	if _, err := cs[0].Submit(ctx, conv, gate.RequestPayload{Service: "httpbin", Method: "GET", URL: srv.Upstream.URL + "/httpbin/headers",
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	bob := newPage(t, b, "bob", tamperingProxy(t, srv.URL()))
	bob.importIdentity(bobFile)
	bob.open("#/c/" + conv)
	bad := card("unverified")
	bob.waitFor(bad)
	if txt := bob.text(bad); !strings.Contains(txt, "failed verification") || !strings.Contains(txt, "signature") {
		t.Fatalf("the tampered card says %q; want the reason (its signature)", txt)
	}
	if n := bob.count(bad + ` button`); n != 0 {
		t.Fatalf("the tampered card has %d buttons; it must offer no action", n)
	}
	if n := bob.count(`button[data-action=approve]`); n != 0 {
		t.Fatalf("the page offers %d Approve buttons for a request it could not verify", n)
	}
	if n := bob.count(`ol.log li .mark.ok`); n < 2 {
		t.Fatalf("only %d records verified; the honest ones (create, enable) must", n)
	}
	if txt := bob.text(`div.banner.bad`); !strings.Contains(txt, "failed verification") {
		t.Fatalf("the conversation's banner says %q", txt)
	}
	screenshot(t, bob.ctx, "tampered")
}

// TestBrowserShowsHTMLAsText: a chat message made of HTML and script is
// drawn as its text, and nothing in it runs.
func TestBrowserShowsHTMLAsText(t *testing.T) {
	b := newBrowser(t)
	srv := testutil.StartServer(t, testutil.NewUpstream(t))
	conv, cs, bobFile := goSetup(t, srv)
	const evil = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>`
	if _, err := cs[0].Say(testutil.Ctx(t), conv, evil); err != nil {
		t.Fatal(err)
	}
	bob := newPage(t, b, "bob", srv.URL())
	bob.importIdentity(bobFile)
	bob.open("#/c/" + conv)
	if got := bob.text(card("chat.message") + ` p.text`); got != evil {
		t.Fatalf("the message is drawn as %q, want its text %q", got, evil)
	}
	if evalAs[bool](bob, `window.__pwned !== undefined`) {
		t.Fatal("the message's script ran")
	}
	if n := bob.count(`ol.log img, ol.log script, ol.log b`); n != 0 {
		t.Fatalf("the log holds %d elements made from the message", n)
	}
}

// TestBrowserPreviewIsTheCLIs: the request form's live preview is, line
// for line, what 'twokey request --preview' prints for the same input (both
// are the server's preview), and it follows each keystroke.
func TestBrowserPreviewIsTheCLIs(t *testing.T) {
	b := newBrowser(t)
	srv := testutil.StartServer(t, testutil.NewUpstream(t))
	conv, cs, bobFile := goSetup(t, srv)
	ctx := testutil.Ctx(t)
	bob := newPage(t, b, "bob", srv.URL())
	bob.importIdentity(bobFile)
	bob.open("#/c/" + conv)
	bob.choose(`form.request-form select[name=template]`, "hn.get-item")
	bob.fill(`form.request-form input[data-param=id]`, "8863")
	got := waitText(t, bob, `form.request-form pre.preview`, "/item/8863.json")
	want, err := cs[1].Preview(ctx, conv, "hn.get-item", map[string]string{"id": "8863"})
	if err != nil {
		t.Fatal(err)
	}
	if got != strings.Join(want.Lines, "\n") {
		t.Fatalf("the page's preview:\n%s\ntwokey request --preview's:\n%s", got, strings.Join(want.Lines, "\n"))
	}
	bob.choose(`form.request-form select[name=template]`, "dogs.breed")
	bob.fill(`form.request-form input[data-param=breed]`, "hound/../admin")
	waitText(t, bob, `form.request-form pre.preview`, "a path parameter is one path segment")
	bob.fill(`form.request-form input[data-param=breed]`, "hound?all=1")
	esc := waitText(t, bob, `form.request-form pre.preview`, "%3F")
	if strings.Contains(esc, "hound?all") {
		t.Fatalf("a path parameter reached the URL unescaped: %q", esc)
	}
	want, err = cs[1].Preview(ctx, conv, "dogs.breed", map[string]string{"breed": "hound?all=1"})
	if err != nil {
		t.Fatal(err)
	}
	if esc != strings.Join(want.Lines, "\n") {
		t.Fatalf("the page's preview:\n%s\ntwokey request --preview's:\n%s", esc, strings.Join(want.Lines, "\n"))
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

func ioNopCloser(b []byte) nopCloser { return nopCloser{strings.NewReader(string(b))} }

// TestBrowserResumesAfterReconnect: when the network drops every connection,
// the page reconnects by itself and resumes after the last record it
// verified: what was posted meanwhile appears once, in seq order.
func TestBrowserResumesAfterReconnect(t *testing.T) {
	b := newBrowser(t)
	srv := testutil.StartServer(t, testutil.NewUpstream(t))
	conv, cs, bobFile := goSetup(t, srv)
	ctx := testutil.Ctx(t)
	u, _ := url.Parse(srv.URL())
	relay := testutil.NewRelay(t, u.Host)
	bob := newPage(t, b, "bob", relay.URL())
	bob.importIdentity(bobFile)
	bob.open("#/c/" + conv)
	if _, err := cs[0].Say(ctx, conv, "before the drop"); err != nil {
		t.Fatal(err)
	}
	waitText(t, bob, `ol.log`, "before the drop")
	relay.Drop()
	waitText(t, bob, `#status`, "offline")
	for _, msg := range []string{"while away 1", "while away 2"} {
		if _, err := cs[2].Say(ctx, conv, msg); err != nil {
			t.Fatal(err)
		}
	}
	waitText(t, bob, `ol.log`, "while away 2")
	seqs := evalAs[[]int](bob, `[...document.querySelectorAll('ol.log > li')].map(li => Number(li.dataset.seq))`)
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("the log shows seqs %v; want 1..%d, each once, in order", seqs, len(seqs))
		}
	}
	if n := bob.count(`ol.log li.bad`); n != 0 {
		t.Fatalf("%d records failed verification after the reconnect", n)
	}
}

// TestBrowserApprovesAMembershipChange: a change proposed from Go is drawn
// as a diff with who has approved it, and the last signer approves it by
// clicking; the gateway's member.changed follows.
func TestBrowserApprovesAMembershipChange(t *testing.T) {
	b := newBrowser(t)
	srv := testutil.StartServer(t, testutil.NewUpstream(t))
	conv, cs, bobFile := goSetup(t, srv)
	ctx := testutil.Ctx(t)
	dave := testutil.Identity(t, "dave")
	rules := []gate.Rule{{Service: "httpbin", Endpoint: "*", Method: "POST", RequiredApprovals: 3}}
	if _, err := cs[0].Propose(ctx, conv, gate.ProposePayload{Add: []conversation.Member{{Key: dave.KeyID(), Name: "dave"}}, Rules: &rules}); err != nil {
		t.Fatal(err)
	}
	g, err := cs[2].Gate(ctx, conv)
	if err != nil || len(g.Proposals) != 1 {
		t.Fatalf("gate: %v %+v", err, g)
	}
	if _, err := cs[2].ApproveProposal(ctx, conv, g.Proposals[0].ID); err != nil {
		t.Fatal(err)
	}
	bob := newPage(t, b, "bob", srv.URL())
	bob.importIdentity(bobFile)
	bob.open("#/")
	waitText(t, bob, `ul.queue`, "Membership change proposed by signer0")
	bob.open("#/c/" + conv)
	prop := card("member.propose")
	txt := bob.text(prop)
	for _, want := range []string{"+ dave", "+ rule httpbin POST * → 3", "2/3 approvals", "signer0", "signer2"} {
		if !strings.Contains(txt, want) {
			t.Fatalf("the proposal card says %q; want %q in it", txt, want)
		}
	}
	if n := bob.count(prop + ` ins`); n < 2 {
		t.Fatalf("the diff has %d additions drawn as such", n)
	}
	bob.click(prop + ` button[data-action=approve-proposal]`)
	bob.waitFor(card("member.changed"))
	// the record that applies it is named for what it changed, as a diff
	if txt := bob.text(card("member.changed")); !strings.Contains(txt, "members and rules changed") ||
		!strings.Contains(txt, "+ dave") || !strings.Contains(txt, "+ rule httpbin POST * → 3") {
		t.Fatalf("member.changed says %q; want it named and drawn as the change it made", txt)
	}
	if n := bob.count(prop + ` button`); n != 0 {
		t.Fatalf("the applied proposal still offers %d buttons", n)
	}
}

// TestBrowserPhoneDarkAndLabels: at 360 px the page has no sideways
// scroll, dark mode follows the system, every control has a label, and
// Approve works from the keyboard.
func TestBrowserPhoneDarkAndLabels(t *testing.T) {
	b := newBrowser(t)
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up)
	conv, cs, bobFile := goSetup(t, srv)
	ctx := testutil.Ctx(t)
	if _, err := cs[0].Submit(ctx, conv, gate.RequestPayload{Template: "httpbin.headers", Service: "httpbin", Method: "GET", URL: up.URL + "/httpbin/headers",
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	bob := newPage(t, b, "bob", srv.URL())
	bob.do(chromedp.EmulateViewport(360, 780), emulateDark)
	bob.importIdentity(bobFile)
	for _, frag := range []string{"#/", "#/c/" + conv, "#/id", "#/new"} {
		bob.open(frag)
		bob.waitFor(`main#app > *:last-child`)
		if frag == "#/c/"+conv {
			bob.waitFor(`li.request button[data-action=approve]`)
		}
		if w := evalAs[int](bob, `document.documentElement.scrollWidth`); w > 360 {
			t.Errorf("%s is %d px wide at a 360 px viewport: it scrolls sideways", frag, w)
		}
		unlabelled := evalAs[[]string](bob, `[...document.querySelectorAll('input, select, textarea, button')]
			.filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
			.map(el => el.outerHTML.slice(0, 80))`)
		if len(unlabelled) > 0 {
			t.Errorf("%s has controls without a label: %v", frag, unlabelled)
		}
	}
	if bg := evalAs[string](bob, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(15, 18, 22)" {
		t.Errorf("in dark mode the body's background is %s, want the dark rgb(15, 18, 22)", bg)
	}
	bob.open("#/c/" + conv)
	bob.waitFor(`li.request button[data-action=approve]`)
	screenshot(t, bob.ctx, "phone-dark")
	// keyboard only: the Approve button takes focus and Enter presses it
	bob.do(chromedp.Focus(chromedp.CSS(`li.request button[data-action=approve]`)), chromedp.KeyEvent("\r"))
	bob.waitFor(card("gate.approve"))
}

// emulateDark makes the tab's system preference dark.
var emulateDark = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
	return err
})

// TestBrowserRulesAndKeys: the rule editor fills in a template's
// suggestion, says the CLI's shadowing note before anyone signs, and
// proposes the whole new set; a signer revokes a key by clicking.
func TestBrowserRulesAndKeys(t *testing.T) {
	b := newBrowser(t)
	srv := testutil.StartServer(t, testutil.NewUpstream(t))
	ctx := testutil.Ctx(t)
	conv, cs, bobFile := goSetup(t, srv, gate.Rule{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 3})
	if _, err := cs[0].AddSecret(ctx, conv, "httpbin", "", "", 0, []byte("sk_revoke_me_0123456789")); err != nil {
		t.Fatal(err)
	}
	bob := newPage(t, b, "bob", srv.URL())
	bob.importIdentity(bobFile)
	bob.open("#/c/" + conv)
	bob.waitFor(card("gate.secret.stored"))

	bob.choose(`form.rule-add select`, "httpbin.headers")
	if m := evalAs[string](bob, `document.querySelector('form.rule-add input[type=number]').value`); m != "1" {
		t.Fatalf("the template's suggested M is filled in as %q, want 1", m)
	}
	note := waitText(t, bob, `form.rule-add .advice`, "note:")
	want, err := cs[1].CheckRules(ctx, conv, []gate.Rule{{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 3},
		{Service: "httpbin", Endpoint: "/headers", Method: "GET", RequiredApprovals: 1}})
	if err != nil || len(want.Shadows) != 1 {
		t.Fatalf("rules/check: %v %+v", err, want)
	}
	if note != "note: "+want.Shadows[0] {
		t.Fatalf("the editor says %q; the CLI says %q", note, "note: "+want.Shadows[0])
	}
	bob.click(`form.rule-add button[type=submit]`)
	prop := card("member.propose")
	if txt := bob.text(prop); !strings.Contains(txt, "+ rule httpbin GET /headers → 1") || !strings.Contains(txt, "1/3 approvals") {
		t.Fatalf("the proposal card says %q", txt)
	}

	bob.click(`ul.secrets button.danger`)
	bob.waitFor(card("gate.secret.revoked"))
	waitText(t, bob, `div.gate-info`, "No live API key.")
}
