package gate

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
)

// FuzzPayloads decodes arbitrary signed-payload bytes as each gate.* and
// member.* payload, the way the engine does (CheckJSON, then the struct),
// and runs what decides on them: enabling, proposals, rule selection. None
// may panic, and every refusal is a classified error.
func FuzzPayloads(f *testing.F) {
	const hdr = `"conversation":"0b5e8a3c-1c2d-4e5f-8a9b-0c1d2e3f4a5b","created_at":"2026-11-22T12:00:00.000Z","gateway":"Fa1OciY9X7FsbSX8Wpi9GritFDWAEycVSJhZXl3hxpM"`
	for _, s := range []string{
		`{` + hdr + `,"required_approvals":2,"rules":[{"service":"httpbin","endpoint":"/item/{id}.json","method":"get","required_approvals":3}]}`,
		`{` + hdr + `,"request_id":"11111111-1111-4111-8111-111111111111","service":"httpbin","method":"POST","url":"http://127.0.0.1:1/httpbin/post","headers":{"X-A":"1"},"body":{"a":[1,{"b":null}]},"expires_at":"2026-11-22T13:00:00Z","params":{"x":"y"}}`,
		`{` + hdr + `,"request_id":"11111111-1111-4111-8111-111111111111","request_digest":"sha256:00","reason":"no"}`,
		`{` + hdr + `,"proposal_id":"22222222-2222-4222-8222-222222222222","add":[{"key":"Fa1OciY9X7FsbSX8Wpi9GritFDWAEycVSJhZXl3hxpM","name":"d"}],"remove":["AAAA"],"required_approvals":1,"rules":[]}`,
		`{` + hdr + `,"secret_id":"x","service":"httpbin","header_name":"X-Api-Key","header_template":"{value}","ttl_seconds":-1,"sealed":"AAAA"}`,
		`{` + hdr + `,"rules":null,"required_approvals":-1}`,
		`{"URL":1,"url":2}`,
		`[` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `]`,
	} {
		f.Add([]byte(s))
	}
	k := func(i byte) string {
		b := make([]byte, 32)
		b[0], b[1] = 9, i
		return conversation.KeyID(b)
	}
	members := []conversation.Member{{Key: k(1), Name: "a"}, {Key: k(2), Name: "b"}, {Key: k(3), Name: "c"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := conversation.CheckJSON(data); err != nil {
			if twokey.ErrorCode(err) != twokey.EBadPayload {
				t.Fatalf("CheckJSON refused with %v", err)
			}
			return
		}
		classified := func(err error) {
			if err != nil && twokey.ErrorCode(err) == twokey.EInternal {
				t.Fatalf("unclassified refusal: %v", err)
			}
		}
		var en EnablePayload
		if json.Unmarshal(data, &en) == nil {
			cfg, err := Enable(en, []string{k(1), k(2), k(3)})
			classified(err)
			if err == nil {
				if cfg.RequiredApprovals < 1 || cfg.RequiredApprovals > 3 || ValidateRules(cfg.Rules, 3) != nil {
					t.Fatalf("Enable accepted an impossible gate: %+v", cfg)
				}
				var rp RequestPayload
				if json.Unmarshal(data, &rp) == nil {
					m, r := Threshold(cfg.RequiredApprovals, cfg.Rules, Target{Service: rp.Service, Path: rp.URL, Method: rp.Method})
					if m < 1 || m > 3 || (r != nil && r.RequiredApprovals != m) {
						t.Fatalf("threshold %d from rule %v", m, r)
					}
				}
			}
		}
		var pp ProposePayload
		if json.Unmarshal(data, &pp) == nil {
			cfg := Config{Enabled: true, Signers: []string{k(1), k(2), k(3)}, RequiredApprovals: 2}
			prop, next, mem, err := Propose(cfg, members, k(1), pp, "sha256:x")
			classified(err)
			if err == nil {
				if next.RequiredApprovals < 1 || next.RequiredApprovals > len(next.Signers) || len(next.Signers) != len(mem) {
					t.Fatalf("Propose leads to an impossible gate: %+v with %d members", next, len(mem))
				}
				if len(prop.Needed) == 0 {
					t.Fatal("a proposal that needs nobody's approval")
				}
			}
		}
		for _, v := range []any{&RequestPayload{}, &VotePayload{}, &SecretPayload{}, &RevokePayload{},
			&CancelPayload{}, &MemberApprovePayload{}, &ExecutedPayload{}, &ResponsePayload{}, &ClosedPayload{}, &ChangedPayload{}} {
			_ = json.Unmarshal(data, v)
		}
	})
}

