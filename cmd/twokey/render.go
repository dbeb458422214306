package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/termtext"
)

// logView renders records as readable cards. It folds the log as it
// goes (gate.Fold, the one meaning of each kind), so a request card knows
// its M and its votes so far.
type logView struct {
	fold    *gate.Fold
	names   map[string]string // key id -> name, as members were named
	gateway string
	now     func() time.Time
	final   map[string]string // request id -> its state now, when known
	short   bool              // no bodies
}

// newLogView follows a log of gateway's; cat (nil for none) is the
// server's catalog, which M is matched with.
func newLogView(gateway string, members []conversation.Member, cat *api.Catalog, now func() time.Time) *logView {
	v := &logView{fold: gate.NewFold(gateway), names: map[string]string{}, gateway: gateway, now: now, final: map[string]string{}}
	v.fold.Resolve = cat.Target
	v.learn(members)
	return v
}

func (v *logView) name(key string) string {
	if key == v.gateway {
		return "gateway"
	}
	if n := v.names[key]; n != "" {
		return termtext.Line(n)
	}
	return conversation.ShortKey(key)
}

func (v *logView) nameList(keys []string) string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = v.name(k)
	}
	return strings.Join(out, ", ")
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// learn keeps the names members had: a card names a member removed since.
func (v *logView) learn(members []conversation.Member) {
	for _, m := range members {
		if m.Name != "" {
			v.names[m.Key] = m.Name
		}
	}
}

// apply folds r in and returns what it was about, or why the fold does
// not believe it (r's signature and chain were checked before).
func (v *logView) apply(r conversation.Record) (gate.Step, error) {
	m, err := conversation.Verify(r.Envelope)
	if err != nil {
		return gate.Step{}, err
	}
	at, err := conversation.ParseTime(r.ReceivedAt)
	if err != nil {
		return gate.Step{}, err
	}
	step, err := v.fold.Apply(m, r.Seq, at)
	if err == nil {
		v.learn(v.fold.Members)
	}
	return step, err
}

func indent(w io.Writer, text string) {
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(w, "     %s\n", line)
	}
}

// prettyBody indents JSON bodies and folds long ones.
func prettyBody(body string, maxLines int) string {
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(body), "", "  ") == nil {
		body = buf.String()
	}
	lines := strings.Split(strings.TrimRight(body, "\n"), "\n")
	if maxLines > 0 && len(lines) > maxLines {
		more := len(lines) - maxLines
		lines = append(lines[:maxLines], fmt.Sprintf("… %d more %s (twokey request show --body)", more, noun(more, "line")))
	}
	return strings.Join(lines, "\n")
}

// responseBody is what the CLI prints of a gate.response's body: the
// text, pretty when it is JSON; a body given as base64 (it is not UTF-8,
// PROTOCOL 5) is described, never dumped.
func responseBody(p *gate.ResponsePayload, maxLines int) string {
	if !p.Binary() {
		return prettyBody(p.Body, maxLines)
	}
	b, err := p.BodyBytes()
	if err != nil {
		return "binary body, not readable: " + err.Error()
	}
	return fmt.Sprintf("binary body, %d bytes (base64 in the record), not shown", len(b))
}

// bodyLen is how many bytes of the body a gate.response holds.
func bodyLen(p *gate.ResponsePayload) int {
	if b, err := p.BodyBytes(); err == nil {
		return len(b)
	}
	return len(p.Body)
}

func timeLeft(exp, now time.Time) string {
	d := exp.Sub(now)
	if d <= 0 {
		return "expired"
	}
	d = d.Round(time.Second)
	return "expires in " + d.String()
}

