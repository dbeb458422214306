package tui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"sort"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// Colours: the basic ANSI ones, which every terminal has.
var (
	colRed    = lipgloss.Color("1")
	colGreen  = lipgloss.Color("2")
	colYellow = lipgloss.Color("3")
	colBlue   = lipgloss.Color("4")
	colPurple = lipgloss.Color("5")
	colCyan   = lipgloss.Color("6")
	colGrey   = lipgloss.Color("8")

	styleBold  = lipgloss.NewStyle().Bold(true)
	styleFaint = lipgloss.NewStyle().Foreground(colGrey)
	styleRed   = lipgloss.NewStyle().Foreground(colRed)
	styleErr   = lipgloss.NewStyle().Foreground(colRed).Bold(true)
	styleGreen = lipgloss.NewStyle().Foreground(colGreen)
)

// Folding: a response body shows this many lines until expanded; a
// request's body this many.
const (
	foldResponse = 10
	foldRequest  = 8
)

func (c *convState) name1(key, gateway string) string {
	if key == gateway && gateway != "" {
		return "gateway"
	}
	if n := c.names[key]; n != "" {
		return n
	}
	return safeLine(shortKey(key))
}

func (c *convState) nameList(keys []string, gateway string) string {
	if len(keys) == 0 {
		return "nobody"
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = c.name1(k, gateway)
	}
	return strings.Join(out, ", ")
}

// kindLabel names a kind for a sentence.
func kindLabel(kind string) string {
	switch kind {
	case conversation.KindChatMessage:
		return "a chat message"
	case conversation.KindGateApprove:
		return "an approval"
	case conversation.KindGateReject:
		return "a rejection"
	case conversation.KindGateExecuted:
		return "an execution"
	case conversation.KindGateApproved:
		return "the start of a cool-off"
	case conversation.KindGateResponse:
		return "a response"
	}
	return kind
}

var reasons = map[string]string{
	gate.ReasonNoSecret:          "no live API key for the service: nothing was sent",
	gate.ReasonInterrupted:       "the server stopped during the call; it is never sent again",
	gate.ReasonTimeout:           "the upstream did not answer in time",
	gate.ReasonConnection:        "the upstream refused the connection",
	gate.ReasonUpstreamError:     "the call to the upstream failed",
	gate.ReasonMembershipChanged: "the membership changed while it was pending",
	gate.ReasonExpired:           "not enough approvals before it expired",
	gate.ReasonRejected:          "so many signers rejected it that M is out of reach",
	gate.ReasonCancelled:         "its submitter cancelled it",
	gate.ReasonVetoed:            "vetoed during its cool-off: it was never sent",
	gate.ReasonStorage:           "the server could not store the outcome",
}

// explain says why a request closed, in words, with the protocol's reason.
func explain(reason string) string {
	if s, ok := reasons[reason]; ok {
		return s + " (" + reason + ")"
	}
	return reason
}

func describeState(r *reqView) string {
	switch r.State {
	case gate.StateExecuted:
		return fmt.Sprintf("executed (status %d)", r.status())
	case gate.StateFailed, gate.StateCancelled:
		return fmt.Sprintf("%s (%s)", r.State, r.reason())
	case gate.StateApproved:
		return "approved (in its cool-off)"
	case gate.StateRejected:
		if r.reason() == gate.ReasonVetoed {
			return "vetoed"
		}
	}
	return r.State
}

func (m *Model) clock(received string) string {
	t, err := time.Parse(time.RFC3339Nano, received)
	if err != nil {
		return received
	}
	return t.In(m.loc).Format("15:04:05")
}

func timeLeft(exp, now time.Time) string {
	d := exp.Sub(now)
	if d <= 0 {
		return "expired"
	}
	return "expires in " + d.Truncate(time.Second).String()
}

// pretty indents a JSON body (anything else is left as it is).
func pretty(body string) []string {
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(body), "", "  ") == nil {
		body = buf.String()
	}
	return strings.Split(strings.TrimRight(body, "\n"), "\n")
}

