package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"

	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/templates"
)

// commands are the slash commands, in the order /help lists them.
var commands = []struct{ name, args, help string }{
	{"/approve", "ID [reason]", "approve a pending request (an id prefix will do)"},
	{"/reject", "ID [reason]", "reject a pending request"},
	{"/veto", "ID [reason]", "veto an approved request during its cool-off"},
	{"/cancel", "ID", "cancel your own pending request"},
	{"/request", "TEMPLATE k=v ... [-- reason]", "propose a call; the preview shows the URL and M before Enter"},
	{"/gate", "enable M", "turn the gateway on: M of the members must approve each call (admin)"},
	{"/secret", "add SERVICE [TTL] | revoke SERVICE", "store an API key (typed hidden, sealed here) or revoke it"},
	{"/members", "", "members, signers, M and the rules"},
	{"/propose", "add NAME=KEY | remove NAME", "propose a membership change (every signer must approve)"},
	{"/help", "", "keys and commands"},
	{"/quit", "", "leave"},
}

// shortID is the first 8 bytes of an id, as ids are written in short,
// cut back to a character boundary: an id from a record may be any text.
func shortID(id string) string {
	if len(id) <= 8 {
		return id
	}
	n := 8
	for n > 0 && !utf8.RuneStart(id[n]) {
		n--
	}
	return id[:n]
}

// shortKey is a key id in short (conversation.ShortKey, whole characters).
func shortKey(key string) string { return shortID(key) }

// onScreen is the card last drawn as selected in c's log: what a, r and c
// act on. View records it each time it draws the screen, so a key can
// only ever act on a card the user has seen selected, never on one that
// arrived under the cursor after the last frame.
func (m *Model) onScreen(c *convState) *item {
	if m.shown.conv != c.id || m.shown.seq == 0 {
		return nil
	}
	return c.itemAt(m.shown.seq)
}

// votable reports whether it is a card waiting for the user's vote: a
// pending request they may still vote on, or a proposal that needs their
// approval. A record that does not verify, or that the fold refused, never is.
func (m *Model) votable(c *convState, it *item) bool {
	if r := c.requestOf(it); r != nil {
		return r.State == gate.StatePending && m.now().Before(r.ExpiresAt) && r.IsSigner(m.self) && r.voted(m.self) == "" &&
			(r.Submitter != m.self || r.Needs().SubmitterCounts)
	}
	if pr := c.proposalOf(it); pr != nil {
		return c.open(pr) && slices.Contains(pr.Needed, m.self) && !slices.Contains(pr.Approvals, m.self)
	}
	return false
}

// notBelieved refuses to act on a verified record the fold refused,
// saying why.
func (m *Model) notBelieved(it *item) bool {
	if it.refused == "" {
		return false
	}
	m.setStatus(true, "record #%d is not believed (%s): not signing anything for it", it.rec.Seq, it.refused)
	return true
}

// Votes a key asks for: a plain approval, one with a reason (a prompt
// first), a rejection (a prompt first; during the cool-off a veto) and a
// veto.
const (
	voteApprove    = "approve"
	voteApproveWhy = "approve-why"
	voteReject     = "reject"
	voteVeto       = "veto"
)

