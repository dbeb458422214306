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
	return fmt.Sprintf("rule %s %s %s (M=%d) is more specific than the stricter rule %s %s %s (M=%d), so it wins for the requests both match",
		s.Rule.Service, s.Rule.Method, s.Rule.Endpoint, s.Rule.RequiredApprovals,
		s.Over.Service, s.Over.Method, s.Over.Endpoint, s.Over.RequiredApprovals)
}

// Shadows lists every pair of rules where a more specific rule with a
// smaller M applies to some request the broader rule also applies to.
func Shadows(rules []Rule) []Shadow {
	rules = Normalize(rules)
	var out []Shadow
	for _, r := range rules {
		for _, s := range rules {
			if r.Score() > s.Score() && r.RequiredApprovals < s.RequiredApprovals && overlap(r, s) {
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
		if !slices.Contains(before, sh) {
			out = append(out, sh)
		}
	}
	return out
}

// CheckRules is what setting the rule set proposed, in place of current,
// would do in a gate of the given number of signers: the set normalized,
// the shadows it newly adds (NewShadows), and the refusal setting it would
// get (ValidateRules, as Enable and Propose apply it), or nil. A refusal
// does not stop the other two from being computed.
func CheckRules(current, proposed []Rule, signers int) ([]Rule, []Shadow, error) {
	rules := Normalize(proposed)
	return rules, NewShadows(current, rules), ValidateRules(rules, signers)
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
