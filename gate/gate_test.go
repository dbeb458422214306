package gate

import (
	"testing"
	"time"

	"github.com/twokey/twokey"
)

func TestSelectBySpecificityEveryTier(t *testing.T) {
	all := []Rule{
		{Service: "stripe", Endpoint: "/v1/charges", Method: "POST", RequiredApprovals: 7},
		{Service: "stripe", Endpoint: "/v1/charges", Method: "*", RequiredApprovals: 6},
		{Service: "stripe", Endpoint: "*", Method: "POST", RequiredApprovals: 5},
		{Service: "stripe", Endpoint: "*", Method: "*", RequiredApprovals: 4},
		{Service: "*", Endpoint: "/v1/charges", Method: "POST", RequiredApprovals: 3},
		{Service: "*", Endpoint: "/v1/charges", Method: "*", RequiredApprovals: 2},
		{Service: "*", Endpoint: "*", Method: "POST", RequiredApprovals: 1},
		{Service: "*", Endpoint: "*", Method: "*", RequiredApprovals: 8}, // score 0; M chosen so it is distinguishable
	}
	target := Target{Service: "stripe", Path: "/v1/charges", Method: "POST"}
	// Remove the most specific rule one at a time: the next tier must win.
	for tier := 0; tier < len(all); tier++ {
		rules := all[tier:]
		got := Select(rules, target)
		if got == nil || got.RequiredApprovals != all[tier].RequiredApprovals {
			t.Fatalf("with rules from tier %d, selected %v, want %v", tier, got, all[tier])
		}
		if got.Score() != 7-tier {
			t.Fatalf("tier %d scored %d", tier, got.Score())
		}
	}
	if Select(nil, target) != nil {
		t.Fatal("no rules selected something")
	}
	if m, r := Threshold(2, nil, target); m != 2 || r != nil {
		t.Fatalf("default: %d %v", m, r)
	}
	// Non-matching rules never apply.
	if r := Select([]Rule{{Service: "github", Endpoint: "*", Method: "*", RequiredApprovals: 3}, {Service: "*", Endpoint: "/v1/refunds", Method: "*", RequiredApprovals: 3}, {Service: "*", Endpoint: "*", Method: "GET", RequiredApprovals: 3}}, target); r != nil {
		t.Fatalf("a non-matching rule applied: %v", r)
	}
}

func TestEndpointMatchesPatternOrPath(t *testing.T) {
	rules := []Rule{{Service: "hackernews", Endpoint: "/item/{id}.json", Method: "*", RequiredApprovals: 3}}
	templated := Target{Service: "hackernews", Path: "/item/8863.json", Pattern: "/item/{id}.json", Method: "GET"}
	bare := Target{Service: "hackernews", Path: "/item/8863.json", Method: "GET"}
	if r := Select(rules, templated); r == nil {
		t.Fatal("pattern rule did not apply to a templated request (PROTOCOL 6)")
	}
	// By the contract's letter a pattern rule needs the template named...
	if r := Select(rules, bare); r != nil {
		t.Fatal("Select (the contract's reading) applied a pattern rule to a request naming no template")
	}
	// ...but leaving the template out cannot escape it.
	if m, r := Threshold(1, rules, bare); m != 3 || r == nil {
		t.Fatalf("pattern rule escaped by leaving out the template: M=%d rule=%v", m, r)
	}
	for _, path := range []string{"/item/8863.json/x", "/item/.json/", "/items/8863.json", "/item/8863.jsonx"} {
		if m, _ := Threshold(1, rules, Target{Service: "hackernews", Path: path, Method: "GET"}); m != 1 {
			t.Fatalf("pattern rule applied to %s", path)
		}
	}
	concrete := []Rule{{Service: "hackernews", Endpoint: "/item/8863.json", Method: "*", RequiredApprovals: 3}}
	if r := Select(concrete, templated); r == nil {
		t.Fatal("concrete-path rule did not apply")
	}
	// Pattern and path rules tie at one score: the stricter wins, so a
	// weaker rule spelled the other way cannot shadow it.
	both := []Rule{{Service: "hackernews", Endpoint: "/item/{id}.json", Method: "GET", RequiredApprovals: 3}, {Service: "hackernews", Endpoint: "/item/8863.json", Method: "GET", RequiredApprovals: 1}}
	if r := Select(both, templated); r.RequiredApprovals != 3 {
		t.Fatalf("tie went to the weaker rule: %v", r)
	}
	if m, _ := Threshold(1, both, bare); m != 3 {
		t.Fatalf("without the template the weaker path rule won: M=%d", m)
	}
}

