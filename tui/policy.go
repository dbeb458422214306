package tui

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twokey/twokey/gate"
)

// What PROTOCOL 9 adds to the screen: a request's policy, its cool-off and
// vetoes, the slots its approvers filled, and the groups of a gate.

// plainPolicy reports whether p says no more than M: no slots, the
// submitter counting, no reason, no cool-off. Such a policy is drawn as
// M alone, as before policies.
func plainPolicy(p gate.Policy) bool {
	return len(p.Require) == 0 && p.SubmitterCounts && !p.ReasonRequired && p.DelaySeconds == 0
}

// ruleText is how a rule is drawn in a list: "rule S M E needs 2", or for
// a rule that says more, "rule S M E needs 3 approvals, including 1 of
// finance; 15 min cool-off, 1 veto".
func ruleText(r gate.Rule) string {
	if r.Plain() {
		return safeLine(fmt.Sprintf("rule %s %s %s needs %d", r.Service, r.Method, r.Endpoint, r.RequiredApprovals))
	}
	return safeLine(fmt.Sprintf("rule %s %s %s needs %s", r.Service, r.Method, r.Endpoint, r.Policy().Describe()))
}

// groupLines is a gate's groups, one line each, with their members'
// names: "group finance: alice, bob". No groups gives no lines.
func (m *Model) groupLines(c *convState, groups map[string][]string, indent string) []string {
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	var out []string
	for _, g := range names {
		who := "no one"
		if len(groups[g]) > 0 {
			who = c.nameList(groups[g], m.gateway)
		}
		out = append(out, indent+safeLine("group "+g+": "+who))
	}
	return out
}

// assignmentText is which slot each approver filled: "alice for finance,
// carol for security", in the order of approvers (then any other key of
// the assignment, sorted). An empty assignment is "".
func (m *Model) assignmentText(c *convState, approvers []string, asg map[string]string) string {
	if len(asg) == 0 {
		return ""
	}
	keys := make([]string, 0, len(asg))
	for _, k := range approvers {
		if _, ok := asg[k]; ok && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range asg {
		if !slices.Contains(keys, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	keys = append(keys, rest...)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = c.name1(k, m.gateway) + " for " + safeLine(asg[k])
	}
	return strings.Join(parts, ", ")
}

// countdown is the time left, in whole seconds: "14:59", "1:02:03",
// "2d 03:04:05".
func countdown(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	days, h, min, sec := s/86400, s/3600%24, s/60%60, s%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %02d:%02d:%02d", days, h, min, sec)
	case h > 0:
		return fmt.Sprintf("%d:%02d:%02d", h, min, sec)
	}
	return fmt.Sprintf("%d:%02d", min, sec)
}

// at is a time as the cool-off line gives it: the clock and the zone, with
// the date when it is not today.
func (m *Model) at(t time.Time) string {
	t, now := t.In(m.loc), m.now().In(m.loc)
	if y, mo, d := t.Date(); y == now.Year() && mo == now.Month() && d == now.Day() {
		return t.Format("15:04:05 MST")
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

// vetoText is the vetoes so far against those that stop the call: "0 of
// 1 vetoes", "1 of 2 vetoes (bob)".
func (m *Model) vetoText(c *convState, r *reqView) string {
	s := fmt.Sprintf("%d of %d vetoes", len(r.Vetoes), r.Needs().Veto)
	if len(r.Vetoes) > 0 {
		s += " (" + c.nameList(r.Vetoes, m.gateway) + ")"
	}
	return s
}

// coolOff is the state line of an approved request: the countdown to its
// call, moving with the clock (the TUI ticks every second).
func (m *Model) coolOff(c *convState, r *reqView) string {
	switch {
	case r.ExecutableAt.IsZero():
		return "APPROVED · its cool-off starts when the gateway records it (gate.approved)"
	case m.now().Before(r.ExecutableAt):
		return fmt.Sprintf("APPROVED · executes in %s (at %s) unless vetoed — %s", countdown(r.ExecutableAt.Sub(m.now())), m.at(r.ExecutableAt), m.vetoText(c, r))
	}
	return fmt.Sprintf("APPROVED · the cool-off ended at %s: the gateway executes it now — %s", m.at(r.ExecutableAt), m.vetoText(c, r))
}

// inCoolOff reports whether r is approved and its cool-off not over at
// the TUI's clock: it takes vetoes.
func (m *Model) inCoolOff(r *reqView) bool {
	return r.State == gate.StateApproved && (r.ExecutableAt.IsZero() || m.now().Before(r.ExecutableAt))
}

// policyFor is the policy a request with payload p would get in c now,
// computed as the fold computes it (the same target, the rules and M in
// force): what the preview shows and what decides whether /request asks
// for a reason. ok is false while the gateway is off.
func policyFor(c *convState, p *gate.RequestPayload) (pol gate.Policy, rule *gate.Rule, ok bool) {
	g := c.fold.Gate
	if !g.Enabled {
		return gate.Policy{}, nil, false
	}
	tg := gate.Target{Service: p.Service, Method: p.Method}
	if c.fold.Resolve != nil {
		tg, _, _ = c.fold.Resolve(p)
	}
	mm, rule := gate.Threshold(g.RequiredApprovals, g.Rules, tg)
	return gate.PolicyOf(mm, rule), rule, true
}
