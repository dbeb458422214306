package gate

import (
	"fmt"
	"strings"

	"github.com/twokey/twokey"
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
// concrete endpoint path, the template's endpoint pattern (if any) and
// the method.
type Target struct {
	Service string
	Path    string
	Pattern string
	Method  string
}

// Matches reports whether r applies to t.
func (r Rule) Matches(t Target) bool {
	if r.Service != Any && r.Service != t.Service {
		return false
	}
	if r.Method != Any && !strings.EqualFold(r.Method, t.Method) {
		return false
	}
	if r.Endpoint != Any && r.Endpoint != t.Path && (t.Pattern == "" || r.Endpoint != t.Pattern) {
		return false
	}
	return true
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
		if r.Endpoint != Any && !strings.HasPrefix(r.Endpoint, "/") {
			return twokey.Errorf(twokey.EBadPayload, "rule %d: endpoint %q must start with / (a path below the service's base URL) or be *", i+1, r.Endpoint)
		}
		if len(r.Service) > 128 || len(r.Endpoint) > 1024 || len(r.Method) > 16 {
			return twokey.Errorf(twokey.EBadPayload, "rule %d: a field is too long", i+1)
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
// ValidateRules guarantees no ties between distinct triples; a rule whose
// endpoint names the pattern and another naming the path tie at the same
// score, and then the stricter one (larger M) wins, so that no rule can
// weaken another by spelling the endpoint differently.
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
