package audit

import (
	"fmt"
	"strings"

	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/templates"
)

// Shadow is a rule that, being more specific, overrides a stricter and
// broader rule for the requests both apply to. PROTOCOL 6 makes the most
// specific rule win, so a shadow is legal (and changing rules needs every
// signer); the audit names each one so that nobody mistakes the broad
// rule's M for the one that holds.
type Shadow struct {
	Rule gate.Rule // the more specific, weaker rule that wins
	Over gate.Rule // the broader, stricter rule it overrides
}

func (s Shadow) String() string {
	return fmt.Sprintf("rule %s %s %s (M=%d) is more specific than the stricter rule %s %s %s (M=%d), so it wins for the requests both match",
		s.Rule.Service, s.Rule.Method, s.Rule.Endpoint, s.Rule.RequiredApprovals,
		s.Over.Service, s.Over.Method, s.Over.Endpoint, s.Over.RequiredApprovals)
}

// Shadows lists every pair of rules where a more specific rule with a
// smaller M applies to some request the broader rule also applies to.
func Shadows(rules []gate.Rule) []Shadow {
	rules = gate.Normalize(rules)
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

// overlap reports whether one request could match both rules.
func overlap(a, b gate.Rule) bool {
	field := func(x, y string) bool { return x == gate.Any || y == gate.Any || strings.EqualFold(x, y) }
	if !field(a.Service, b.Service) || !field(a.Method, b.Method) {
		return false
	}
	x, y := a.Endpoint, b.Endpoint
	switch {
	case x == gate.Any || y == gate.Any || x == y:
		return true
	case strings.Contains(x, "{") && !strings.Contains(y, "{"):
		return templates.MatchEndpoint(x, y)
	case strings.Contains(y, "{") && !strings.Contains(x, "{"):
		return templates.MatchEndpoint(y, x)
	}
	return false
}
