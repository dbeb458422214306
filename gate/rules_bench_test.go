package gate

import (
	"fmt"
	"testing"
)

// BenchmarkThreshold is the rule lookup a submission makes, with 10 and
// 1,000 rules (the most a conversation may hold). It reads only the
// conversation's own rules, so the number of conversations on the server
// does not enter; the cost is linear in the rules. The target matches
// none of the specific rules, so every rule is looked at.
func BenchmarkThreshold(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			rules := make([]Rule, 0, n)
			for i := range n - 1 {
				rules = append(rules, Rule{Service: fmt.Sprintf("svc%d", i%50), Endpoint: fmt.Sprintf("/v1/things/%d", i),
					Method: []string{"GET", "POST", Any}[i%3], RequiredApprovals: 2})
			}
			rules = append(rules, Rule{Service: "github", Endpoint: Any, Method: Any, RequiredApprovals: 3})
			rules = Normalize(rules)
			if err := ValidateRules(rules, 5); err != nil {
				b.Fatal(err)
			}
			t := Target{Service: "github", Path: "/repos/x/y/issues", Method: "POST"}
			b.ReportAllocs()
			for b.Loop() {
				if m, _ := Threshold(2, rules, t); m != 3 {
					b.Fatalf("M = %d, want 3", m)
				}
			}
		})
	}
}