// Other spellings of one endpoint (a trailing slash, path parameters after
// ';') fall under the same stricter rules, concrete or pattern; and the
// wider reading never lowers M below the contract's.
func TestEndpointSpellingsCannotEscapeARule(t *testing.T) {
	rules := []Rule{{Service: "bank", Endpoint: "/admin", Method: "*", RequiredApprovals: 3}, {Service: "bank", Endpoint: "/users/{id}", Method: "DELETE", RequiredApprovals: 3}, {Service: "bank", Endpoint: "*", Method: "*", RequiredApprovals: 1}}
	for _, tc := range []struct {
		path, method string
		want         int
	}{
		{"/admin", "GET", 3},
		{"/admin/", "GET", 3},
		{"/admin;x=1", "GET", 3},
		{"/admin;", "POST", 3},
		{"/users/7", "DELETE", 3},
		{"/users/7/", "DELETE", 3},
		{"/users/7;v=2", "DELETE", 3},
		{"/users;a/7;b", "DELETE", 3},
		{"/administrator", "GET", 1},
		{"/users/7/keys", "DELETE", 1},
		{"/", "GET", 1},
	} {
		if m, _ := Threshold(1, rules, Target{Service: "bank", Path: tc.path, Method: tc.method}); m != tc.want {
			t.Errorf("%s %s: M=%d, want %d", tc.method, tc.path, m, tc.want)
		}
	}
	// A weaker, more specific rule does not spread to other spellings: by
	// the contract /admin/ falls under the service rule's 3, and so it does.
	weak := []Rule{{Service: "bank", Endpoint: "*", Method: "*", RequiredApprovals: 3}, {Service: "bank", Endpoint: "/admin", Method: "*", RequiredApprovals: 1}}
	for path, want := range map[string]int{"/admin": 1, "/admin/": 3, "/admin;x": 3, "/other": 3} {
		if m, _ := Threshold(2, weak, Target{Service: "bank", Path: path, Method: "GET"}); m != want {
			t.Errorf("weak rule, %s: M=%d, want %d", path, m, want)
		}
	}
}

// Threshold is never below the contract's M, whatever the rules: the
// wider reading only ever raises it.
func TestThresholdNeverBelowTheContract(t *testing.T) {
	rules := []Rule{{Service: "s", Endpoint: "/a/{x}", Method: "GET", RequiredApprovals: 1}, {Service: "s", Endpoint: "/a/1", Method: "*", RequiredApprovals: 2}, {Service: "s", Endpoint: "*", Method: "GET", RequiredApprovals: 3}, {Service: "*", Endpoint: "/a/1/", Method: "*", RequiredApprovals: 2}, {Service: "s", Endpoint: "/a", Method: "*", RequiredApprovals: 4}}
	for _, path := range []string{"/a/1", "/a/1/", "/a/1;p", "/a", "/a/", "/a/2", "/b"} {
		for _, pattern := range []string{"", "/a/{x}"} {
			tg := Target{Service: "s", Path: path, Pattern: pattern, Method: "GET"}
			want := 5
			if r := Select(rules, tg); r != nil {
				want = r.RequiredApprovals
			}
			if m, _ := Threshold(5, rules, tg); m < want {
				t.Errorf("%s (pattern %q): M=%d below the contract's %d", path, pattern, m, want)
			}
		}
	}
}

func TestValidateRules(t *testing.T) {
	for name, tc := range map[string]struct {
		rules []Rule
		ok    bool
	}{
		"fine":              {[]Rule{{Service: "s", Endpoint: "/a", Method: "GET", RequiredApprovals: 2}, {Service: "s", Endpoint: "*", Method: "*", RequiredApprovals: 1}}, true},
		"M zero":            {[]Rule{{Service: "s", Endpoint: "*", Method: "*", RequiredApprovals: 0}}, false},
		"M above signers":   {[]Rule{{Service: "s", Endpoint: "*", Method: "*", RequiredApprovals: 4}}, false},
		"duplicate triple":  {[]Rule{{Service: "s", Endpoint: "/a", Method: "GET", RequiredApprovals: 2}, {Service: "s", Endpoint: "/a", Method: "get", RequiredApprovals: 3}}, false},
		"endpoint no slash": {[]Rule{{Service: "s", Endpoint: "a", Method: "GET", RequiredApprovals: 2}}, false},
		"empty field":       {[]Rule{{Service: "", Endpoint: "*", Method: "*", RequiredApprovals: 1}}, false},
		"pattern":           {[]Rule{{Service: "s", Endpoint: "/item/{id}.json", Method: "GET", RequiredApprovals: 2}}, true},
		"broken pattern":    {[]Rule{{Service: "s", Endpoint: "/item/{id.json", Method: "GET", RequiredApprovals: 2}}, false},
		"query in endpoint": {[]Rule{{Service: "s", Endpoint: "/api.php?amount=1", Method: "GET", RequiredApprovals: 2}}, false},
		"fragment":          {[]Rule{{Service: "s", Endpoint: "/a#b", Method: "GET", RequiredApprovals: 2}}, false},
		"space":             {[]Rule{{Service: "s", Endpoint: "/a b", Method: "GET", RequiredApprovals: 2}}, false},
	} {
		err := ValidateRules(tc.rules, 3)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err=%v", name, err)
		}
		if err != nil && twokey.ErrorCode(err) != twokey.EBadPayload {
			t.Errorf("%s: code %s", name, twokey.ErrorCode(err))
		}
	}
}