// voteSelected votes on the request on the selected card (or, for an
// approval, the membership proposal on it): the card as last drawn. A
// rejection or veto asks for its reason first (optional: enter alone
// sends none), as does an approval with A.
func (m *Model) voteSelected(how string) tea.Cmd {
	approve := how == voteApprove || how == voteApproveWhy
	c := m.conv()
	if c == nil {
		m.setStatus(true, "no conversation selected")
		return nil
	}
	it := m.onScreen(c)
	if it == nil {
		m.setStatus(true, "nothing selected on screen: move to a request card with j/k")
		return nil
	}
	if it.rec.Kind == conversation.KindMemberPropose && it.msg != nil {
		if !approve {
			m.setStatus(true, "a proposal is not rejected: it waits until every signer approves or the membership changes")
			return nil
		}
		return m.approveProposal(c, it)
	}
	if it.rec.Kind != conversation.KindGateRequest {
		m.setStatus(true, "#%d is %s, not a request: move to a request card with j/k", it.rec.Seq, kindLabel(it.rec.Kind))
		return nil
	}
	if how == voteApprove {
		return m.vote(c, it, true, "")
	}
	r := m.canVote(c, it, approve)
	if r == nil {
		return nil
	}
	if how == voteVeto && r.State != gate.StateApproved {
		m.setStatus(true, "request %s is %s, not in a cool-off: there is nothing to veto (r rejects it)", shortID(safeLine(r.ID)), describeState(r))
		return nil
	}
	kind := map[bool]string{true: voteApproveWhy, false: voteReject}[approve]
	if r.State == gate.StateApproved {
		kind = voteVeto
	}
	p := c.shown(r.Request)
	return m.ask(&asking{kind: kind, conv: c.id, seq: it.rec.Seq, short: shortID(safeLine(r.ID)), call: p.Method + " " + p.URL})
}

// vote signs an approval or rejection of the request in item it. The
// digest is computed here from the request record on screen, after
// verifying its signature again, so the vote binds to exactly that call.
func (m *Model) vote(c *convState, it *item, approve bool, reason string) tea.Cmd {
	verb := map[bool]string{true: "approve", false: "reject"}[approve]
	if it.msg == nil {
		m.setStatus(true, "record #%d does not verify (%v): not signing anything for it", it.rec.Seq, it.err)
		return nil
	}
	if m.notBelieved(it) {
		return nil
	}
	r := m.canVote(c, it, approve)
	if r == nil {
		return nil
	}
	short := shortID(safeLine(r.ID))
	if err := gate.CheckReason("the reason", reason); err != nil {
		m.setStatus(true, "%s", errText(err))
		return nil
	}
	if !approve && r.State == gate.StateApproved {
		verb = "veto"
	}
	vm, err := conversation.Verify(it.rec.Envelope)
	if err != nil || vm.Kind != conversation.KindGateRequest {
		m.setStatus(true, "record #%d does not verify as a request: not signing", it.rec.Seq)
		return nil
	}
	var p gate.RequestPayload
	if json.Unmarshal(vm.Payload, &p) != nil || p.RequestID != r.ID {
		m.setStatus(true, "record #%d is not request %s: not signing", it.rec.Seq, short)
		return nil
	}
	digest := conversation.Digest(vm.Payload)
	conv, id := c.id, r.ID
	w := voteWords[verb]
	c.sendingReq[id] = w.noun
	m.setStatus(false, "%s %s: %s %s", w.ing, short, p.Method, p.URL)
	done := doneMsg{what: verb + " " + short, done: w.did + " " + short + ": " + p.Method + " " + p.URL, conv: conv, req: id}
	return m.callFor(done, func(ctx context.Context, b Backend) error {
		_, err := b.VoteDigest(ctx, conv, id, digest, approve, reason)
		return err
	})
}

// voteWords are how a vote is named while it is sent and once it is.
var voteWords = map[string]struct{ noun, ing, did string }{
	"approve": {"approval", "approving", "approved"},
	"reject":  {"rejection", "rejecting", "rejected"},
	"veto":    {"veto", "vetoing", "vetoed"},
}

