package tui

import (
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/twokey/twokey/gate"
)

// The reason prompt (PROTOCOL 9: gate.request, gate.approve and
// gate.reject may carry a reason): the input line asks for one before a
// rejection, a veto, an approval with A, or a request whose rule requires
// a reason. Enter sends, esc drops the action; a vote's reason is
// optional (enter alone sends none), a required one is not.

// asking is the action the reason prompt waits for.
type asking struct {
	kind  string // voteApproveWhy, voteReject, voteVeto, or "request"
	conv  string
	seq   uint64 // the request record voted on (a vote)
	short string // the request's id in short (a vote)
	call  string // "METHOD URL", as drawn
	// A request: its payload as resolved when Enter was pressed, and the
	// template it came from. The reason is required.
	req      gate.RequestPayload
	template string
	required bool
}

// prompt is what the reason field says before the text.
func (a *asking) prompt() string {
	switch a.kind {
	case voteReject:
		return "reason to reject " + a.short + ": "
	case voteVeto:
		return "reason to veto " + a.short + ": "
	case voteApproveWhy:
		return "reason to approve " + a.short + ": "
	}
	return "reason for the request (required): "
}

// hint is the footer while the prompt is open.
func (a *asking) hint() string {
	verb := map[string]string{voteReject: "rejects", voteVeto: "vetoes", voteApproveWhy: "approves"}[a.kind]
	if a.kind == "request" {
		return "enter submits (a reason is required by the rule) · esc drops the request"
	}
	return "enter " + verb + " (a reason is optional) · esc cancels"
}

// ask opens the reason prompt for a.
func (m *Model) ask(a *asking) tea.Cmd {
	m.asked = a
	m.reason.Reset()
	m.reason.prompt = a.prompt()
	switch a.kind {
	case "request":
		m.setStatus(false, "the rule for %s requires a reason: say why (1 to %d characters) · %s", a.call, gate.MaxReasonChars, a.hint())
	default:
		m.setStatus(false, "%s %s: %s · %s", strings.TrimSuffix(a.kind, "-why"), a.short, a.call, a.hint())
	}
	return m.setFocus(paneInput)
}

// isVote reports whether the vote asked for is still the one r takes: a
// veto only in the cool-off, a rejection only before it.
func (a *asking) isVote(r *reqView) bool {
	switch a.kind {
	case voteVeto:
		return r.State == gate.StateApproved
	case voteReject:
		return r.State != gate.StateApproved
	}
	return true
}

// promptKey handles a key while the reason prompt is open.
func (m *Model) promptKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "esc":
		a := m.asked
		m.asked = nil
		m.reason.Reset()
		if a.kind == "request" {
			m.setStatus(false, "nothing submitted")
		} else {
			m.setStatus(false, "nothing sent: %s stays as it was", a.short)
		}
		return m.setFocus(paneLog)
	case "enter":
		return m.answer()
	case "tab", "shift+tab":
		return nil // the prompt keeps the keyboard until enter or esc
	}
	m.edited(m.reason.key(k))
	return nil
}

// answer sends what the prompt was for, with the reason typed. The vote
// is checked again against the request as it is now (it may have closed
// while the reason was typed), on the record it was asked for.
func (m *Model) answer() tea.Cmd {
	a := m.asked
	reason := strings.TrimSpace(m.reason.Value())
	if err := gate.CheckReason("the reason", reason); err != nil {
		m.setStatus(true, "%s", errText(err))
		return nil
	}
	if a.required && reason == "" {
		m.setStatus(true, "the rule requires a reason: type why (1 to %d characters), or esc to drop the request", gate.MaxReasonChars)
		return nil
	}
	m.asked = nil
	m.reason.Reset()
	m.setFocus(paneLog)
	c := m.convByID(a.conv)
	if c == nil {
		m.setStatus(true, "the conversation is gone: nothing sent")
		return nil
	}
	if a.kind == "request" {
		return m.submit(c, a.template, a.req, reason)
	}
	it := c.itemAt(a.seq)
	if it == nil {
		m.setStatus(true, "record #%d is gone: nothing sent", a.seq)
		return nil
	}
	// The request may have moved on while the reason was typed: a
	// rejection is not sent as a veto, nor a veto as a rejection.
	if r := c.requestOf(it); r != nil && !a.isVote(r) {
		if r.State == gate.StateApproved {
			m.setStatus(true, "request %s met its requirement while you typed and is now in its cool-off: nothing sent (v vetoes it)", a.short)
		} else {
			m.setStatus(true, "request %s is %s, no longer in its cool-off: the veto is not sent", a.short, describeState(r))
		}
		return nil
	}
	return m.vote(c, it, a.kind == voteApproveWhy, reason)
}
