package gate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/twokey/twokey/templates"
)

// Shadow is a rule that, being more specific, overrides a stricter and
// broader rule for the requests both apply to. PROTOCOL 6 makes the most
// specific rule win, so a shadow is legal (and changing rules needs every
// signer); the audit names each one so that nobody mistakes the broad
// rule's M for the one that holds.
type Shadow struct {
	Rule Rule // the more specific, weaker rule that wins
	Over Rule // the broader, stricter rule it overrides
}

func (s Shadow) String() string {
	if s.Rule.Plain() && s.Over.Plain() {
		return fmt.Sprintf("rule %s %s %s (M=%d) is more specific than the stricter rule %s %s %s (M=%d), so it wins for the requests both match",
			s.Rule.Service, s.Rule.Method, s.Rule.Endpoint, s.Rule.RequiredApprovals,
			s.Over.Service, s.Over.Method, s.Over.Endpoint, s.Over.RequiredApprovals)
	}
	return fmt.Sprintf("rule %s %s %s (%s) is more specific than the stricter rule %s %s %s (%s), so it wins for the requests both match: %s",
		s.Rule.Service, s.Rule.Method, s.Rule.Endpoint, s.Rule.Policy().Describe(),
		s.Over.Service, s.Over.Method, s.Over.Endpoint, s.Over.Policy().Describe(), strings.Join(s.Rule.Weaker(s.Over), "; "))
}

// Weaker lists what r asks less of than over does (PROTOCOL 9 included):
// fewer approvals, fewer of a group, the submitter counting, no reason, a
// shorter cool-off, more rejections to veto. Empty when r asks at least
// as much in every respect.
func (r Rule) Weaker(over Rule) []string {
	a, b := r.Policy(), over.Policy()
	var out []string
	if a.RequiredApprovals < b.RequiredApprovals {
		out = append(out, fmt.Sprintf("%d approvals instead of %d", a.RequiredApprovals, b.RequiredApprovals))
	}
	for _, q := range b.Require {
		have := 0
		for _, x := range a.Require {
			if x.Group == q.Group {
				have = x.Approvals
			}
		}
		if have < q.Approvals {
			out = append(out, fmt.Sprintf("%d of %s instead of %d", have, q.Group, q.Approvals))
		}
	}
	if a.SubmitterCounts && !b.SubmitterCounts {
		out = append(out, "the submitter counts")
	}
	if b.ReasonRequired && !a.ReasonRequired {
		out = append(out, "no reason required")
	}
	if a.DelaySeconds < b.DelaySeconds {
		out = append(out, fmt.Sprintf("a cool-off of %s instead of %s", DelayText(a.DelaySeconds), DelayText(b.DelaySeconds)))
	} else if a.DelaySeconds > 0 && a.Veto > b.Veto {
		out = append(out, fmt.Sprintf("%d vetoes to stop it instead of %d", a.Veto, b.Veto))
	}
	return out
}

// Shadows lists every pair of rules where a more specific rule that asks
// less (Weaker: a smaller M, or less of what PROTOCOL 9 adds) applies to
// some request the broader rule also applies to.
func Shadows(rules []Rule) []Shadow {
	rules = Normalize(rules)
	var out []Shadow
	for _, r := range rules {
		for _, s := range rules {
			if r.Score() > s.Score() && len(r.Weaker(s)) > 0 && overlap(r, s) {
				out = append(out, Shadow{Rule: r, Over: s})
			}
		}
	}
	return out
}

// NewShadows lists the shadows (Shadows) of proposed that current does not
// have already: what a change of the rules from current to proposed newly
// lets a weaker rule win, said before anyone approves it.
func NewShadows(current, proposed []Rule) []Shadow {
	before := Shadows(current)
	var out []Shadow
	for _, sh := range Shadows(proposed) {
		if !slices.ContainsFunc(before, func(b Shadow) bool { return b.Rule.Equal(sh.Rule) && b.Over.Equal(sh.Over) }) {
			out = append(out, sh)
		}
	}
	return out
}

// CheckRules is what setting the rule set proposed, in place of current,
// would do in a gate of those signers and groups: the set normalized,
// the shadows it newly adds (NewShadows), and the refusal setting it would
// get (ValidateRules, CheckGroups and ValidatePolicies, as Enable and
// Propose apply them), or nil. A refusal
// does not stop the other two from being computed.
func CheckRules(current, proposed []Rule, groups map[string][]string, signers []string) ([]Rule, []Shadow, error) {
	rules := Normalize(proposed)
	err := ValidateRules(rules, len(signers))
	if err == nil {
		err = CheckGroups(groups, signers)
	}
	if err == nil {
		err = ValidatePolicies(rules, groups, signers)
	}
	return rules, NewShadows(current, rules), err
}

// overlap reports whether one request could match both rules. Two
// patterns are tried each against a path made from the other (its
// placeholders filled in), which finds the overlaps rule sets have in
// practice (/item/{id} and /item/{x}); an exotic overlap of two patterns
// may go unnamed.
func overlap(a, b Rule) bool {
	field := func(x, y string) bool { return x == Any || y == Any || strings.EqualFold(x, y) }
	if !field(a.Service, b.Service) || !field(a.Method, b.Method) {
		return false
	}
	x, y := a.Endpoint, b.Endpoint
	if x == Any || y == Any {
		return true
	}
	x, y = MatchPath(x), MatchPath(y)
	px, py := strings.Contains(x, "{"), strings.Contains(y, "{")
	switch {
	case !px && !py:
		return x == y
	case px && !py:
		return templates.MatchEndpoint(x, y)
	case py && !px:
		return templates.MatchEndpoint(y, x)
	}
	return templates.MatchEndpoint(x, fillPattern(y)) || templates.MatchEndpoint(y, fillPattern(x))
}

// fillPattern puts a sample value in every {placeholder} of p.
func fillPattern(p string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		j := strings.IndexByte(p, '}')
		if i < 0 || j < i {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:i])
		b.WriteString("1")
		p = p[j+1:]
	}
}