// fold keeps the first n lines and says how many more there are.
func fold(lines []string, n int, expanded bool, hint string) []string {
	if expanded || len(lines) <= n {
		return lines
	}
	more := len(lines) - n
	return append(lines[:n:n], styleFaint.Render(fmt.Sprintf("… %d more %s%s", more, noun(more, "line"), hint)))
}

func sortedParams(p map[string]string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + safeLine(p[k])
	}
	return strings.Join(parts, " ")
}

// cardSpec is what a record looks like: a boxed card, or one plain line.
type cardSpec struct {
	boxed bool
	tone  color.Color
	title string // left of the first line
	by    string // right of the first line
	lines []string
}

// spec describes item i of c. A verified record the fold refuses is drawn
// as its kind is, with one red line that says why it is not believed.
func (m *Model) spec(c *convState, it *item) cardSpec {
	s := m.cardOf(c, it)
	if it.msg != nil && it.refused != "" {
		s.lines = append(s.lines, styleRed.Render(safeLine("not believed: "+it.refused)))
	}
	return s
}

func (m *Model) cardOf(c *convState, it *item) cardSpec {
	head := fmt.Sprintf("#%d", it.rec.Seq)
	when := m.clock(it.rec.ReceivedAt)
	if it.msg == nil {
		return cardSpec{boxed: true, tone: colRed, title: styleErr.Render(head + " ✗ DOES NOT VERIFY"), by: when, lines: []string{
			styleRed.Render(safeLine(fmt.Sprintf("claims to be %s by %s (%s)", it.rec.Kind, c.name1(it.rec.Author, m.gateway), shortKey(it.rec.Author)))),
			styleErr.Render(safeLine(it.err.Error())),
			styleRed.Render("not trusted: it changes nothing here and cannot be approved"),
		}}
	}
	who := c.name1(it.msg.Author, m.gateway)
	by := who + " · " + when
	payload := it.disp
	switch it.msg.Kind {
	case conversation.KindConversationCreate:
		var p conversation.CreatePayload
		_ = json.Unmarshal(payload, &p)
		keys := make([]string, len(p.Members))
		for i, mb := range p.Members {
			keys[i] = mb.Key
		}
		return cardSpec{title: fmt.Sprintf("%s %s %s created %q with %s", head, when, who, p.Name, c.nameList(keys, m.gateway))}
	case conversation.KindChatMessage:
		var p conversation.ChatPayload
		_ = json.Unmarshal(payload, &p)
		return cardSpec{title: fmt.Sprintf("%s %s %s: %s", head, when, styleBold.Render(who), p.Text)}
	case conversation.KindMemberAdd, conversation.KindMemberRemove:
		var p conversation.MemberPayload
		_ = json.Unmarshal(payload, &p)
		verb := map[bool]string{true: "added", false: "removed"}[it.msg.Kind == conversation.KindMemberAdd]
		return cardSpec{title: fmt.Sprintf("%s %s %s %s member %s (%s)", head, when, who, verb, c.name1(p.Key, m.gateway), shortKey(p.Key))}
	case conversation.KindGateEnable:
		var p gate.EnablePayload
		_ = json.Unmarshal(payload, &p)
		lines := []string{fmt.Sprintf("asks to turn the gateway on: %s per call", nOf(p.RequiredApprovals, "approval"))}
		for _, r := range p.Rules {
			lines = append(lines, ruleText(r))
		}
		lines = append(lines, m.groupLines(c, p.Groups, "")...)
		return cardSpec{boxed: true, tone: colBlue, title: head + " GATE ENABLE", by: by, lines: lines}
	case conversation.KindGateEnabled:
		var p gate.EnabledPayload
		_ = json.Unmarshal(payload, &p)
		lines := []string{fmt.Sprintf("%d of %d signers must approve each call: %s", p.RequiredApprovals, len(p.Signers), c.nameList(p.Signers, m.gateway))}
		for _, r := range p.Rules {
			lines = append(lines, ruleText(r))
		}
		lines = append(lines, m.groupLines(c, p.Groups, "")...)
		return cardSpec{boxed: true, tone: colBlue, title: styleBold.Render(head + " GATE ENABLED"), by: by, lines: lines}
	case conversation.KindGateSecretStored:
		var p gate.SecretStoredPayload
		_ = json.Unmarshal(payload, &p)
		exp := "no expiry"
		if p.ExpiresAt != "" {
			exp = "expires " + m.clockDate(string(p.ExpiresAt))
		}
		return cardSpec{boxed: true, tone: colPurple, title: head + " SECRET STORED", by: by, lines: []string{
			fmt.Sprintf("a key for %s, sent as %s: %s", p.Service, p.HeaderName, p.HeaderTemplate),
			fmt.Sprintf("provisioned by %s · %s · the value is never shown", c.name1(p.ProvisionedBy, m.gateway), exp),
		}}
	case conversation.KindGateSecretRevoke:
		var p gate.RevokePayload
		_ = json.Unmarshal(payload, &p)
		what := "the key of " + p.Service
		if p.SecretID != "" {
			what = "secret " + shortID(p.SecretID)
		}
		return cardSpec{boxed: true, tone: colPurple, title: head + " SECRET REVOKE", by: by, lines: []string{"asks to revoke " + what}}
	case conversation.KindGateSecretRevoked:
		var p gate.RevokedPayload
		_ = json.Unmarshal(payload, &p)
		return cardSpec{boxed: true, tone: colPurple, title: head + " SECRET REVOKED", by: by, lines: []string{
			fmt.Sprintf("%d secret(s) revoked at the request of %s", len(p.SecretIDs), c.name1(p.By, m.gateway))}}
	case conversation.KindGateRequest:
		return m.requestSpec(c, it, head, by)
	case conversation.KindGateApprove, conversation.KindGateReject:
		var p gate.VotePayload
		_ = json.Unmarshal(payload, &p)
		if it.msg.Kind == conversation.KindGateApprove {
			line := "approves"
			if it.note != "" {
				line = "approvals now " + it.note
			}
			lines := []string{line}
			if p.Reason != "" {
				lines = append(lines, "reason: "+safeLine(p.Reason))
			}
			return cardSpec{boxed: true, tone: colGreen, title: head + " APPROVE " + shortID(p.RequestID), by: by, lines: lines}
		}
		reason := "no reason given"
		if p.Reason != "" {
			reason = "reason: " + safeLine(p.Reason)
		}
		if it.veto {
			return cardSpec{boxed: true, tone: colRed, title: styleBold.Render(head + " VETO " + shortID(p.RequestID)), by: by,
				lines: []string{"vetoes it during its cool-off: " + it.note, reason}}
		}
		return cardSpec{boxed: true, tone: colRed, title: head + " REJECT " + shortID(p.RequestID), by: by, lines: []string{reason}}
	case conversation.KindGateCancel:
		var p gate.CancelPayload
		_ = json.Unmarshal(payload, &p)
		return cardSpec{boxed: true, tone: colGrey, title: head + " CANCEL " + shortID(p.RequestID), by: by, lines: []string{"the submitter withdraws the request"}}
	case conversation.KindGateExecuted:
		var p gate.ExecutedPayload
		_ = json.Unmarshal(payload, &p)
		lines := []string{styleGreen.Render(fmt.Sprintf("status %d in %d ms", p.Status, p.DurationMS)) + " · approved by " + c.nameList(p.Approvers, m.gateway)}
		if a := m.assignmentText(c, p.Approvers, p.Assignment); a != "" {
			lines = append(lines, "slots: "+a)
		}
		if r := c.request(it.reqID); r != nil {
			rp := c.shown(r.Request)
			lines = append(lines, rp.Method+" "+rp.URL)
		}
		return cardSpec{boxed: true, tone: colGreen, title: styleBold.Render(head + " EXECUTED " + shortID(p.RequestID)), by: by, lines: lines}
	case conversation.KindGateResponse:
		var p gate.ResponsePayload
		_ = json.Unmarshal(payload, &p)
		// A body that is not UTF-8 is base64 in the record (PROTOCOL 5):
		// it is described, never drawn.
		raw, rawErr := p.BodyBytes()
		n := len(p.Body)
		if rawErr == nil {
			n = len(raw)
		}
		meta := fmt.Sprintf("%d %s · %d bytes", p.Status, p.ContentType, n)
		if p.Redactions > 0 {
			meta += fmt.Sprintf(" · %d redacted", p.Redactions)
		}
		if p.Truncated {
			meta += " · truncated at 64 KiB"
		}
		lines := []string{meta}
		switch {
		case p.Binary() && rawErr == nil:
			lines = append(lines, styleFaint.Render(fmt.Sprintf("binary body, %d bytes (base64 in the record), not shown", n)))
		case rawErr != nil:
			lines = append(lines, styleFaint.Render("body not readable: "+safeLine(rawErr.Error())))
		case p.Body != "":
			hint := " · enter expands"
			body := pretty(p.Body)
			lines = append(lines, fold(body, foldResponse, c.expanded[it.rec.Seq], hint)...)
			if c.expanded[it.rec.Seq] && len(body) > foldResponse {
				lines = append(lines, styleFaint.Render("enter folds"))
			}
		}
		return cardSpec{boxed: true, tone: colCyan, title: head + " RESPONSE " + shortID(p.RequestID), by: by, lines: lines}
	case conversation.KindGateFailed, conversation.KindGateExpired, conversation.KindGateRejected, conversation.KindGateCancelled:
		var p gate.ClosedPayload
		_ = json.Unmarshal(payload, &p)
		word := strings.ToUpper(strings.TrimPrefix(it.msg.Kind, "gate."))
		tone := colGrey
		if it.msg.Kind == conversation.KindGateFailed || it.msg.Kind == conversation.KindGateRejected {
			tone = colRed
		}
		title := head + " " + word + " " + shortID(p.RequestID)
		lines := []string{explain(safeLine(p.Reason))}
		if it.msg.Kind == conversation.KindGateRejected && p.Reason == gate.ReasonVetoed {
			title = styleBold.Render(head + " VETOED " + shortID(p.RequestID))
			if r := c.request(it.reqID); r != nil && len(r.Vetoes) > 0 {
				lines = append(lines, "vetoed by "+c.nameList(r.Vetoes, m.gateway))
			}
		}
		return cardSpec{boxed: true, tone: tone, title: title, by: by, lines: lines}
	case conversation.KindGateApproved:
		return m.approvedSpec(c, it, head, by)
	case conversation.KindMemberPropose:
		return m.proposalSpec(c, it, head, by)
	case conversation.KindMemberApprove:
		var p gate.MemberApprovePayload
		_ = json.Unmarshal(payload, &p)
		line := "approves the proposal"
		if it.note != "" {
			line = "approvals now " + it.note
		}
		return cardSpec{boxed: true, tone: colGreen, title: head + " APPROVE PROPOSAL " + shortID(p.ProposalID), by: by, lines: []string{line}}
	case conversation.KindMemberChanged:
		var p gate.ChangedPayload
		_ = json.Unmarshal(payload, &p)
		label := "MEMBERS CHANGED"
		if it.diff != nil {
			label = it.diff.Label()
		}
		lines := m.diffLines(c, it.diff)
		lines = append(lines, fmt.Sprintf("now signers %s · %d of %d must approve", c.nameList(p.Signers, m.gateway), p.RequiredApprovals, len(p.Signers)),
			"pending requests are cancelled")
		return cardSpec{boxed: true, tone: colBlue, title: styleBold.Render(head + " " + label), by: by, lines: lines}
	}
	return cardSpec{title: fmt.Sprintf("%s %s %s %s", head, when, who, it.msg.Kind)}
}