// canVote returns the request of item it when the user may vote on it now
// (approve says which vote), else nil with the status saying why. A
// pending request takes one vote of each signer until it expires (none
// from its submitter when its rule does not count them); an approved one,
// until its cool-off ends, a veto from each signer (an approval then
// changes nothing, and the TUI does not send one).
func (m *Model) canVote(c *convState, it *item, approve bool) *reqView {
	r := c.requestOf(it)
	if r == nil {
		m.setStatus(true, "record #%d is not a request this TUI understands", it.rec.Seq)
		return nil
	}
	short := shortID(safeLine(r.ID))
	if r.State == gate.StateApproved {
		switch {
		case r.sending != "":
			m.setStatus(true, "your %s of request %s is already being sent: it shows in the log when the server has it", r.sending, short)
		case !m.inCoolOff(r):
			m.setStatus(true, "request %s's cool-off ended at %s: it takes no more votes", short, m.at(r.ExecutableAt))
		case approve:
			m.setStatus(true, "request %s is already approved and in its cool-off: another approval changes nothing (v vetoes it)", short)
		case !r.IsSigner(m.self):
			m.setStatus(true, "you are not a signer of request %s", short)
		case r.voted(m.self) == "vetoed":
			m.setStatus(true, "you already vetoed request %s", short)
		default:
			return r
		}
		return nil
	}
	switch {
	case r.State != gate.StatePending:
		m.setStatus(true, "request %s is already %s: it takes no more votes", short, describeState(r))
	case r.sending != "":
		m.setStatus(true, "your %s of request %s is already being sent: it shows in the log when the server has it", r.sending, short)
	case !m.now().Before(r.ExpiresAt):
		m.setStatus(true, "request %s expired at %s: it takes no more votes", short, r.ExpiresAt.In(m.loc).Format("15:04:05"))
	case !r.IsSigner(m.self):
		m.setStatus(true, "you are not a signer of request %s", short)
	case r.voted(m.self) != "":
		m.setStatus(true, "you already %s request %s", r.voted(m.self), short)
	case r.Submitter == m.self && !r.Needs().SubmitterCounts:
		m.setStatus(true, "you submitted request %s, and its rule does not count the submitter: the other signers decide it (c cancels it)", short)
	default:
		return r
	}
	return nil
}

// approveProposal approves a membership proposal, bound to the digest of
// the proposal record on screen.
func (m *Model) approveProposal(c *convState, it *item) tea.Cmd {
	if m.notBelieved(it) {
		return nil
	}
	pr := c.proposalOf(it)
	if pr == nil {
		m.setStatus(true, "record #%d is not a proposal this TUI understands", it.rec.Seq)
		return nil
	}
	short := shortID(safeLine(pr.ID))
	switch {
	case pr.done:
		m.setStatus(true, "proposal %s is already applied", short)
		return nil
	case !c.open(pr):
		m.setStatus(true, "proposal %s is void: another membership change was applied first", short)
		return nil
	case c.sendingProp[pr.ID]:
		m.setStatus(true, "your approval of proposal %s is already being sent: it shows in the log when the server has it", short)
		return nil
	case !slices.Contains(pr.Needed, m.self):
		m.setStatus(true, "proposal %s does not need your approval", short)
		return nil
	case slices.Contains(pr.Approvals, m.self):
		m.setStatus(true, "you already approved proposal %s", short)
		return nil
	}
	vm, err := conversation.Verify(it.rec.Envelope)
	if err != nil || vm.Kind != conversation.KindMemberPropose {
		m.setStatus(true, "record #%d does not verify as a proposal: not signing", it.rec.Seq)
		return nil
	}
	digest, conv, id := vm.PayloadDigest(), c.id, pr.ID
	c.sendingProp[id] = true
	m.setStatus(false, "approving proposal %s", short)
	done := doneMsg{what: "approve proposal " + short, done: "approved proposal " + short, conv: conv, prop: id}
	return m.callFor(done, func(ctx context.Context, b Backend) error {
		h, err := b.Header(ctx, conv)
		if err != nil {
			return err
		}
		_, err = b.Post(ctx, conv, conversation.KindMemberApprove, gate.MemberApprovePayload{Header: h, ProposalID: id, ProposalDigest: digest})
		return err
	})
}

func (m *Model) cancelSelected() tea.Cmd {
	c := m.conv()
	if c == nil {
		return nil
	}
	it := m.onScreen(c)
	if it == nil || it.rec.Kind != conversation.KindGateRequest {
		m.setStatus(true, "select one of your own request cards to cancel it")
		return nil
	}
	if m.notBelieved(it) {
		return nil
	}
	if r := c.requestOf(it); r != nil {
		return m.cancel(c, r)
	}
	m.setStatus(true, "record #%d is not a request this TUI understands", it.rec.Seq)
	return nil
}