// FuzzRuleSelection checks the specificity law on arbitrary rule sets:
// the rule Select picks applies to the target, no applicable rule is more
// specific, and among equally specific ones none is stricter.
func FuzzRuleSelection(f *testing.F) {
	f.Add(`[{"service":"s","endpoint":"/a/{x}","method":"GET","required_approvals":3},{"service":"s","endpoint":"/a/1","method":"GET","required_approvals":1},{"service":"*","endpoint":"*","method":"*","required_approvals":2}]`, "s", "/a/1", "/a/{x}", "GET")
	f.Add(`[{"service":"s","required_approvals":2},{"method":"post","required_approvals":1}]`, "s", "/", "", "POST")
	f.Fuzz(func(t *testing.T, rulesJSON, service, path, pattern, method string) {
		var rules []Rule
		if json.Unmarshal([]byte(rulesJSON), &rules) != nil {
			return
		}
		rules = Normalize(rules)
		if ValidateRules(rules, 5) != nil {
			return
		}
		tg := Target{Service: service, Path: path, Pattern: pattern, Method: method}
		got := Select(rules, tg)
		for i := range rules {
			r := rules[i]
			if !r.Matches(tg) {
				continue
			}
			if got == nil {
				t.Fatalf("rule %v applies but none was selected", r)
			}
			if r.Score() > got.Score() || (r.Score() == got.Score() && r.RequiredApprovals > got.RequiredApprovals) {
				t.Fatalf("selected %v over the more specific or stricter %v", *got, r)
			}
		}
		if got != nil && !got.Matches(tg) {
			t.Fatalf("selected %v, which does not apply", *got)
		}
		// The wider reading covers whatever the contract's does, and
		// Threshold is never below the contract's M.
		for _, r := range rules {
			if r.Matches(tg) && !r.Covers(tg) {
				t.Fatalf("%v matches but does not cover %+v", r, tg)
			}
		}
		contract := 3
		if got != nil {
			contract = got.RequiredApprovals
		}
		if m, _ := Threshold(3, rules, tg); m < contract {
			t.Fatalf("Threshold %d below the contract's %d", m, contract)
		}
	})
}

// spec writes r in ParseRule's syntax. (String is the display form, not
// this one.)
func spec(r Rule) string {
	return r.Spec()
}

// FuzzParseRule reads arbitrary --rule specs. None may panic; a refusal is
// bad_payload; an accepted rule is normalized, has M of at least 1, and
// reads back unchanged from its own spec (no value holds a comma: the
// pairs are split at commas).
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"service=httpbin,endpoint=/post,method=POST,approvals=3",
		"approvals=1",
		"service=hackernews,approvals=2",
		"method=get,approvals=+02",
		" method =delete,approvals=1,approvals=4",
		"endpoint=/item/{id}.json,approvals=2",
		"service=stripe,approvals=3,require=finance:1+security:1,submitter_counts=false,reason_required=true,delay=15m,veto=2",
		"approvals=2,delay=90,veto=1",
		"approvals=2,require=a=1",
		"endpoint=/a=b,approvals=1",
		"service=,endpoint=,method=,approvals=1",
		"service=x",
		"approvals=0",
		"approvals=two",
		"colour=red,approvals=1",
		"httpbin POST /post -> 3",
		"",
		",",
		"method=\xff\xfe,approvals=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			if twokey.ErrorCode(err) != twokey.EBadPayload || !strings.Contains(twokey.ErrorMessage(err), fmt.Sprintf("%q", s)) {
				t.Fatalf("ParseRule(%q) refused with %v", s, err)
			}
			return
		}
		if r.RequiredApprovals < 1 {
			t.Fatalf("ParseRule(%q) = %+v: M below 1", s, r)
		}
		if n := Normalize([]Rule{r})[0]; !n.Equal(r) {
			t.Fatalf("ParseRule(%q) = %+v, not normalized (%+v)", s, r, n)
		}
		back, err := ParseRule(spec(r))
		if err != nil || !back.Equal(r) {
			t.Fatalf("ParseRule(%q) = %+v; its spec %q reads back as %+v, %v", s, r, spec(r), back, err)
		}
	})
}
