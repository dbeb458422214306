package gate

import (
	"fmt"
	"strconv"
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

// String is how a rule is shown: "SERVICE METHOD ENDPOINT -> M". It is
// not the syntax ParseRule reads.
func (r Rule) String() string {
	return fmt.Sprintf("%s %s %s -> %d", r.Service, r.Method, r.Endpoint, r.RequiredApprovals)
}

// ParseRule reads a rule as it is written on the command line:
// comma-separated key=value pairs, service=S,endpoint=/p,method=M,approvals=N,
// where approvals is required and at least 1 and an omitted field is *.
// Values are taken as written (a later pair wins over an earlier one);
// the rule comes back normalized (Normalize). It checks the syntax only:
// ValidateRules checks a rule set against its signers. A refusal is
// bad_payload and names the spec.
func ParseRule(spec string) (Rule, error) {
	var r Rule
	for _, part := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q: write key=value pairs separated by commas", spec)
		}
		switch strings.TrimSpace(k) {
		case "service":
			r.Service = v
		case "endpoint":
			r.Endpoint = v
		case "method":
			r.Method = v
		case "approvals":
			n, err := strconv.Atoi(v)
			if err != nil {
				return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q: approvals must be a number", spec)
			}
			r.RequiredApprovals = n
		default:
			return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q: unknown field %q (use service, endpoint, method, approvals)", spec, k)
		}
	}
	if r.RequiredApprovals < 1 {
		return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q needs approvals=N", spec)
	}
	return Normalize([]Rule{r})[0], nil
}

// ParseRules reads each spec with ParseRule; none gives an empty (not
// nil) set.
func ParseRules(specs []string) ([]Rule, error) {
	out := []Rule{}
	for _, spec := range specs {
		r, err := ParseRule(spec)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Target is what a rule is matched against: the service, the request's
// concrete endpoint path (derived from its URL, never from a stated field),
// the endpoint pattern of the template the request names (if any) and the
// method.
type Target struct {
	Service string
	Path    string
	Pattern string
	Method  string
}

// Matches reports whether r applies to t as PROTOCOL 6 says: each non-*
// field equals the request's, a rule's endpoint matching the concrete path
// or, when the request names a template, that template's pattern.
func (r Rule) Matches(t Target) bool {
	if !r.sameServiceAndMethod(t) {
		return false
	}
	return r.Endpoint == Any || r.Endpoint == t.Path || (t.Pattern != "" && r.Endpoint == t.Pattern)
}

// Covers reports whether r applies to t in the wider reading this gateway
// also enforces: paths compared in their MatchPath form (so /admin/ and
// /admin;x are /admin), and a pattern rule matched against the concrete
// path whether or not the request names a template. Every rule that
// Matches also Covers. See Threshold for how the two readings combine.
func (r Rule) Covers(t Target) bool {
	if !r.sameServiceAndMethod(t) {
		return false
	}
	if r.Endpoint == Any || r.Matches(t) {
		return true
	}
	path := MatchPath(t.Path)
	if strings.Contains(r.Endpoint, "{") {
		return templates.MatchEndpoint(MatchPath(r.Endpoint), path)
	}
	return MatchPath(r.Endpoint) == path
}

func (r Rule) sameServiceAndMethod(t Target) bool {
	return (r.Service == Any || r.Service == t.Service) && (r.Method == Any || strings.EqualFold(r.Method, t.Method))
}

// MatchPath is the form in which the wider reading (Covers) compares
// paths: every segment cut at its first ';' (path parameters, which many
// servers ignore) and a trailing '/' dropped (but for the root), so that
// /admin/ and /admin;x are the same endpoint as /admin. Percent-escapes need no
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

// Select returns the most specific rule that applies to t by PROTOCOL 6
// (Matches), or nil. ValidateRules guarantees no two rules on one triple,
// but a pattern and a concrete path may both apply at the same score: then
// the stricter one (larger M) wins, so that no rule can weaken another by
// spelling the endpoint differently.
func Select(rules []Rule, t Target) *Rule { return selectBy(rules, t, Rule.Matches) }

// SelectCovering is Select in the wider reading (Covers).
func SelectCovering(rules []Rule, t Target) *Rule { return selectBy(rules, t, Rule.Covers) }

func selectBy(rules []Rule, t Target, applies func(Rule, Target) bool) *Rule {
	var best *Rule
	for i := range rules {
		r := &rules[i]
		if !applies(*r, t) {
			continue
		}
		if best == nil || r.Score() > best.Score() ||
			(r.Score() == best.Score() && r.RequiredApprovals > best.RequiredApprovals) {
			best = r
		}
	}
	return best
}

// Threshold returns M for t and the rule that set it (nil for def). It is
// the contract's M (PROTOCOL 6: the most specific rule that applies, else
// def) unless the wider reading (Covers) picks a stricter rule: then that
// one holds. So M is never below what the contract gives, and a request
// cannot lower it by respelling its path (/admin/, /admin;x) or by leaving
// out the template whose pattern a stricter rule names.
func Threshold(def int, rules []Rule, t Target) (int, *Rule) {
	m, rule := def, Select(rules, t)
	if rule != nil {
		m = rule.RequiredApprovals
	}
	if w := SelectCovering(rules, t); w != nil && w.RequiredApprovals > m {
		return w.RequiredApprovals, w
	}
	return m, rule
}