func (m *Model) cancel(c *convState, r *reqView) tea.Cmd {
	if r == nil {
		m.setStatus(true, "no such request")
		return nil
	}
	short := shortID(safeLine(r.ID))
	switch {
	case r.Submitter != m.self:
		m.setStatus(true, "only its submitter may cancel request %s", short)
		return nil
	case !r.Open():
		m.setStatus(true, "request %s is already %s", short, describeState(r))
		return nil
	}
	conv, id := c.id, r.ID
	return m.call("cancel "+short, "cancelled "+short, func(ctx context.Context, b Backend) error {
		_, err := b.Cancel(ctx, conv, id)
		return err
	})
}

// findRequest resolves a request id or unique prefix in c.
func (c *convState) findRequest(ref string) (*reqView, *item, error) {
	if ref == "" {
		return nil, nil, fmt.Errorf("give a request id (tab completes them)")
	}
	var hits []*reqView
	for id := range c.fold.Requests {
		shown := safeLine(id) // as the user reads it
		if shown == ref {
			hits = []*reqView{c.request(id)}
			break
		}
		if strings.HasPrefix(shown, ref) {
			hits = append(hits, c.request(id))
		}
	}
	switch len(hits) {
	case 0:
		return nil, nil, fmt.Errorf("no request id starting with %q in %s", ref, c.name)
	case 1:
	default:
		return nil, nil, fmt.Errorf("%q is a prefix of %d request ids; give more of it", ref, len(hits))
	}
	r := hits[0]
	it := c.itemAt(r.SubmittedSeq)
	if it == nil {
		return nil, nil, fmt.Errorf("request %s's record is missing", shortID(safeLine(r.ID)))
	}
	return r, it, nil
}

// submitLine runs what was typed on the input line.
func (m *Model) submitLine(line string) tea.Cmd {
	c := m.conv()
	if !strings.HasPrefix(line, "/") {
		if c == nil {
			m.setStatus(true, "no conversation to send to")
			return nil
		}
		conv := c.id
		return m.call("send the message", "", func(ctx context.Context, b Backend) error {
			_, err := b.Say(ctx, conv, line)
			return err
		})
	}
	fields := strings.Fields(line)
	name, args := fields[0], fields[1:]
	switch name {
	case "/help":
		m.overlay = "help"
		return m.setFocus(paneLog)
	case "/quit", "/q":
		m.quitting = true
		return tea.Quit
	}
	if c == nil {
		m.setStatus(true, "no conversation selected")
		return nil
	}
	switch name {
	case "/approve", "/reject", "/veto":
		if len(args) == 0 {
			m.setStatus(true, "usage: %s ID [reason]", name)
			return nil
		}
		r, it, err := c.findRequest(args[0])
		if err != nil {
			m.setStatus(true, "%v", err)
			return nil
		}
		// A rejection during the cool-off is a veto, and a veto is a
		// rejection there only: each command says which it means.
		switch {
		case name == "/veto" && r.State != gate.StateApproved:
			m.setStatus(true, "request %s is %s, not in a cool-off: there is nothing to veto (/reject rejects it)", shortID(safeLine(r.ID)), describeState(r))
			return nil
		case name == "/reject" && r.State == gate.StateApproved:
			m.setStatus(true, "request %s is approved and in its cool-off: /veto %s vetoes it", shortID(safeLine(r.ID)), shortID(safeLine(r.ID)))
			return nil
		}
		return m.vote(c, it, name == "/approve", strings.Join(args[1:], " "))
	case "/cancel":
		if len(args) != 1 {
			m.setStatus(true, "usage: /cancel ID")
			return nil
		}
		r, _, err := c.findRequest(args[0])
		if err != nil {
			m.setStatus(true, "%v", err)
			return nil
		}
		return m.cancel(c, r)
	case "/request":
		return m.request(c, args)
	case "/gate":
		n, err := 0, error(nil)
		if len(args) == 2 && args[0] == "enable" {
			n, err = strconv.Atoi(args[1])
		}
		if len(args) != 2 || args[0] != "enable" || err != nil || n < 1 {
			m.setStatus(true, "usage: /gate enable M (M of the members must approve each call)")
			return nil
		}
		conv := c.id
		return m.call("enable the gateway", fmt.Sprintf("asked to enable the gateway with M=%d", n), func(ctx context.Context, b Backend) error {
			_, err := b.EnableGate(ctx, conv, n, nil)
			return err
		})
	case "/secret":
		return m.secretCmd(c, args)
	case "/members":
		m.overlay = "members"
		return m.setFocus(paneLog)
	case "/propose":
		return m.propose(c, args)
	}
	m.setStatus(true, "unknown command %s: /help lists them", name)
	return nil
}

