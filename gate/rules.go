package gate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/templates"
)

// Any is the rule wildcard.
const Any = "*"

// Rule sets the approvals required for requests it matches (PROTOCOL 6),
// and what more they need (PROTOCOL 9): slots for groups, whether the
// submitter counts, a reason, a cool-off and its veto. The fields of
// section 9 are omitted when they hold their defaults, so a rule that
// says no more than M is written as it was before them; Policy gives the
// rule with every default filled in.
type Rule struct {
	Service           string    `json:"service"`
	Endpoint          string    `json:"endpoint"`
	Method            string    `json:"method"`
	RequiredApprovals int       `json:"required_approvals"`
	Require           []Require `json:"require,omitempty"`
	// SubmitterCounts is nil for the default, true; Normalize makes an
	// explicit true nil, so that one rule has one spelling.
	SubmitterCounts *bool `json:"submitter_counts,omitempty"`
	ReasonRequired  bool  `json:"reason_required,omitempty"`
	DelaySeconds    int   `json:"delay_seconds,omitempty"`
	// Veto is 0 for the default: 1 with a delay.
	Veto int `json:"veto,omitempty"`
}

// Policy is the rule's requirement with its defaults filled in.
func (r Rule) Policy() Policy {
	p := DefaultPolicy(r.RequiredApprovals)
	if len(r.Require) > 0 {
		p.Require = slices.Clone(r.Require)
	}
	p.SubmitterCounts = r.SubmitterCounts == nil || *r.SubmitterCounts
	p.ReasonRequired, p.DelaySeconds, p.Veto = r.ReasonRequired, r.DelaySeconds, r.Veto
	if p.DelaySeconds > 0 && p.Veto == 0 {
		p.Veto = 1
	}
	return p
}

// Plain reports whether the rule says no more than M (no field of
// PROTOCOL 9 away from its default).
func (r Rule) Plain() bool {
	return len(r.Require) == 0 && (r.SubmitterCounts == nil || *r.SubmitterCounts) && !r.ReasonRequired && r.DelaySeconds == 0 && r.Veto == 0
}

// Equal reports whether two rules say the same (after Normalize).
func (r Rule) Equal(o Rule) bool {
	return r.Service == o.Service && r.Endpoint == o.Endpoint && r.Method == o.Method &&
		r.RequiredApprovals == o.RequiredApprovals && slices.Equal(r.Require, o.Require) &&
		(r.SubmitterCounts == nil || *r.SubmitterCounts) == (o.SubmitterCounts == nil || *o.SubmitterCounts) &&
		r.ReasonRequired == o.ReasonRequired && r.DelaySeconds == o.DelaySeconds && r.Veto == o.Veto
}

// RulesEqual reports whether two rule sets are the same rules in the same
// order.
func RulesEqual(a, b []Rule) bool { return slices.EqualFunc(a, b, Rule.Equal) }

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

// String is how a rule is shown: "SERVICE METHOD ENDPOINT -> M", and for
// a rule that says more, its policy after it ("-> 3 approvals, including 1
// of finance; 15 min cool-off, 1 veto"). It is not the syntax ParseRule
// reads.
func (r Rule) String() string {
	if r.Plain() {
		return fmt.Sprintf("%s %s %s -> %d", r.Service, r.Method, r.Endpoint, r.RequiredApprovals)
	}
	return fmt.Sprintf("%s %s %s -> %s", r.Service, r.Method, r.Endpoint, r.Policy().Describe())
}

// ParseRule reads a rule as it is written on the command line:
// comma-separated key=value pairs, service=S,endpoint=/p,method=M,approvals=N,
// where approvals is required and at least 1 and an omitted field is *.
// The fields of PROTOCOL 9 may follow: require=finance:1+security:1,
// submitter_counts=false, reason_required=true, delay=15m (a duration, or
// seconds) and veto=N. Values are taken as written (a later pair wins over
// an earlier one); the rule comes back normalized (Normalize). It checks
// the syntax only: ValidateRules and ValidatePolicies check a rule set
// against its signers and groups. A refusal is bad_payload and names the
// spec.
func ParseRule(spec string) (Rule, error) {
	var r Rule
	for _, part := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q: write key=value pairs separated by commas", spec)
		}
		switch strings.TrimSpace(k) {
		case "require":
			req, err := ParseRequire(strings.ReplaceAll(v, "+", ","))
			if err != nil {
				return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q: %s", spec, twokey.ErrorMessage(err))
			}
			r.Require = req
		case "submitter_counts", "reason_required":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q: %s is true or false", spec, k)
			}
			if k == "reason_required" {
				r.ReasonRequired = b
			} else {
				r.SubmitterCounts = &b
			}
		case "delay", "delay_seconds":
			sec, err := ParseDelay(v)
			if err != nil {
				return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q: %s", spec, twokey.ErrorMessage(err))
			}
			r.DelaySeconds = sec
		case "veto":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q: veto is a number of rejections, at least 1", spec)
			}
			r.Veto = n
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
			return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q: unknown field %q (use service, endpoint, method, approvals, require, submitter_counts, reason_required, delay, veto)", spec, k)
		}
	}
	if r.RequiredApprovals < 1 {
		return Rule{}, twokey.Errorf(twokey.EBadPayload, "rule %q needs approvals=N", spec)
	}
	return Normalize([]Rule{r})[0], nil
}

