package gate

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// benchRequest is a pending request of 5 signers needing 3, approved by
// its submitter.
func benchRequest() *Request {
	signers := make([]string, 5)
	for i := range signers {
		signers[i] = fmt.Sprintf("%043d", i)
	}
	r, _ := NewRequest(Config{Enabled: true, Signers: signers, RequiredApprovals: 3}, "c",
		RequestPayload{RequestID: "r", Service: "fun", Method: "POST"}, "sha256:00", signers[0], "",
		Target{Service: "fun", Path: "/x", Method: "POST"}, time.Now().Add(time.Hour), 1)
	return r
}

// BenchmarkVote is the gate's part of one gate.approve as the engine runs
// it: Check, Clone (copy on write), Vote (which counts), and the clone the
// observer is handed.
func BenchmarkVote(b *testing.B) {
	r := benchRequest()
	now := time.Now()
	voter := r.Signers[1]
	b.Run("before", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := r.Check(voter, r.Digest, true, now); err != nil {
				b.Fatal(err)
			}
			c := legacyClone(r)
			if legacyVote(c, voter, true) != Recorded {
				b.Fatal("not recorded")
			}
			_ = legacyClone(c)
		}
	})
	b.Run("after", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := r.Check(voter, r.Digest, true, now); err != nil {
				b.Fatal(err)
			}
			c := r.Clone()
			if c.Vote(voter, true) != Recorded {
				b.Fatal("not recorded")
			}
			_ = c.Clone()
		}
	})
}

// legacyClone, legacyVote and legacyCount are Clone, Vote and Count as
// they were before the hot-path work, for BenchmarkVote and the tests.
func legacyClone(r *Request) *Request {
	c := *r
	c.Signers = slices.Clone(r.Signers)
	c.Approvals = slices.Clone(r.Approvals)
	c.Rejections = slices.Clone(r.Rejections)
	if r.Rule != nil {
		rule := *r.Rule
		c.Rule = &rule
	}
	if r.Result != nil {
		res := *r.Result
		c.Result = &res
	}
	return &c
}

func legacyVote(r *Request, signer string, approve bool) Outcome {
	if approve {
		r.Approvals = append(r.Approvals, signer)
		if legacyCount(r) >= r.Required {
			r.State = StateExecuting
			return Execute
		}
		return Recorded
	}
	r.Rejections = append(r.Rejections, signer)
	if len(r.Signers)-len(r.Rejections) < r.Required {
		r.State = StateRejected
		return Reject
	}
	return Recorded
}

func legacyCount(r *Request) int {
	n := 0
	seen := map[string]bool{}
	for _, a := range r.Approvals {
		if !seen[a] && r.IsSigner(a) {
			seen[a] = true
			n++
		}
	}
	return n
}

// TestCloneMatchesLegacy: Clone is the deep copy it was, nil and empty vote
// lists kept apart (they marshal as null and []).
func TestCloneMatchesLegacy(t *testing.T) {
	r := benchRequest()
	rule := Rule{Service: "s", RequiredApprovals: 2}
	for _, set := range []func(*Request){
		func(*Request) {},
		func(r *Request) { r.Approvals, r.Rejections = nil, nil },
		func(r *Request) {
			r.Rejections = []string{r.Signers[4]}
			r.Rule = &rule
			r.Result = &Result{Reason: "x"}
		},
	} {
		set(r)
		c, l := r.Clone(), legacyClone(r)
		if !reflect.DeepEqual(c, l) || (c.Approvals == nil) != (r.Approvals == nil) || (c.Rejections == nil) != (r.Rejections == nil) {
			t.Fatalf("Clone %+v, legacy %+v", c, l)
		}
		if len(r.Approvals) > 0 && &c.Approvals[0] == &r.Approvals[0] || r.Rule != nil && c.Rule == r.Rule {
			t.Fatal("Clone shares memory with the original")
		}
		c.Vote(r.Signers[2], true)
		if len(r.Approvals) != len(l.Approvals) {
			t.Fatal("a vote on the clone changed the original")
		}
	}
}