// template finds a template and its service in the catalog.
func (m *Model) template(name string) (*templates.Template, *catalog.Service) {
	if m.cat == nil {
		return nil, nil
	}
	for _, t := range m.cat.Templates {
		if t.Name == name {
			return t, findService(m.cat, t.Service)
		}
	}
	return nil, nil
}

// resolveRequest turns /request arguments into the payload to sign.
func (m *Model) resolveRequest(args []string) (*templates.Template, *catalog.Service, gate.RequestPayload, error) {
	var p gate.RequestPayload
	if len(args) == 0 {
		return nil, nil, p, fmt.Errorf("usage: /request TEMPLATE k=v ... (tab completes template names)")
	}
	t, svc := m.template(args[0])
	if t == nil || svc == nil {
		return nil, nil, p, fmt.Errorf("no template %q (tab completes template names)", args[0])
	}
	kv, err := t.ParseArgs(args[1:]) // a mistake shows t's own parameters
	if err != nil {
		return t, svc, p, err
	}
	res, err := t.Resolve(svc.BaseURL, kv)
	if err != nil {
		return t, svc, p, err
	}
	p = gate.RequestPayload{Template: t.Name, Service: t.Service, Method: res.Method, URL: res.URL,
		Headers: res.Headers, Body: res.Body, Params: kv}
	if len(p.Params) == 0 {
		p.Params = nil
	}
	return t, svc, p, nil
}

// splitReason takes a request's reason off its arguments: the words after
// a lone "--" ("/request T k=v -- the customer asked").
func splitReason(args []string) ([]string, string) {
	if i := slices.Index(args, "--"); i >= 0 {
		return args[:i], strings.Join(args[i+1:], " ")
	}
	return args, ""
}

// request submits the call /request describes. When its rule requires a
// reason and none follows "--", the reason prompt asks for one first.
func (m *Model) request(c *convState, args []string) tea.Cmd {
	args, reason := splitReason(args)
	t, _, p, err := m.resolveRequest(args)
	if err != nil {
		m.setStatus(true, "%s", errText(err))
		return nil
	}
	if err := gate.CheckReason("the reason", reason); err != nil {
		m.setStatus(true, "%s", errText(err))
		return nil
	}
	if pol, _, ok := policyFor(c, &p); ok && pol.ReasonRequired && reason == "" {
		return m.ask(&asking{kind: "request", conv: c.id, call: safeLine(p.Method + " " + p.URL), req: p, template: t.Name, required: true})
	}
	return m.submit(c, t.Name, p, reason)
}

// submit signs and posts a request, expiring the TUI's TTL from now.
func (m *Model) submit(c *convState, template string, p gate.RequestPayload, reason string) tea.Cmd {
	p.Reason = reason
	p.ExpiresAt = conversation.FormatTime(m.now().Add(m.ttl))
	done := "submitted " + template + " (it counts as your approval)"
	if pol, _, ok := policyFor(c, &p); ok && !pol.SubmitterCounts {
		done = "submitted " + template + " (its rule does not count your approval: the other signers decide)"
	}
	conv := c.id
	return m.call("submit "+template, done, func(ctx context.Context, b Backend) error {
		_, err := b.Submit(ctx, conv, p)
		return err
	})
}