// ParseRequire reads slots as the command line writes them:
// "finance=1,security=1" (or with ':' for '='). A group named twice is
// refused here; whether the groups are set is ValidatePolicies' to say.
func ParseRequire(spec string) ([]Require, error) {
	var out []Require
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		g, n, ok := strings.Cut(part, "=")
		if !ok {
			g, n, ok = strings.Cut(part, ":")
		}
		k, err := strconv.Atoi(strings.TrimSpace(n))
		if !ok || err != nil {
			return nil, twokey.Errorf(twokey.EBadPayload, "require %q: write GROUP=K pairs separated by commas, e.g. finance=1,security=1", twokey.Clip(spec))
		}
		g = strings.TrimSpace(g)
		if !ValidGroupName(g) {
			return nil, twokey.Errorf(twokey.EBadPayload, "require %q: group name %q: use 1 to 32 of a-z, 0-9, _ and -", twokey.Clip(spec), twokey.Clip(g))
		}
		if k < 1 {
			return nil, twokey.Errorf(twokey.EBadPayload, "require %q: group %s needs at least 1 approval", twokey.Clip(spec), g)
		}
		if slices.ContainsFunc(out, func(r Require) bool { return r.Group == g }) {
			return nil, twokey.Errorf(twokey.EBadPayload, "require %q names group %s twice", twokey.Clip(spec), g)
		}
		out = append(out, Require{Group: g, Approvals: k})
	}
	if len(out) == 0 {
		return nil, twokey.Errorf(twokey.EBadPayload, "require %q names no group; write GROUP=K pairs, e.g. finance=1,security=1", twokey.Clip(spec))
	}
	return out, nil
}

// ParseDelay reads a cool-off: a Go duration in whole seconds ("15m",
// "1h30m", "90s") or a number of seconds, from 0 to MaxDelaySeconds.
func ParseDelay(s string) (int, error) {
	s = strings.TrimSpace(s)
	sec, err := strconv.Atoi(s)
	if err != nil {
		d, derr := time.ParseDuration(s)
		if derr != nil || d%time.Second != 0 {
			return 0, twokey.Errorf(twokey.EBadPayload, "delay %q: give a duration in whole seconds, e.g. 15m, 1h or 90s", twokey.Clip(s))
		}
		sec = int(d / time.Second)
	}
	if sec < 0 || sec > MaxDelaySeconds {
		return 0, twokey.Errorf(twokey.EBadPayload, "delay %q must lie between 0 and 7 days (168h)", twokey.Clip(s))
	}
	return sec, nil
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
		if len(r.Require) == 0 {
			r.Require = nil
		} else {
			r.Require = slices.Clone(r.Require)
		}
		if r.SubmitterCounts != nil && *r.SubmitterCounts {
			r.SubmitterCounts = nil
		} else if r.SubmitterCounts != nil {
			f := false
			r.SubmitterCounts = &f
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
		if r.DelaySeconds < 0 || r.DelaySeconds > MaxDelaySeconds || r.Veto < 0 || (r.Veto != 0 && r.DelaySeconds == 0) || len(r.Require) > twokey.MaxMembers {
			return twokey.Errorf(twokey.EBadPayload, "rule %d (%s): delay_seconds lies between 0 and %d, and veto applies only with a delay", i+1, r, MaxDelaySeconds)
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

// Spec writes r in the syntax ParseRule reads, so that
// ParseRule(r.Spec()) gives r back (for a normalized r whose values hold
// no comma).
func (r Rule) Spec() string {
	s := fmt.Sprintf("service=%s,endpoint=%s,method=%s,approvals=%d", r.Service, r.Endpoint, r.Method, r.RequiredApprovals)
	if len(r.Require) > 0 {
		parts := make([]string, len(r.Require))
		for i, q := range r.Require {
			parts[i] = fmt.Sprintf("%s:%d", q.Group, q.Approvals)
		}
		s += ",require=" + strings.Join(parts, "+")
	}
	if r.SubmitterCounts != nil && !*r.SubmitterCounts {
		s += ",submitter_counts=false"
	}
	if r.ReasonRequired {
		s += ",reason_required=true"
	}
	if r.DelaySeconds > 0 {
		s += fmt.Sprintf(",delay=%d", r.DelaySeconds)
	}
	if r.Veto > 0 {
		s += fmt.Sprintf(",veto=%d", r.Veto)
	}
	return s
}