func (m *Model) clockDate(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.In(m.loc).Format("2006-01-02 15:04")
}

// requestSpec is the request card: the call exactly as signed, the
// approvals so far against M, the countdown and your own vote. A request
// record the fold refused shows the call it signs, and nothing of a
// request it is not.
func (m *Model) requestSpec(c *convState, it *item, head, by string) cardSpec {
	var p gate.RequestPayload
	r := c.requestOf(it)
	if json.Unmarshal(it.disp, &p) != nil || (r == nil && it.refused == "") {
		return cardSpec{boxed: true, tone: colRed, title: head + " REQUEST", by: by, lines: []string{styleRed.Render("a request this TUI cannot read")}}
	}
	title := head + " REQUEST " + shortID(p.RequestID)
	if p.Template != "" {
		title += " · " + p.Template
	}
	lines := []string{styleBold.Render(p.Method + " " + p.URL)}
	svc := "service " + p.Service
	if len(p.Params) > 0 {
		svc += " · params " + sortedParams(p.Params)
	}
	lines = append(lines, svc)
	if p.Reason != "" {
		lines = append(lines, "reason: "+safeLine(p.Reason))
	}
	if len(p.Headers) > 0 {
		keys := make([]string, 0, len(p.Headers))
		for k := range p.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			lines = append(lines, "header "+k+": "+p.Headers[k])
		}
	}
	if len(p.Body) > 0 {
		lines = append(lines, "body")
		for _, l := range fold(pretty(string(p.Body)), foldRequest, c.expanded[it.rec.Seq], " · enter expands") {
			lines = append(lines, "  "+l)
		}
	}
	if p.Program != "" {
		lines = append(lines, "proposed by the program "+p.Program+" (its own approval never counts)")
	}
	if r == nil {
		return cardSpec{boxed: true, tone: colRed, title: styleBold.Render(title), by: by, lines: lines}
	}
	pol := r.Needs()
	if !plainPolicy(pol) {
		lines = append(lines, safeLine("policy: "+pol.Describe()))
	}
	votes := fmt.Sprintf("approvals %d/%d: %s", len(r.Approvals), r.Required, c.nameList(r.Approvals, m.gateway))
	if len(r.Rejections) > 0 {
		votes += " · rejected by " + c.nameList(r.Rejections, m.gateway)
	}
	if len(r.Vetoes) > 0 {
		votes += " · vetoed by " + c.nameList(r.Vetoes, m.gateway)
	}
	lines = append(lines, votes)
	lines = append(lines, m.voteReasons(c, r)...)
	if a := m.assignmentText(c, r.Approvers, r.Assignment); a != "" {
		lines = append(lines, "slots: "+a)
	}
	tone := colYellow
	var state string
	switch r.State {
	case gate.StatePending:
		if m.now().Before(r.ExpiresAt) {
			state = styleBold.Render("PENDING") + " · " + timeLeft(r.ExpiresAt, m.now())
		} else {
			state = "pending, past its expiry (the gateway will close it)"
			tone = colGrey
		}
		if r.Rule != nil {
			state += safeLine(fmt.Sprintf(" · rule %s %s %s", r.Rule.Service, r.Rule.Method, r.Rule.Endpoint))
		}
	case gate.StateApproved:
		tone, state = colPurple, styleBold.Render(m.coolOff(c, r))
	case gate.StateExecuting:
		tone, state = colCyan, "EXECUTING · the gateway is making the call"
	case gate.StateExecuted:
		tone, state = colGreen, styleGreen.Render(fmt.Sprintf("EXECUTED · status %d in %d ms", r.status(), r.duration()))
	case gate.StateFailed, gate.StateRejected:
		word := strings.ToUpper(r.State)
		if r.reason() == gate.ReasonVetoed {
			word = "VETOED"
		}
		tone, state = colRed, styleRed.Render(word+" · "+explain(r.reason()))
	default:
		tone, state = colGrey, strings.ToUpper(r.State)+" · "+explain(r.reason())
	}
	lines = append(lines, state)
	lines = append(lines, m.yourVote(r))
	return cardSpec{boxed: true, tone: tone, title: styleBold.Render(title), by: by, lines: lines}
}