// keyInClear is what /secret says when a word after SERVICE is not a TTL:
// maybe the key itself, typed where everyone can read it. The word is
// never repeated.
const keyInClear = "the word after the service is not a TTL such as 720h (not repeated here). " +
	"A key is never typed on the command line: /secret add SERVICE opens a hidden field for it. " +
	"If that word was a key, it showed in clear here: if anyone could have seen it, revoke it at its provider and use a new one"

func (m *Model) secretCmd(c *convState, args []string) tea.Cmd {
	if len(args) == 2 && args[0] == "revoke" {
		conv, svc := c.id, args[1]
		return m.call("revoke the key of "+svc, "asked to revoke the key of "+svc, func(ctx context.Context, b Backend) error {
			_, err := b.RevokeSecret(ctx, conv, "", svc)
			return err
		})
	}
	if len(args) < 2 || args[0] != "add" {
		m.setStatus(true, "usage: /secret add SERVICE [TTL] | /secret revoke SERVICE")
		return nil
	}
	var ttl time.Duration
	if len(args) > 3 {
		m.setStatus(true, "usage: /secret add SERVICE [TTL]; %s", keyInClear)
		return nil
	}
	if len(args) == 3 {
		d, err := time.ParseDuration(args[2])
		if err != nil || d <= 0 {
			m.setStatus(true, "%s", keyInClear)
			return nil
		}
		ttl = d
	}
	if m.cat != nil && findService(m.cat, args[1]) == nil {
		// Not echoed either: a key typed in the service's place would be.
		m.setStatus(true, "no service by that name in the catalog: /secret add SERVICE, tab completes service names")
		return nil
	}
	m.secretFor, m.secretTTL = args[1], ttl
	m.secret.Reset()
	m.secret.prompt = "key for " + args[1] + ": "
	m.setStatus(false, "type the key for %s: hidden, and sealed here to the gateway · enter stores · esc cancels", args[1])
	return m.setFocus(paneInput)
}

// storeSecret seals and posts the hidden key. Line breaks around it (a
// paste that ended with a newline) are not part of a key.
func (m *Model) storeSecret() tea.Cmd {
	c := m.conv()
	value := []byte(strings.Trim(m.secret.Value(), "\r\n"))
	svc, ttl := m.secretFor, m.secretTTL
	m.secret.Reset()
	m.secretFor = ""
	m.setFocus(paneLog)
	if c == nil || len(value) == 0 {
		m.setStatus(true, "no key typed: nothing stored")
		return nil
	}
	conv := c.id
	return m.call("store the key for "+svc, "stored a key for "+svc+" (sealed here; the value is never shown)", func(ctx context.Context, b Backend) error {
		_, err := b.AddSecret(ctx, conv, svc, "", "", ttl, value)
		clear(value)
		return err
	})
}

func (m *Model) propose(c *convState, args []string) tea.Cmd {
	usage := "usage: /propose add NAME=KEY | /propose remove NAME"
	if len(args) != 2 {
		m.setStatus(true, "%s", usage)
		return nil
	}
	var p gate.ProposePayload
	switch args[0] {
	case "add":
		name, key, ok := strings.Cut(args[1], "=")
		if !ok || name == "" {
			m.setStatus(true, "%s", usage)
			return nil
		}
		if _, err := conversation.ParseKeyID(key); err != nil {
			m.setStatus(true, "KEY: %s", errText(err))
			return nil
		}
		p.Add = []conversation.Member{{Key: key, Name: name}}
	case "remove":
		key := c.keyOf(args[1])
		if key == "" {
			m.setStatus(true, "no member %q in %s (/members lists them)", args[1], c.name)
			return nil
		}
		p.Remove = []string{key}
	default:
		m.setStatus(true, "%s", usage)
		return nil
	}
	conv := c.id
	return m.call("propose", "proposed: "+args[0]+" "+args[1]+" (it counts as your approval)", func(ctx context.Context, b Backend) error {
		_, err := b.Propose(ctx, conv, p)
		return err
	})
}

