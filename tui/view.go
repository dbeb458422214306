package tui

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/gate"
)

// View draws the screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "twokey"
	return v
}

// fit pads or cuts a line to exactly w cells.
func fit(s string, w int) string {
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", max(0, w-ansi.StringWidth(s)))
}

func (m *Model) leftWidth() int { return max(16, min(28, m.width/4)) }

func (m *Model) bodyHeight() int {
	return max(3, m.height-3-len(m.footerLines())-len(m.previewLines()))
}

// previewLines is the preview wrapped to the screen, at most 5 lines.
func (m *Model) previewLines() []string {
	var out []string
	for _, p := range m.preview() {
		out = append(out, strings.Split(ansi.Wrap(p, max(10, m.width-2), ""), "\n")...)
	}
	return clip(out, 5)
}

// logHeight is the lines the log pane has for cards.
func (m *Model) logHeight() int { return m.bodyHeight() - 1 }

// render draws the whole screen as text.
func (m *Model) render() string {
	w := m.width
	lw := m.leftWidth()
	rw := max(10, w-lw-2)
	h := m.bodyHeight()
	left := m.convLines(lw, h)
	right := m.rightLines(rw, h)
	sep := styleFaint.Render("│") + " "
	var b strings.Builder
	b.WriteString(fit(m.header(), w))
	b.WriteByte('\n')
	for i := 0; i < h; i++ {
		var l, r string
		if i < len(left) {
			l = left[i]
		}
		if i < len(right) {
			r = right[i]
		}
		b.WriteString(fit(l, lw) + sep + fit(r, rw))
		b.WriteByte('\n')
	}
	b.WriteString(styleFaint.Render(strings.Repeat("─", w)))
	b.WriteByte('\n')
	b.WriteString(fit(m.editing().view(w), w))
	for _, p := range m.previewLines() {
		b.WriteByte('\n')
		b.WriteString(fit("  "+p, w))
	}
	for _, f := range m.footerLines() {
		b.WriteByte('\n')
		b.WriteString(fit(f, w))
	}
	return b.String()
}

// footerLines is the status line, wrapped to the screen (at most 4 lines:
// an explanation is read whole, not cut), or the keys.
func (m *Model) footerLines() []string {
	if m.status == "" {
		return []string{m.footer()}
	}
	st := lipgloss.NewStyle()
	if m.statusErr {
		st = styleErr
	}
	lines := strings.Split(ansi.Wrap(m.status, max(10, m.width), ""), "\n")
	for i := range lines {
		lines[i] = st.Render(lines[i])
	}
	return clip(lines, 4)
}

func (m *Model) header() string {
	// Who you are: your name in this conversation, else in your identity
	// file, and your key's prefix.
	me := safeLine(m.selfName)
	if c := m.conv(); c != nil && c.names[m.self] != "" {
		me = c.names[m.self]
	}
	if me == "" {
		me = shortKey(m.self)
	} else {
		me += " (" + shortKey(m.self) + ")"
	}
	s := styleBold.Render("twokey") + " · you are " + me
	if c := m.conv(); c != nil {
		s += " · " + styleBold.Render(c.name)
		switch {
		case c.conn == "":
			s += " · " + styleFaint.Render("connecting…")
		case c.conn == "connected":
			s += " · " + styleGreen.Render("● live")
		case !c.retryAt.IsZero():
			left := "now"
			if d := c.retryAt.Sub(m.now()); d > 0 {
				left = "in " + d.Round(time.Second).String()
			}
			s += " · " + styleErr.Render("◌ "+c.conn+" · retrying "+left)
		case strings.HasPrefix(c.conn, "reconnecting"):
			s += " · " + styleErr.Render("◌ "+c.conn)
		default:
			s += " · " + styleErr.Render(c.conn)
		}
	} else if !m.loaded {
		s += " · " + styleFaint.Render("loading…")
	}
	return s
}