// voteReasons is the reasons the votes on r give, a line each: "bob
// rejected: not today".
func (m *Model) voteReasons(c *convState, r *reqView) []string {
	var out []string
	for _, it := range c.votes[r.ID] {
		var p gate.VotePayload
		if json.Unmarshal(it.disp, &p) != nil || p.Reason == "" {
			continue
		}
		verb := "approved"
		switch {
		case it.veto:
			verb = "vetoed"
		case it.rec.Kind == conversation.KindGateReject:
			verb = "rejected"
		}
		out = append(out, "  "+c.name1(it.msg.Author, m.gateway)+" "+verb+": "+safeLine(p.Reason))
	}
	return out
}

// approvedSpec is the card of a gate.approved: the requirement is met and
// the cool-off runs until executable_at, unless vetoed first.
func (m *Model) approvedSpec(c *convState, it *item, head, by string) cardSpec {
	var p gate.ApprovedPayload
	_ = json.Unmarshal(it.disp, &p)
	until := safeLine(p.ExecutableAt)
	if t, err := time.Parse(time.RFC3339Nano, p.ExecutableAt); err == nil {
		until = m.at(t)
	}
	lines := []string{styleBold.Render("APPROVED — cool-off until " + until), "approved by " + c.nameList(p.Approvers, m.gateway)}
	if a := m.assignmentText(c, p.Approvers, p.Assignment); a != "" {
		lines = append(lines, "slots: "+a)
	}
	if r := c.request(it.reqID); r != nil {
		rp := c.shown(r.Request)
		lines = append(lines, rp.Method+" "+rp.URL)
		veto := r.Needs().Veto
		switch {
		case m.inCoolOff(r):
			lines = append(lines, fmt.Sprintf("%s %s it; its submitter may cancel it · now %s", nOf(veto, "veto"), map[bool]string{true: "stops", false: "stop"}[veto == 1], m.vetoText(c, r)))
		case r.State == gate.StateApproved:
			lines = append(lines, "the cool-off is over: the gateway executes it")
		default:
			lines = append(lines, "request now "+describeState(r))
		}
	}
	return cardSpec{boxed: true, tone: colPurple, title: styleBold.Render(head + " APPROVED " + shortID(p.RequestID)), by: by, lines: lines}
}