// keyOf finds a member by name, key id or key prefix.
func (c *convState) keyOf(ref string) string {
	for _, mb := range c.fold.Members {
		if safeLine(mb.Name) == ref || mb.Key == ref {
			return mb.Key
		}
	}
	for _, mb := range c.fold.Members {
		if len(ref) >= 6 && strings.HasPrefix(mb.Key, ref) {
			return mb.Key
		}
	}
	return ""
}

// completions lists what the current word of the input may become.
func (m *Model) completions(words []string) []string {
	c := m.conv()
	var out []string
	switch len(words) {
	case 0, 1:
		for _, cmd := range commands {
			out = append(out, cmd.name)
		}
		return out
	}
	arg := len(words) - 1 // the index of the word being completed
	switch words[0] {
	case "/approve", "/reject", "/veto", "/cancel":
		if arg != 1 || c == nil {
			return nil
		}
		for id, r := range c.fold.Requests {
			var ok bool
			switch words[0] {
			case "/cancel":
				ok = r.Open() && r.Submitter == m.self
			case "/veto":
				ok = r.State == gate.StateApproved
			default:
				ok = r.State == gate.StatePending
			}
			if ok {
				out = append(out, shortID(safeLine(id)))
			}
		}
	case "/request":
		if m.cat == nil {
			return nil
		}
		if arg == 1 {
			for _, t := range m.cat.Templates {
				out = append(out, t.Name)
			}
		} else if t, _ := m.template(words[1]); t != nil {
			given := map[string]bool{}
			for _, w := range words[2:arg] {
				k, _, _ := strings.Cut(w, "=")
				given[k] = true
			}
			for _, p := range t.Params {
				if !given[p.Name] {
					out = append(out, p.Name+"=")
				}
			}
		}
	case "/gate":
		if arg == 1 {
			out = []string{"enable"}
		}
	case "/secret":
		if arg == 1 {
			out = []string{"add", "revoke"}
		} else if arg == 2 && m.cat != nil {
			for _, s := range m.cat.Services {
				out = append(out, s.Name)
			}
		}
	case "/propose":
		if arg == 1 {
			out = []string{"add", "remove"}
		} else if arg == 2 && words[1] == "remove" && c != nil {
			for _, mb := range c.fold.Members {
				if mb.Name != "" {
					out = append(out, safeLine(mb.Name))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// complete completes the word under the cursor (the last word) on Tab.
func (m *Model) complete() {
	v := m.input.Value()
	words := strings.Fields(v)
	if strings.HasSuffix(v, " ") || len(words) == 0 {
		words = append(words, "")
	}
	cur := words[len(words)-1]
	var hits []string
	for _, cand := range m.completions(words) {
		if strings.HasPrefix(cand, cur) {
			hits = append(hits, cand)
		}
	}
	if len(hits) == 0 {
		m.setStatus(true, "nothing to complete")
		return
	}
	repl := hits[0]
	if len(hits) > 1 {
		repl = commonPrefix(hits)
		m.setStatus(false, "%s", strings.Join(hits, "  "))
	} else if !strings.HasSuffix(repl, "=") {
		repl += " "
		m.status = ""
	}
	m.input.SetValue(v[:len(v)-len(cur)] + repl)
}

func commonPrefix(s []string) string {
	p := s[0]
	for _, x := range s[1:] {
		for !strings.HasPrefix(x, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

// nOf is n and the noun, in the plural unless n is 1: "1 line",
// "2 lines".
func nOf(n int, word string) string { return fmt.Sprintf("%d %s", n, noun(n, word)) }

// noun is word, in the plural unless n is 1.
func noun(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
