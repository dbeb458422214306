package gate

import (
	"fmt"
	"strings"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/templates"
)

// Any is the rule wildcard.
const Any = "*"

// Rule sets the approvals required for requests it matches (PROTOCOL 6).
type Rule struct {
	Service           string `json:"service"`
	Endpoint          string `json:"endpoint"`
	Method            string `json:"method"`
	RequiredApprovals int    `json:"required_approvals"`
}

// Score is the rule's specificity: 4 for a service, 2 for an endpoint,
// 1 for a method.
func (r Rule) Score() int {
	s := 0
	if r.Service != Any {
		s += 4
	}
	if r.Endpoint != Any {
		s += 2
	}
	if r.Method != Any {
		s++
	}
	return s
}

func (r Rule) String() string {
	return fmt.Sprintf("%s %s %s -> %d", r.Service, r.Method, r.Endpoint, r.RequiredApprovals)
}

// Target is what a rule is matched against: the service, the request's
// concrete endpoint path (derived from its URL, never from a stated field)
// and the method.
type Target struct {
	Service string
	Path    string
	Method  string
}

// Matches reports whether r applies to t. A rule's endpoint is a concrete
// path or a pattern with {name} placeholders (a template's endpoint); both
// are matched against the request's concrete path, whether or not the
// request names a template, so leaving the template out cannot escape a
// pattern rule. Paths are compared in their MatchPath form.
func (r Rule) Matches(t Target) bool {
	if r.Service != Any && r.Service != t.Service {
		return false
	}
	if r.Method != Any && !strings.EqualFold(r.Method, t.Method) {
		return false
	}
	if r.Endpoint == Any {
		return true
	}
	path := MatchPath(t.Path)
	if strings.Contains(r.Endpoint, "{") {
		return templates.MatchEndpoint(MatchPath(r.Endpoint), path)
	}
	return MatchPath(r.Endpoint) == path
}

// MatchPath is the form in which rules compare paths: every segment cut at
// its first ';' (path parameters, which many servers ignore) and a
// trailing '/' dropped (but for the root), so that /admin/ and /admin;x
// are the same endpoint as /admin to every rule. Percent-escapes need no
// folding: a request's path is checked to be in one canonical spelling
// before it gets here (templates.CheckPath).
func MatchPath(p string) string {
	if strings.IndexByte(p, ';') >= 0 {
		segs := strings.Split(p, "/")
		for i, s := range segs {
			if j := strings.IndexByte(s, ';'); j >= 0 {
				segs[i] = s[:j]
			}
		}
		p = strings.Join(segs, "/")
	}
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	return p
}

// Normalize fills empty fields with the wildcard and upper-cases the method.
func Normalize(rules []Rule) []Rule {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		if r.Service == "" {
			r.Service = Any
		}
		if r.Endpoint == "" {
			r.Endpoint = Any
		}
		if r.Method == "" {
			r.Method = Any
		} else if r.Method != Any {
			r.Method = strings.ToUpper(r.Method)
		}
		out[i] = r
	}
	return out
}

// ValidateRules checks a rule set against the number of signers: every M
// between 1 and signers, no two rules on the same triple, sane fields.
func ValidateRules(rules []Rule, signers int) error {
	if len(rules) > twokey.MaxRules {
		return twokey.Errorf(twokey.ETooLarge, "%d rules; a conversation holds at most %d", len(rules), twokey.MaxRules)
	}
	seen := map[[3]string]int{}
	for i, r := range rules {
		if r.Service == "" || r.Endpoint == "" || r.Method == "" {
			return twokey.Errorf(twokey.EBadPayload, "rule %d: service, endpoint and method are each a value or \"*\"", i+1)
		}
		if r.RequiredApprovals < 1 || r.RequiredApprovals > signers {
			return twokey.Errorf(twokey.EBadPayload, "rule %d (%s): required_approvals %d must lie between 1 and the %d signers", i+1, r, r.RequiredApprovals, signers)
		}
		if len(r.Service) > 128 || len(r.Endpoint) > 1024 || len(r.Method) > 16 {
			return twokey.Errorf(twokey.EBadPayload, "rule %d: a field is too long", i+1)
		}
		if r.Endpoint != Any {
			if err := templates.CheckPattern(r.Endpoint); err != nil {
				return twokey.Errorf(twokey.EBadPayload, "rule %d: endpoint %q %v; give a path below the service's base URL, e.g. /v1/charges or /item/{id}.json, or *", i+1, r.Endpoint, err)
			}
		}
		k := [3]string{r.Service, r.Endpoint, strings.ToUpper(r.Method)}
		if j, ok := seen[k]; ok {
			return twokey.Errorf(twokey.EBadPayload, "rules %d and %d both cover %s %s %s; keep one", j+1, i+1, r.Service, r.Method, r.Endpoint)
		}
		seen[k] = i
	}
	return nil
}

// Select returns the most specific rule that applies to t, or nil.
// ValidateRules guarantees no two rules on one triple, but a pattern and a
// concrete path (or two patterns) may both match one request at the same
// score: then the stricter one (larger M) wins, so that no rule can weaken
// another by spelling the endpoint differently.
func Select(rules []Rule, t Target) *Rule {
	var best *Rule
	for i := range rules {
		r := &rules[i]
		if !r.Matches(t) {
			continue
		}
		if best == nil || r.Score() > best.Score() ||
			(r.Score() == best.Score() && r.RequiredApprovals > best.RequiredApprovals) {
			best = r
		}
	}
	return best
}

// Threshold returns M for t: the most specific rule's, else def.
func Threshold(def int, rules []Rule, t Target) (int, *Rule) {
	if r := Select(rules, t); r != nil {
		return r.RequiredApprovals, r
	}
	return def, nil
}