// convLines draws the conversations pane.
func (m *Model) convLines(w, h int) []string {
	title := "CONVERSATIONS"
	if m.focus == paneConvs {
		title = "▸ " + title
	}
	out := []string{styleBold.Render(title)}
	now := m.now()
	for i, c := range m.convs {
		mark := "  "
		if i == m.sel {
			mark = "▸ "
		}
		var right string
		if c.unread > 0 {
			right = fmt.Sprintf("%d", c.unread)
		}
		if n := c.waiting(m.self, now); n > 0 {
			right += " " + styleBold.Foreground(colYellow).Render(fmt.Sprintf("●%d", n))
		}
		if c.broken != "" {
			right += " " + styleErr.Render("✗")
		}
		name := mark + c.name
		room := w - ansi.StringWidth(right) - 1
		line := fit(name, max(1, room)) + right
		if i == m.sel {
			st := lipgloss.NewStyle().Bold(true)
			if m.focus == paneConvs {
				st = st.Reverse(true)
			}
			line = st.Render(ansi.Strip(fit(line, w)))
		}
		out = append(out, line)
	}
	if len(out) > h-2 {
		out = out[:max(1, h-2)]
	}
	if len(m.convs) > 0 {
		for len(out) < h-1 {
			out = append(out, "")
		}
		out = append(out, styleFaint.Render("N new · ●N wait for you"))
	}
	return out
}

// rightLines draws the log pane (or the help or members overlay).
func (m *Model) rightLines(w, h int) []string {
	c := m.conv()
	m.shown.conv, m.shown.seq = "", 0 // until a card is drawn selected below
	switch m.overlay {
	case "help":
		return clip(m.helpLines(w), h)
	case "members":
		if c != nil {
			return clip(m.memberLines(c, w), h)
		}
	}
	if c == nil {
		if !m.loaded {
			return []string{"loading…"}
		}
		return []string{"no conversation selected"}
	}
	title := styleBold.Render(c.name)
	if m.focus == paneLog {
		title = "▸ " + title
	}
	if g := c.fold.Gate; g.Enabled {
		title += fmt.Sprintf(" · %d of %d signers approve each call", g.RequiredApprovals, len(g.Signers))
	} else {
		title += " · gateway off"
	}
	if c.broken != "" {
		title = styleErr.Render("✗ the log does not verify: "+c.broken) + " · " + title
	}
	out := []string{title}
	return append(out, m.logLines(c, w, h-1)...)
}

func clip(lines []string, h int) []string {
	if len(lines) > h {
		return lines[:h]
	}
	return lines
}

// logLines lays out cards around the selected one: with the cards after
// it when they fit (anchored at the bottom, like a chat), else with the
// selected card at the top. A card taller than the pane scrolls inside.
func (m *Model) logLines(c *convState, w, h int) []string {
	if len(c.items) == 0 {
		return []string{styleFaint.Render("no records yet")}
	}
	sel := max(0, min(len(c.items)-1, c.cursor))
	if sel == c.cursor {
		m.shown.conv, m.shown.seq = c.id, c.items[sel].rec.Seq
	}
	render := func(i int) []string { return strings.Split(m.renderItem(c, i, w), "\n") }
	lines := render(sel)
	if len(lines) > h {
		off := min(c.scroll, len(lines)-h)
		return lines[off : off+h]
	}
	i := sel + 1
	for ; i < len(c.items) && len(lines) < h; i++ {
		lines = append(lines, render(i)...)
	}
	if len(lines) >= h {
		return lines[:h]
	}
	for j := sel - 1; j >= 0 && len(lines) < h; j-- {
		lines = append(render(j), lines...)
	}
	if len(lines) > h {
		lines = lines[len(lines)-h:]
	}
	return lines
}

// footer is the keys (or what the input line does) when there is no status.
func (m *Model) footer() string {
	var hint string
	switch {
	case m.overlay != "":
		hint = "esc closes"
	case m.secretFor != "":
		hint = "enter stores the key (sealed here) · esc cancels"
	case m.asked != nil:
		hint = m.asked.hint()
	case m.focus == paneInput:
		hint = "enter sends · tab completes · esc back to the log"
	case m.focus == paneConvs:
		return m.help.ShortHelpView(convKeys{}.ShortHelp())
	default:
		return m.help.ShortHelpView(keys.ShortHelp())
	}
	return styleFaint.Render(hint)
}

