package audit

import (
	"fmt"
	"strings"

	"github.com/twokey/twokey/gate"
)

// Report summarizes a log that verified.
type Report struct {
	Conversation string
	Name         string
	Gateway      string
	Records      uint64
	Chain        string
	Members      int
	Signers      int
	Required     int
	Rules        int

	Requests    int
	Executed    int
	Failed      int
	Interrupted int
	Expired     int
	Rejected    int
	Cancelled   int
	Pending     int
	Executing   int
	// Approvals counts the distinct valid approvals behind every request
	// that reached execution (executed, or failed once executing).
	Approvals          int
	MembershipChanges  int
	Checkpoints        []uint64 // seqs of signed checkpoints that matched
	Anchors            []uint64 // seqs of kept chain values that matched
	CheckpointCoverage uint64   // the highest seq a gateway checkpoint covers
	// Shadows are the final rule set's rules that override a stricter,
	// broader rule (legal, but worth saying).
	Shadows []gate.Shadow
	// Executions are the requests that reached execution (executed, or
	// failed once executing), in log order, with the decision facts the
	// gateway signed and the audit re-derived.
	Executions []Execution
}

// Execution is one request that reached execution.
type Execution struct {
	Seq       uint64 // the gateway record that closed it
	RequestID string
	Service   string
	Method    string
	Endpoint  string     // as the gateway signed it, checked against the URL and the export
	Required  int        // M, as signed and as the rules in force at submission give it
	Rule      *gate.Rule // the rule that set M; nil for the conversation's default
	Approvals int        // distinct valid approvals
	Outcome   string     // "executed", or "failed <reason>"
}

// RuleText is the rule that set M, or "default".
func (e Execution) RuleText() string {
	if e.Rule == nil {
		return "default"
	}
	return "rule " + e.Rule.String()
}

// Summary is the report as lines for a person.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "conversation %s (%s)\n", r.Name, r.Conversation)
	fmt.Fprintf(&b, "gateway      %s\n", r.Gateway)
	fmt.Fprintf(&b, "records      1..%d: every signature, author and body verified; hash chain recomputed from record 1 (%s)\n", r.Records, r.Chain)
	fmt.Fprintf(&b, "membership   %d member%s, %d signer%s, default M %d, %d rule%s, %d governed change%s (each approved by every signer it needed)\n",
		r.Members, plural(r.Members), r.Signers, plural(r.Signers), r.Required, r.Rules, plural(r.Rules), r.MembershipChanges, plural(r.MembershipChanges))
	fmt.Fprintf(&b, "requests     %d submitted: %d executed, %d failed (%d interrupted), %d expired, %d rejected, %d cancelled, %d pending, %d executing\n",
		r.Requests, r.Executed, r.Failed, r.Interrupted, r.Expired, r.Rejected, r.Cancelled, r.Pending, r.Executing)
	fmt.Fprintf(&b, "executions   each had M distinct valid approvals under the rule and membership of its time (%d approval%s in all); none ran twice\n", r.Approvals, plural(r.Approvals))
	for _, e := range r.Executions {
		fmt.Fprintf(&b, "execution    record %d: request %s %s %s %s: M %d by %s, %d approval%s, %s\n",
			e.Seq, e.RequestID, e.Method, e.Service, e.Endpoint, e.Required, e.RuleText(), e.Approvals, plural(e.Approvals), e.Outcome)
	}
	for _, s := range r.Checkpoints {
		fmt.Fprintf(&b, "checkpoint   seq %d, signed by the gateway, matches the chain\n", s)
	}
	for _, s := range r.Anchors {
		fmt.Fprintf(&b, "anchor       seq %d, a chain value you kept, matches\n", s)
	}
	for _, s := range r.Shadows {
		fmt.Fprintf(&b, "rules        note: %s\n", s)
	}
	if r.CheckpointCoverage < r.Records {
		fmt.Fprintf(&b, "note         records %d..%d came after the newest checkpoint: verified, but not yet vouched for by one\n", r.CheckpointCoverage+1, r.Records)
	}
	b.WriteString("OK\n")
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