// yourVote says where the user stands on a request.
func (m *Model) yourVote(r *reqView) string {
	if r.State == gate.StateApproved && m.inCoolOff(r) {
		return m.yourVeto(r)
	}
	open := r.State == gate.StatePending && m.now().Before(r.ExpiresAt)
	switch v := r.voted(m.self); {
	case r.Submitter == m.self && v == "" && !r.Needs().SubmitterCounts:
		return "you: submitted it (its rule does not count your approval: the others decide)" + map[bool]string{true: " · c cancels", false: ""}[open]
	case r.Submitter == m.self && v == "approved":
		return "you: submitted it (your approval)" + map[bool]string{true: " · c cancels", false: ""}[open]
	case v != "":
		return "you: " + v
	case !r.IsSigner(m.self):
		return "you: not a signer of this request"
	case open:
		return styleBold.Foreground(colYellow).Render("you: not voted yet · a approve · r reject")
	}
	return "you: did not vote"
}

// yourVeto is where the user stands on a request in its cool-off: they
// may veto it (v), once, whatever they voted before.
func (m *Model) yourVeto(r *reqView) string {
	v := r.voted(m.self)
	cancel := ""
	if r.Submitter == m.self {
		cancel = " · c cancels"
	}
	switch {
	case v == "vetoed":
		return "you: vetoed" + cancel
	case !r.IsSigner(m.self):
		return "you: not a signer of this request"
	case v == "":
		v = "not voted"
	}
	return styleBold.Foreground(colYellow).Render("you: " + v + " · v vetoes (with a reason)" + cancel)
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// proposalSpec is the proposal card: the change as signed, the approvals
// against those it needs, and where the user stands.
func (m *Model) proposalSpec(c *convState, it *item, head, by string) cardSpec {
	var p gate.ProposePayload
	pr := c.proposalOf(it)
	if json.Unmarshal(it.disp, &p) != nil || (pr == nil && it.refused == "") {
		return cardSpec{boxed: true, tone: colRed, title: head + " PROPOSAL", by: by, lines: []string{styleRed.Render("a proposal this TUI cannot read")}}
	}
	title := head + " PROPOSAL " + shortID(p.ProposalID)
	if it.diff != nil {
		title += " · to change " + it.diff.What()
	}
	lines := m.diffLines(c, it.diff)
	if pr == nil {
		return cardSpec{boxed: true, tone: colRed, title: title, by: by, lines: lines}
	}
	lines = append(lines, fmt.Sprintf("approvals %d/%d: %s · needs %s", len(pr.Approvals), len(pr.Needed), c.nameList(pr.Approvals, m.gateway), c.nameList(pr.Needed, m.gateway)))
	tone := colBlue
	switch {
	case pr.done:
		lines = append(lines, styleGreen.Render("applied"))
		tone = colGreen
	case !c.open(pr):
		lines = append(lines, "void: another membership change was applied first")
		tone = colGrey
	case contains(pr.Approvals, m.self):
		lines = append(lines, "you: approved")
	case contains(pr.Needed, m.self):
		lines = append(lines, styleBold.Foreground(colYellow).Render("you: not approved yet · a approve"))
	default:
		lines = append(lines, "you: your approval is not needed")
	}
	return cardSpec{boxed: true, tone: tone, title: title, by: by, lines: lines}
}

// diffLines is what a proposal changes, a line each (gate.ProposalDiff's
// Lines), made safe to draw.
func (m *Model) diffLines(c *convState, d *gate.ProposalDiff) []string {
	if d == nil {
		return nil
	}
	var out []string
	for _, l := range d.Lines(func(k string) string { return c.name1(k, m.gateway) }) {
		out = append(out, safeLine(l))
	}
	return out
}

// renderItem draws item i of c at width w.
func (m *Model) renderItem(c *convState, i, w int) string {
	it := c.items[i]
	s := m.spec(c, it)
	sel := i == c.cursor
	if !s.boxed {
		mark := "  "
		if sel {
			mark = styleBold.Render("▶ ")
		}
		// Continuation lines hang off a gutter, so that no text can pass
		// for a card of its own.
		var lines []string
		for _, l := range append([]string{s.title}, s.lines...) {
			lines = append(lines, strings.Split(ansi.Wrap(l, max(1, w-4), ""), "\n")...)
		}
		for j := range lines {
			if j == 0 {
				lines[j] = mark + lines[j]
			} else {
				lines[j] = styleFaint.Render("  ┊ ") + lines[j]
			}
		}
		return strings.Join(lines, "\n")
	}
	inner := max(1, w-4) // border and one space of padding each side
	first := s.title
	if s.by != "" {
		gap := inner - ansi.StringWidth(s.title) - ansi.StringWidth(s.by)
		if gap >= 2 {
			first = s.title + strings.Repeat(" ", gap) + styleFaint.Render(s.by)
		} else {
			first = s.title + "  " + styleFaint.Render(s.by)
		}
	}
	var body []string
	for _, l := range append([]string{first}, s.lines...) {
		body = append(body, strings.Split(ansi.Wrap(l, inner, ""), "\n")...)
	}
	st := lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(s.tone).Padding(0, 1).Width(w)
	if sel {
		st = st.Border(lipgloss.ThickBorder()).BorderForeground(s.tone)
	}
	return st.Render(strings.Join(body, "\n"))
}
