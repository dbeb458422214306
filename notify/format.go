package notify

import (
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/gate"
)

// rendered is one event as a format sends it.
type rendered struct {
	body        []byte
	contentType string
	headers     map[string]string // besides the signature's
}

// render draws ev in format.
func render(format string, ev *Event) (rendered, error) {
	switch format {
	case api.WebhookSlack:
		return renderSlack(ev)
	case api.WebhookNtfy:
		return renderNtfy(ev), nil
	default:
		b, err := json.Marshal(ev)
		return rendered{body: b, contentType: "application/json"}, err
	}
}

// renderSlack is an incoming-webhook message: the text, and a button to
// the deep link when there is one.
func renderSlack(ev *Event) (rendered, error) {
	title, text := summary(ev)
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	type obj = map[string]any
	blocks := []obj{{"type": "section", "text": obj{"type": "mrkdwn", "text": "*" + esc.Replace(title) + "*\n" + esc.Replace(text)}}}
	if ev.Data.Link != "" {
		label := "Open in twokey"
		if ev.Data.Request != nil && ev.Type == RequestCreated {
			label = "Review request"
		}
		blocks = append(blocks, obj{"type": "actions", "elements": []obj{{"type": "button",
			"text": obj{"type": "plain_text", "text": label}, "url": ev.Data.Link}}})
	}
	b, err := json.Marshal(obj{"text": title + ": " + text, "blocks": blocks})
	return rendered{body: b, contentType: "application/json"}, err
}

// renderNtfy is an ntfy message in its header style: POST to the topic's
// URL, the message as the body, Title, Priority, Tags and Click (the deep
// link) as headers (RFC 2047 encoded when not ASCII).
func renderNtfy(ev *Event) rendered {
	title, text := summary(ev)
	h := map[string]string{"Title": headerText(title), "Priority": fmt.Sprint(priority(ev.Type)), "Tags": tag(ev.Type)}
	if ev.Data.Link != "" {
		h["Click"] = ev.Data.Link
	}
	return rendered{body: []byte(text), contentType: "text/plain; charset=utf-8", headers: h}
}

// headerText makes s a valid header value.
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return mime.QEncoding.Encode("utf-8", s)
}

// priority is ntfy's 1 (min) to 5 (max).
func priority(typ string) int {
	switch typ {
	case RequestCreated, RequestApproved, RequestFailed, QuorumAtRisk:
		return 4
	case RequestApprovedBy:
		return 2
	}
	return 3
}

func tag(typ string) string {
	switch typ {
	case RequestCreated:
		return "key"
	case RequestApproved:
		return "hourglass_flowing_sand"
	case RequestExecuted:
		return "white_check_mark"
	case RequestFailed, QuorumAtRisk:
		return "warning"
	case RequestRejected, RequestExpired, RequestCancelled:
		return "x"
	}
	return "busts_in_silhouette"
}

// summary is an event's title and text for a person: the text ends
// with the request's reason on a line of its own, when it has one (as
// clipped for the target's detail).
func summary(ev *Event) (title, text string) {
	title, text = summaryLine(ev)
	if ev.Data.Request != nil && ev.Data.Reason != "" {
		text += "\nReason: " + strings.Join(strings.Fields(ev.Data.Reason), " ")
	}
	return title, text
}

// summaryLine is summary without the reason.
func summaryLine(ev *Event) (title, text string) {
	d := ev.Data
	in := d.Conversation.Name
	if in == "" {
		in = d.Conversation.ID
	}
	if r := d.Request; r != nil {
		what := r.Method + " on " + r.Service
		if r.Template != "" {
			what = r.Template + " (" + what + ")"
		}
		votes := fmt.Sprintf("%d of %d approvals", r.K, r.M)
		switch ev.Type {
		case RequestCreated:
			text = fmt.Sprintf("%s asks for %s; %s", r.Submitter, what, votes)
			if len(r.WaitingOn) > 0 {
				text += "; waiting on " + strings.Join(r.WaitingOn, ", ")
			}
			return "Approval needed in " + in, text + "; expires " + r.ExpiresAt.UTC().Format(time.RFC3339)
		case RequestApprovedBy:
			return d.By + " approved a request in " + in, fmt.Sprintf("%s by %s; %s", what, r.Submitter, votes)
		case RequestApproved:
			at := "the end of its cool-off"
			if r.ExecutableAt != nil {
				at = r.ExecutableAt.UTC().Format(time.RFC3339)
			}
			veto := "a rejection by any signer stops it"
			if r.Veto > 1 {
				veto = fmt.Sprintf("%d rejections stop it", r.Veto)
			}
			return "Request approved in " + in + ": cool-off until " + at,
				fmt.Sprintf("%s by %s: %s; it executes at %s unless vetoed (%s)", what, r.Submitter, votes, at, veto)
		case RequestExecuted:
			return "Request executed in " + in, fmt.Sprintf("%s by %s: the service answered %d", what, r.Submitter, r.Status)
		default:
			state := strings.TrimPrefix(ev.Type, "request.")
			text = fmt.Sprintf("%s by %s was %s", what, r.Submitter, state)
			switch {
			case r.Reason == gate.ReasonVetoed && len(r.Vetoes) > 0:
				text += " (vetoed during its cool-off by " + strings.Join(r.Vetoes, ", ") + ")"
			case r.Reason == gate.ReasonVetoed:
				text += " (vetoed during its cool-off)"
			case r.Reason != "":
				text += " (" + r.Reason + ")"
			}
			return "Request " + state + " in " + in, text + "; " + votes
		}
	}
	if m := d.Membership; m != nil {
		var parts []string
		if len(m.Add) > 0 {
			parts = append(parts, "add "+strings.Join(m.Add, ", "))
		}
		if len(m.Remove) > 0 {
			parts = append(parts, "remove "+strings.Join(m.Remove, ", "))
		}
		if m.RequiredApprovals > 0 {
			parts = append(parts, fmt.Sprintf("M %d", m.RequiredApprovals))
		}
		if m.RulesChanged {
			parts = append(parts, "rules changed")
		}
		if ev.Type == MembershipProposed {
			text = m.Proposer + " proposes: " + strings.Join(parts, "; ")
			if len(m.Needed) > 0 {
				text += "; needs " + strings.Join(m.Needed, ", ")
			}
			return "Membership change proposed in " + in, text
		}
		return "Membership changed in " + in, strings.Join(parts, "; ") + "; signers now " + strings.Join(m.Signers, ", ")
	}
	if q := d.Quorum; q != nil {
		return "Quorum at risk in " + in, fmt.Sprintf("%d signers left and rule %s needs %d: one signer short and its calls cannot be approved", q.Signers, q.Rule, q.HighestM)
	}
	return "twokey test notification", d.Message
}