func TestVoteStateMachine(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	r := &Request{ID: "r", Digest: "sha256:x", Signers: []string{"a", "b", "c"}, Required: 2, State: StatePending, ExpiresAt: now.Add(time.Hour)}
	if r.Vote("a", true) != Recorded {
		t.Fatal("first approval executed")
	}
	if err := r.Check("a", "sha256:x", true, now); twokey.ErrorCode(err) != twokey.EAlreadyVoted {
		t.Fatalf("second vote: %v", err)
	}
	if err := r.Check("z", "sha256:x", true, now); twokey.ErrorCode(err) != twokey.ENotSigner {
		t.Fatalf("stranger: %v", err)
	}
	if err := r.Check("b", "sha256:y", true, now); twokey.ErrorCode(err) != twokey.EDigestMismatch {
		t.Fatalf("wrong digest: %v", err)
	}
	if err := r.Check("b", "sha256:x", true, now.Add(time.Hour)); twokey.ErrorCode(err) != twokey.ERequestExpired {
		t.Fatalf("at expiry: %v", err)
	}
	if err := r.Check("b", "sha256:x", true, now); err != nil {
		t.Fatal(err)
	}
	if r.Vote("b", true) != Execute || r.State != StateExecuting {
		t.Fatal("threshold crossing did not execute")
	}
	if err := r.Check("c", "sha256:x", true, now); twokey.ErrorCode(err) != twokey.ERequestClosed {
		t.Fatalf("vote after resolution: %v", err)
	}
	// Approvals by a key not among the signers never count.
	q := &Request{Signers: []string{"a", "b"}, Required: 2, Approvals: []string{"a", "a", "x"}}
	if q.Count() != 1 {
		t.Fatalf("count %d, want 1", q.Count())
	}
	// Rejections end the request once M is out of reach.
	s := &Request{Signers: []string{"a", "b", "c"}, Required: 2, State: StatePending}
	if s.Vote("a", false) != Recorded || s.Vote("b", false) != Reject || s.State != StateRejected {
		t.Fatal("rejection arithmetic")
	}
}

// TestParseRule reads --rule specs: fields by name, omitted ones *, the
// method upper-cased, approvals required; and refuses, naming the spec,
// what is not key=value pairs, an unknown field, or approvals that are
// not a number of at least 1.
func TestParseRule(t *testing.T) {
	for _, c := range []struct {
		spec string
		want Rule
	}{
		{"service=httpbin,endpoint=/post,method=post,approvals=3", Rule{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 3}},
		{"approvals=1", Rule{Service: Any, Endpoint: Any, Method: Any, RequiredApprovals: 1}},
		{"service=hackernews,approvals=2", Rule{Service: "hackernews", Endpoint: Any, Method: Any, RequiredApprovals: 2}},
		{"endpoint=/item/{id}.json, method=GET,approvals=2", Rule{Service: Any, Endpoint: "/item/{id}.json", Method: "GET", RequiredApprovals: 2}},
		{"endpoint=/a=b,approvals=1,approvals=4", Rule{Service: Any, Endpoint: "/a=b", Method: Any, RequiredApprovals: 4}},
		{"service=,method=*,approvals=1", Rule{Service: Any, Endpoint: Any, Method: Any, RequiredApprovals: 1}},
	} {
		got, err := ParseRule(c.spec)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", c.spec, got, err, c.want)
		}
	}
	for spec, want := range map[string]string{
		"service=x":               "rule \"service=x\" needs approvals=N",
		"approvals=0":             "rule \"approvals=0\" needs approvals=N",
		"approvals=two":           "rule \"approvals=two\": approvals must be a number",
		"colour=red,approvals=1":  "rule \"colour=red,approvals=1\": unknown field \"colour\" (use service, endpoint, method, approvals, require, submitter_counts, reason_required, delay, veto)",
		"httpbin POST /post -> 3": "rule \"httpbin POST /post -> 3\": write key=value pairs separated by commas",
		"service=s,,approvals=1":  "rule \"service=s,,approvals=1\": write key=value pairs separated by commas",
		"":                        "rule \"\": write key=value pairs separated by commas",
	} {
		_, err := ParseRule(spec)
		if twokey.ErrorCode(err) != twokey.EBadPayload || twokey.ErrorMessage(err) != want {
			t.Errorf("ParseRule(%q): %v; want bad_payload %q", spec, err, want)
		}
	}
	// String is the display form, not the syntax ParseRule reads: the two
	// do not round-trip, and ParseRule says so rather than misreading it.
	r := Rule{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 3}
	if _, err := ParseRule(r.String()); err == nil {
		t.Errorf("ParseRule(%q) accepted the display form", r.String())
	}
	if got, err := ParseRules(nil); err != nil || got == nil || len(got) != 0 {
		t.Errorf("ParseRules(nil) = %#v, %v; want an empty set", got, err)
	}
	if got, err := ParseRules([]string{"approvals=1", "service=s,approvals=2"}); err != nil || len(got) != 2 || !got[1].Equal(Rule{Service: "s", Endpoint: Any, Method: Any, RequiredApprovals: 2}) {
		t.Errorf("ParseRules = %+v, %v", got, err)
	}
	if _, err := ParseRules([]string{"approvals=1", "approvals=0"}); err == nil {
		t.Error("ParseRules accepted a bad second rule")
	}
}