// preview is what shows under the input before Enter: for /request the
// resolved call and the M that will apply, for other commands their use.
func (m *Model) preview() []string {
	v := m.input.Value()
	if m.secretFor != "" || m.asked != nil || !strings.HasPrefix(v, "/") {
		return nil
	}
	words := strings.Fields(v)
	if len(words) == 0 {
		return nil
	}
	name := words[0]
	c := m.conv()
	if len(words) == 1 && !strings.HasSuffix(v, " ") {
		var out []string
		for _, cmd := range commands {
			if strings.HasPrefix(cmd.name, name) {
				out = append(out, styleFaint.Render(strings.TrimSpace(cmd.name+" "+cmd.args)+" — "+cmd.help))
			}
		}
		if len(out) == 0 {
			return []string{styleRed.Render("unknown command " + name + ": /help lists them")}
		}
		if len(out) > 3 {
			out = append(out[:2], styleFaint.Render(fmt.Sprintf("… and %d more (tab completes)", len(out)-2)))
		}
		return out
	}
	switch name {
	case "/request":
		return m.requestPreview(c, words[1:])
	case "/approve", "/reject", "/veto", "/cancel":
		if len(words) < 2 || c == nil {
			break
		}
		r, _, err := c.findRequest(words[1])
		if err != nil {
			return []string{styleRed.Render(err.Error())}
		}
		verb := strings.TrimPrefix(name, "/")
		p := c.shown(r.Request)
		return []string{fmt.Sprintf("%s %s: %s %s · approvals %d/%d · %s", verb, shortID(p.RequestID), p.Method, p.URL, len(r.Approvals), r.Required, describeState(r))}
	}
	for _, cmd := range commands {
		if cmd.name == name {
			return []string{styleFaint.Render(strings.TrimSpace(cmd.name+" "+cmd.args) + " — " + cmd.help)}
		}
	}
	return []string{styleRed.Render("unknown command " + name + ": /help lists them")}
}

func (m *Model) requestPreview(c *convState, args []string) []string {
	if len(args) == 0 {
		return []string{styleFaint.Render("/request TEMPLATE k=v ... — tab completes template names")}
	}
	args, reason := splitReason(args)
	t, svc, p, err := m.resolveRequest(args)
	if err != nil {
		out := []string{styleRed.Render(errText(err))}
		if t != nil {
			var ps []string
			for _, prm := range t.Params {
				s := prm.Name
				if prm.Required && prm.Default == "" {
					s += "*"
				}
				ps = append(ps, s)
			}
			out = append(out, styleFaint.Render(fmt.Sprintf("%s: %s %s%s · params %s", t.Name, t.Method, svc.BaseURL, t.Endpoint, strings.Join(ps, " "))))
		}
		return out
	}
	out := []string{styleBold.Render(p.Method + " " + p.URL)}
	auth := svc.Auth
	if auth == "" {
		auth = "none"
	}
	line := fmt.Sprintf("service %s (key %s) · risk %s · suggested M %d", svc.Name, auth, t.Risk, t.SuggestedApprovals)
	if len(p.Body) > 0 {
		line += " · body " + string(p.Body)
	}
	out = append(out, line)
	switch {
	case c == nil:
	case !c.fold.Gate.Enabled:
		out = append(out, styleRed.Render("the gateway is off in "+c.name+": /gate enable M first"))
	default:
		// M and the policy as the fold will give them once the request is
		// in: matched on the same target (its Resolve), under the rules in
		// force now.
		pol, rule, _ := policyFor(c, &p)
		n := len(c.fold.Gate.Signers)
		enter := "enter submits"
		switch {
		case pol.ReasonRequired && reason == "":
			enter = "enter asks for the reason (required)"
		case reason != "":
			enter = "reason: " + safeLine(reason) + " · enter submits"
		}
		switch {
		case rule != nil && plainPolicy(pol):
			out = append(out, safeLine(fmt.Sprintf("rule %s %s %s applies: %d of %d signers must approve · %s", rule.Service, rule.Method, rule.Endpoint, pol.RequiredApprovals, n, enter)))
		case rule != nil:
			out = append(out, safeLine(fmt.Sprintf("rule %s %s %s applies: %s (of %d signers) · %s", rule.Service, rule.Method, rule.Endpoint, pol.Describe(), n, enter)))
		default:
			out = append(out, fmt.Sprintf("no rule applies: the default %d of %d signers must approve · %s", pol.RequiredApprovals, n, enter))
		}
	}
	return out
}