// render writes one record.
func (v *logView) render(w io.Writer, r conversation.Record) {
	before := v.fold.Gate.Clone() // the gate a proposal was made in, or a change applies to
	step, refused := v.apply(r)
	if refused == nil && r.Kind == conversation.KindMemberPropose {
		for _, m := range step.Proposal.Payload.Add {
			if m.Name != "" && v.names[m.Key] == "" {
				v.names[m.Key] = m.Name
			}
		}
	}
	defer func() {
		if refused != nil {
			fmt.Fprintf(w, "     NOT BELIEVED: %s\n", termtext.Line(refused.Error()))
		}
	}()
	// approvals is the request's count and M after this record, "?" for
	// the M of a request the fold does not hold.
	approvals := func() (int, string, []string) {
		if r := step.Request; r != nil {
			counted := r.Counted()
			return len(counted), fmt.Sprint(r.Required), counted
		}
		return 0, "?", nil
	}
	when := r.ReceivedAt
	if t, err := time.Parse(time.RFC3339Nano, r.ReceivedAt); err == nil {
		when = t.UTC().Format("2006-01-02 15:04:05")
	}
	head := fmt.Sprintf("#%-4d %s  %-8s", r.Seq, when, v.name(r.Author))
	switch r.Kind {
	case conversation.KindConversationCreate:
		var p conversation.CreatePayload
		_ = json.Unmarshal(r.Body, &p)
		fmt.Fprintf(w, "%s created %q with %s\n", head, p.Name, v.nameList(memberKeys(p.Members)))
	case conversation.KindChatMessage:
		var p conversation.ChatPayload
		_ = json.Unmarshal(r.Body, &p)
		// Later lines of a message are indented, so that no message can
		// start a line that looks like a record of its own.
		fmt.Fprintf(w, "%s %s\n", head, strings.ReplaceAll(termtext.Clean(p.Text), "\n", "\n     | "))
	case conversation.KindMemberAdd, conversation.KindMemberRemove:
		var p conversation.MemberPayload
		_ = json.Unmarshal(r.Body, &p)
		verb := "added"
		if r.Kind == conversation.KindMemberRemove {
			verb = "removed"
		}
		fmt.Fprintf(w, "%s %s member %s (%s)\n", head, verb, v.name(p.Key), conversation.ShortKey(p.Key))
	case conversation.KindGateEnable:
		var p gate.EnablePayload
		_ = json.Unmarshal(r.Body, &p)
		fmt.Fprintf(w, "%s asks to enable the gateway, %s required\n", head, nOf(p.RequiredApprovals, "approval"))
		v.groups(w, p.Groups)
	case conversation.KindGateEnabled:
		var p gate.EnabledPayload
		_ = json.Unmarshal(r.Body, &p)
		fmt.Fprintf(w, "%s GATE ENABLED  %d of %d signers must approve: %s\n", head, p.RequiredApprovals, len(p.Signers), v.nameList(p.Signers))
		v.groups(w, p.Groups)
		for _, rule := range p.Rules {
			if rule.Plain() {
				fmt.Fprintf(w, "     rule %s %s %s needs %d\n", rule.Service, rule.Method, rule.Endpoint, rule.RequiredApprovals)
			} else {
				fmt.Fprintf(w, "     rule %s %s %s needs %s\n", rule.Service, rule.Method, rule.Endpoint, rule.Policy().Describe())
			}
		}
	case conversation.KindGateSecretStored:
		var p gate.SecretStoredPayload
		_ = json.Unmarshal(r.Body, &p)
		exp := "no expiry"
		if p.ExpiresAt != "" {
			exp = "expires " + string(p.ExpiresAt)
		}
		fmt.Fprintf(w, "%s SECRET STORED  for %s by %s, header %s: %s (%s; value never shown)\n", head, p.Service, v.name(p.ProvisionedBy), p.HeaderName, p.HeaderTemplate, exp)
	case conversation.KindGateSecretRevoke:
		var p gate.RevokePayload
		_ = json.Unmarshal(r.Body, &p)
		what := p.Service
		if p.SecretID != "" {
			what = "secret " + shortID(p.SecretID)
		}
		fmt.Fprintf(w, "%s asks to revoke %s\n", head, what)
	case conversation.KindGateSecretRevoked:
		var p gate.RevokedPayload
		_ = json.Unmarshal(r.Body, &p)
		fmt.Fprintf(w, "%s SECRET REVOKED  %d secret(s) by %s\n", head, len(p.SecretIDs), v.name(p.By))
	case conversation.KindGateRequest:
		var p gate.RequestPayload
		_ = json.Unmarshal(r.Body, &p)
		tmpl := p.Template
		if tmpl == "" {
			tmpl = "(no template)"
		}
		who := ""
		if p.Program != "" {
			who = " for program " + p.Program
		}
		fmt.Fprintf(w, "%s REQUEST %s  %s%s\n", head, shortID(p.RequestID), termtext.Line(tmpl), termtext.Line(who))
		fmt.Fprintf(w, "     %s %s  (service %s)\n", p.Method, p.URL, p.Service)
		if len(p.Params) > 0 {
			keys := make([]string, 0, len(p.Params))
			for k := range p.Params {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = termtext.Line(k + "=" + p.Params[k])
			}
			fmt.Fprintf(w, "     params %s\n", strings.Join(parts, " "))
		}
		if p.Reason != "" {
			fmt.Fprintf(w, "     why: %s\n", termtext.Line(p.Reason))
		}
		if r := step.Request; r != nil {
			if pol := r.Needs(); !plainPolicy(pol) {
				fmt.Fprintf(w, "     policy %s\n", pol.Describe())
			}
		}
		if len(p.Body) > 0 && !v.short {
			indent(w, prettyBody(string(p.Body), 12))
		}
		n, m, votes := approvals()
		left := ""
		if st := v.final[p.RequestID]; st != "" && st != gate.StatePending {
			left = " · now " + st // a countdown would mislead on a closed request
		} else if exp, err := time.Parse(time.RFC3339Nano, p.ExpiresAt); err == nil {
			left = " · " + timeLeft(exp, v.now())
		}
		fmt.Fprintf(w, "     approvals %d/%s (%s)%s\n", n, m, v.nameList(votes), left)
	case conversation.KindGateApprove, conversation.KindGateReject:
		var p gate.VotePayload
		_ = json.Unmarshal(r.Body, &p)
		reason := ""
		if p.Reason != "" {
			reason = ": " + termtext.Line(p.Reason)
		}
		// A vote on a request in its cool-off: an approval changes
		// nothing, a rejection is a veto (PROTOCOL 9).
		rq := step.Request
		coolOff := rq != nil && rq.ApprovedSeq > 0 && rq.ApprovedSeq < r.Seq
		switch {
		case r.Kind == conversation.KindGateApprove && coolOff:
			fmt.Fprintf(w, "%s APPROVE %s  (already approved; changes nothing)%s\n", head, shortID(p.RequestID), reason)
		case r.Kind == conversation.KindGateApprove:
			n, m, _ := approvals()
			fmt.Fprintf(w, "%s APPROVE %s  (%d/%s)%s\n", head, shortID(p.RequestID), n, m, reason)
		case coolOff:
			fmt.Fprintf(w, "%s VETO    %s  (%d of %d vetoes)%s\n", head, shortID(p.RequestID), len(rq.Vetoes), rq.Needs().Veto, reason)
		default:
			fmt.Fprintf(w, "%s REJECT  %s%s\n", head, shortID(p.RequestID), reason)
		}
	case conversation.KindGateCancel:
		var p gate.CancelPayload
		_ = json.Unmarshal(r.Body, &p)
		fmt.Fprintf(w, "%s CANCEL  %s\n", head, shortID(p.RequestID))
	case conversation.KindGateExecuted:
		var p gate.ExecutedPayload
		_ = json.Unmarshal(r.Body, &p)
		fmt.Fprintf(w, "%s EXECUTED %s  status %d in %d ms, approved by %s\n", head, shortID(p.RequestID), p.Status, p.DurationMS, v.nameList(p.Approvers))
		if len(p.Assignment) > 0 {
			fmt.Fprintf(w, "     groups: %s\n", assignmentText(p.Assignment, v.name))
		}
	case conversation.KindGateApproved:
		var p gate.ApprovedPayload
		_ = json.Unmarshal(r.Body, &p)
		at, veto := p.ExecutableAt, 1
		if rq := step.Request; rq != nil {
			veto = rq.Needs().Veto
		}
		if t, err := time.Parse(time.RFC3339Nano, p.ExecutableAt); err == nil {
			at = t.UTC().Format("2006-01-02 15:04:05") + " UTC"
		}
		left := ""
		if st := v.final[p.RequestID]; st != "" && st != gate.StateApproved {
			left = " · now " + st
		}
		fmt.Fprintf(w, "%s APPROVED %s  by %s; executes at %s unless vetoed (%s)%s\n", head, shortID(p.RequestID), v.nameList(p.Approvers), at, nOf(veto, "veto")+" stops it", left)
		if len(p.Assignment) > 0 {
			fmt.Fprintf(w, "     groups: %s\n", assignmentText(p.Assignment, v.name))
		}
	case conversation.KindGateResponse:
		var p gate.ResponsePayload
		_ = json.Unmarshal(r.Body, &p)
		extra := ""
		if p.Redactions > 0 {
			extra += fmt.Sprintf(", %d redacted", p.Redactions)
		}
		if p.Truncated {
			extra += ", truncated at 64 KiB"
		}
		fmt.Fprintf(w, "%s RESPONSE %s  %d %s (%d bytes shown%s)\n", head, shortID(p.RequestID), p.Status, p.ContentType, bodyLen(&p), extra)
		if !v.short && p.Body != "" {
			indent(w, responseBody(&p, 40))
		}
	case conversation.KindGateFailed, conversation.KindGateExpired, conversation.KindGateRejected, conversation.KindGateCancelled:
		var p gate.ClosedPayload
		_ = json.Unmarshal(r.Body, &p)
		word := strings.ToUpper(strings.TrimPrefix(r.Kind, "gate."))
		why := termtext.Line(p.Reason)
		if p.Reason == gate.ReasonVetoed {
			why = "vetoed during the cool-off"
			if rq := step.Request; rq != nil && len(rq.Vetoes) > 0 {
				why += " by " + v.nameList(rq.Vetoes)
			}
		}
		fmt.Fprintf(w, "%s %s %s  reason %s\n", head, word, shortID(p.RequestID), why)
		if p.Detail != "" {
			fmt.Fprintf(w, "     %s\n", termtext.Line(p.Detail))
		}
	case conversation.KindMemberPropose:
		var p gate.ProposePayload
		_ = json.Unmarshal(r.Body, &p)
		d := step.Diff
		if d == nil { // not believed: what it asks for
			dd := gate.DiffProposal(before, p)
			d = &dd
		}
		fmt.Fprintf(w, "%s PROPOSE %s  to change %s\n", head, shortID(p.ProposalID), d.What())
		v.diff(w, d)
	case conversation.KindMemberApprove:
		var p gate.MemberApprovePayload
		_ = json.Unmarshal(r.Body, &p)
		fmt.Fprintf(w, "%s APPROVE proposal %s\n", head, shortID(p.ProposalID))
	case conversation.KindMemberChanged:
		var p gate.ChangedPayload
		_ = json.Unmarshal(r.Body, &p)
		d := step.Diff
		if d == nil { // not believed: what it claims
			dd := gate.DiffConfig(before, gate.Config{Signers: p.Signers, RequiredApprovals: p.RequiredApprovals, Rules: p.Rules, Groups: p.Groups})
			d = &dd
		}
		fmt.Fprintf(w, "%s %s  proposal %s; signers %s; %d of %d must approve\n", head, d.Label(), shortID(p.ProposalID), v.nameList(p.Signers), p.RequiredApprovals, len(p.Signers))
		v.diff(w, d)
	default:
		fmt.Fprintf(w, "%s %s\n", head, r.Kind)
	}
}

// groups writes a gate's groups a line each, members by name.
func (v *logView) groups(w io.Writer, groups map[string][]string) {
	for _, g := range groupNames(groups) {
		fmt.Fprintf(w, "     group %s: %s\n", termtext.Line(g), orDefault(v.nameList(groups[g]), "(empty)"))
	}
}

// diff writes what a proposal changes, a line each (gate.ProposalDiff.Lines).
func (v *logView) diff(w io.Writer, d *gate.ProposalDiff) {
	for _, l := range d.Lines(v.name) {
		fmt.Fprintf(w, "     %s\n", termtext.Line(l))
	}
}

func memberKeys(ms []conversation.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Key
	}
	return out
}