// errText is what a user reads of an error: a refusal's message, or, for
// an error of this client's own (it holds nothing secret), its text.
func errText(err error) string {
	var te *twokey.Error
	if errors.As(err, &te) {
		return twokey.ErrorMessage(err)
	}
	return err.Error()
}

// helpLines is the help overlay, wrapped to width w.
func (m *Model) helpLines(w int) []string {
	var out []string
	add := func(indent int, text string) {
		lines := strings.Split(ansi.Wrap(text, max(10, w-indent), ""), "\n")
		for i, l := range lines {
			if i > 0 {
				l = strings.Repeat(" ", indent+4) + l
			} else {
				l = strings.Repeat(" ", indent) + l
			}
			out = append(out, l)
		}
	}
	out = append(out, styleBold.Render("KEYS")+" (a and r act on the selected request or proposal card)")
	for _, group := range keys.FullHelp() {
		var parts []string
		for _, b := range group {
			parts = append(parts, styleBold.Render(b.Help().Key)+" "+b.Help().Desc)
		}
		add(2, strings.Join(parts, " · "))
	}
	out = append(out, "", styleBold.Render("COMMANDS")+" (tab completes commands, templates and request ids)")
	for _, c := range commands {
		add(2, styleBold.Render(strings.TrimSpace(c.name+" "+c.args))+" — "+c.help)
	}
	out = append(out, "")
	out = append(out, strings.Split(ansi.Wrap("Anything not starting with / is chat. Every record is verified; one that fails is drawn in red. A vote signs the digest of the request on screen.", max(10, w), ""), "\n")...)
	return out
}

// memberLines is the members overlay at width w: each member with what
// they are (admin, signer, their groups, you), then the gate: M, the rules
// with their policies, the groups and the open proposals.
func (m *Model) memberLines(c *convState, w int) []string {
	out := []string{styleBold.Render("MEMBERS of " + c.name)}
	f := c.fold
	type row struct{ name, tags, key string }
	var rows []row
	tagsWidth := 18
	for _, mb := range f.Members {
		var tags []string
		if mb.Key == f.Admin {
			tags = append(tags, "admin")
		}
		if f.Gate.IsSigner(mb.Key) {
			tags = append(tags, "signer")
		}
		tags = append(tags, gate.GroupsOf(f.Gate.Groups, mb.Key)...)
		if mb.Key == m.self {
			tags = append(tags, "you")
		}
		rows = append(rows, row{c.name1(mb.Key, m.gateway), strings.Join(tags, ", "), safeLine(mb.Key)})
		tagsWidth = max(tagsWidth, len(rows[len(rows)-1].tags)+1)
	}
	for _, r := range rows {
		out = append(out, fmt.Sprintf("  %-12s %-*s %s", r.name, tagsWidth, r.tags, r.key))
	}
	out = append(out, "")
	if !f.Gate.Enabled {
		out = append(out, "the gateway is off: the admin turns it on with /gate enable M")
		return out
	}
	out = append(out, fmt.Sprintf("%d of %d signers must approve each call", f.Gate.RequiredApprovals, len(f.Gate.Signers)))
	for _, r := range gate.Normalize(f.Gate.Rules) {
		// A rule's policy may run long: it wraps, hanging off its rule.
		for i, l := range strings.Split(ansi.Wrap(ruleText(r), max(10, w-6), ""), "\n") {
			out = append(out, map[bool]string{true: "  ", false: "      "}[i == 0]+l)
		}
	}
	out = append(out, m.groupLines(c, f.Gate.Groups, "  ")...)
	open := slices.SortedFunc(maps.Values(f.Proposals), func(a, b *gate.Proposal) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, pr := range open {
		d := gate.DiffProposal(f.Gate, pr.Payload) // an open proposal was made in the gate as it is
		out = append(out, fmt.Sprintf("open proposal %s to change %s: approvals %d/%d", shortID(safeLine(pr.ID)), d.What(), len(pr.Approvals), len(pr.Needed)))
		for _, l := range m.diffLines(c, &d) {
			out = append(out, "  "+l)
		}
	}
	return out
}
