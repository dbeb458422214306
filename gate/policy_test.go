package gate

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/twokey/twokey"
)

// polValid says why assignment a is not a valid filling of p's slots by
// the approvers counted from approvers, or "" when it is: every assigned
// key counted and in its group, each group given exactly the sum of its
// entries' approvals, no key twice (a map cannot say twice).
func polValid(p Policy, groups map[string][]string, approvers []string, submitter string, a map[string]string) string {
	want := map[string]int{}
	for _, r := range p.Require {
		if r.Approvals > 0 {
			want[r.Group] += r.Approvals
		}
	}
	got := map[string]int{}
	for k, g := range a {
		if !slices.Contains(approvers, k) || (!p.SubmitterCounts && k == submitter) {
			return fmt.Sprintf("%s is not a counted approver", k)
		}
		if !slices.Contains(groups[g], k) {
			return fmt.Sprintf("%s fills a slot of %s but is not in it", k, g)
		}
		got[g]++
	}
	if !maps.Equal(got, want) {
		return fmt.Sprintf("slots filled per group %v, want %v", got, want)
	}
	return ""
}

func TestMatch(t *testing.T) {
	groups := map[string][]string{
		"finance":  {"a", "b"},
		"security": {"b", "c"},
		"ops":      {"d"},
		"all":      {"a", "b", "c", "d", "s"},
		"solo":     {"s"},
		"empty":    {},
	}
	req := func(rs ...any) []Require {
		var out []Require
		for i := 0; i < len(rs); i += 2 {
			out = append(out, Require{rs[i].(string), rs[i+1].(int)})
		}
		return out
	}
	tests := []struct {
		name      string
		p         Policy
		approvers []string
		submitter string
		want      map[string]string // nil with ok false
		ok        bool
	}{
		{"plain count met", Policy{RequiredApprovals: 2, SubmitterCounts: true}, []string{"a", "b"}, "a", nil, true},
		{"plain count short", Policy{RequiredApprovals: 2, SubmitterCounts: true}, []string{"a"}, "a", nil, false},
		{"duplicates count once", Policy{RequiredApprovals: 2, SubmitterCounts: true}, []string{"a", "a", "a"}, "a", nil, false},
		{"duplicates count once, enough", Policy{RequiredApprovals: 2, SubmitterCounts: true}, []string{"b", "a", "b"}, "a", nil, true},
		{"submitter counts", Policy{RequiredApprovals: 2, SubmitterCounts: true}, []string{"s", "a"}, "s", nil, true},
		{"submitter excluded", Policy{RequiredApprovals: 2}, []string{"s", "a"}, "s", nil, false},
		{"submitter excluded, others enough", Policy{RequiredApprovals: 2}, []string{"s", "a", "b"}, "s", nil, true},
		{"submitter's slot refused", Policy{RequiredApprovals: 1, Require: req("solo", 1)}, []string{"s", "a"}, "s", nil, false},
		{"submitter's slot counted", Policy{RequiredApprovals: 1, Require: req("solo", 1), SubmitterCounts: true}, []string{"s"}, "s", map[string]string{"s": "solo"}, true},
		{"submitter excluded, another fills", Policy{RequiredApprovals: 1, Require: req("finance", 1)}, []string{"a", "b"}, "a", map[string]string{"b": "finance"}, true},
		{"overlap: b cannot fill two slots", Policy{RequiredApprovals: 2, Require: req("finance", 1, "security", 1), SubmitterCounts: true}, []string{"b", "d"}, "d", nil, false},
		{"overlap: b and c", Policy{RequiredApprovals: 2, Require: req("security", 1, "finance", 1), SubmitterCounts: true}, []string{"c", "b"}, "c", map[string]string{"b": "finance", "c": "security"}, true},
		{"overlap: b moves to security", Policy{RequiredApprovals: 2, Require: req("finance", 1, "security", 1), SubmitterCounts: true}, []string{"a", "b"}, "a", map[string]string{"a": "finance", "b": "security"}, true},
		{"one key in every group is one approval", Policy{RequiredApprovals: 3, Require: req("all", 1, "finance", 1, "security", 1), SubmitterCounts: true}, []string{"b", "d", "s"}, "s", nil, false},
		{"one key in every group, others fill the rest", Policy{RequiredApprovals: 3, Require: req("all", 1, "finance", 1, "security", 1), SubmitterCounts: true}, []string{"a", "b", "d"}, "d", map[string]string{"a": "finance", "b": "security", "d": "all"}, true},
		// all's slot comes first (sorted) and takes a; finance then needs
		// a, so the augmenting path moves all's slot to another key.
		{"a slot only one key can fill", Policy{RequiredApprovals: 2, Require: req("finance", 1, "all", 1), SubmitterCounts: true}, []string{"a", "c"}, "c", map[string]string{"a": "finance", "c": "all"}, true},
		{"only d fills ops", Policy{RequiredApprovals: 3, Require: req("all", 2, "ops", 1), SubmitterCounts: true}, []string{"a", "b", "d"}, "a", map[string]string{"a": "all", "b": "all", "d": "ops"}, true},
		{"K of one group", Policy{RequiredApprovals: 3, Require: req("all", 2), SubmitterCounts: true}, []string{"x", "c", "a"}, "x", map[string]string{"a": "all", "c": "all"}, true},
		{"counted outside slots is absent", Policy{RequiredApprovals: 3, Require: req("ops", 1), SubmitterCounts: true}, []string{"a", "d", "x"}, "x", map[string]string{"d": "ops"}, true},
		{"slots met, count short", Policy{RequiredApprovals: 3, Require: req("finance", 1, "ops", 1), SubmitterCounts: true}, []string{"a", "d"}, "a", nil, false},
		{"impossible: group smaller than K", Policy{RequiredApprovals: 2, Require: req("ops", 2), SubmitterCounts: true}, []string{"a", "b", "c", "d", "s"}, "s", nil, false},
		{"impossible: empty group", Policy{RequiredApprovals: 1, Require: req("empty", 1), SubmitterCounts: true}, []string{"a", "b"}, "a", nil, false},
		{"impossible: group not set", Policy{RequiredApprovals: 1, Require: req("ghost", 1), SubmitterCounts: true}, []string{"a", "b"}, "a", nil, false},
		{"impossible: huge K", Policy{RequiredApprovals: 1, Require: req("all", 1<<40), SubmitterCounts: true}, []string{"a", "b"}, "a", nil, false},
		{"impossible: many huge K", Policy{RequiredApprovals: 1, Require: req("all", 1<<62, "all", 1<<62, "all", 1<<62), SubmitterCounts: true}, []string{"a", "b"}, "a", nil, false},
		{"no approvers", Policy{RequiredApprovals: 1, SubmitterCounts: true}, nil, "a", nil, false},
		{"K below 1 adds no slot", Policy{RequiredApprovals: 1, Require: req("ops", 0, "ghost", -3), SubmitterCounts: true}, []string{"a"}, "a", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Match(tt.p, groups, tt.approvers, tt.submitter)
			if ok != tt.ok || !maps.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Fatalf("Match = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
			if ok {
				if why := polValid(tt.p, groups, tt.approvers, tt.submitter, got); why != "" {
					t.Fatalf("assignment %v: %s", got, why)
				}
			}
			// With nobody left undecided, Reachable is Match.
			if r := Reachable(tt.p, groups, tt.approvers, nil, tt.submitter); r != ok {
				t.Fatalf("Reachable with nobody undecided = %v, Match = %v", r, ok)
			}
		})
	}
}

func TestReachable(t *testing.T) {
	groups := map[string][]string{"finance": {"a", "b"}, "security": {"c"}}
	p := Policy{RequiredApprovals: 2, Require: []Require{{"finance", 1}, {"security", 1}}}
	// s submitted; a approved; b rejected; c has not voted: c can still
	// fill security.
	if !Reachable(p, groups, []string{"s", "a"}, []string{"c"}, "s") {
		t.Fatal("c undecided: still reachable")
	}
	// c rejected too: security has nobody left.
	if Reachable(p, groups, []string{"s", "a"}, nil, "s") {
		t.Fatal("security has nobody left: unreachable")
	}
	// The submitter listed as undecided still does not count.
	if Reachable(p, map[string][]string{"finance": {"a"}, "security": {"s"}}, []string{"s", "a"}, []string{"s"}, "s") {
		t.Fatal("the submitter filled a slot through undecided")
	}
}

func TestMatchDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for range 500 {
		c := polRandomCase(r)
		want, ok := Match(c.p, c.groups, c.approvers, c.submitter)
		// The same sets, in other orders, with repeats.
		shuffled := map[string][]string{}
		for g, ms := range c.groups {
			ms = slices.Clone(ms)
			r.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
			shuffled[g] = ms
		}
		app := append(slices.Clone(c.approvers), c.approvers...)
		r.Shuffle(len(app), func(i, j int) { app[i], app[j] = app[j], app[i] })
		p := c.p
		p.Require = slices.Clone(p.Require)
		r.Shuffle(len(p.Require), func(i, j int) { p.Require[i], p.Require[j] = p.Require[j], p.Require[i] })
		got, ok2 := Match(p, shuffled, app, c.submitter)
		if ok != ok2 || !maps.Equal(got, want) {
			t.Fatalf("%+v: Match gave %v %v, then in another order %v %v", c, want, ok, got, ok2)
		}
	}
}

// polCase is a random policy over random groups of 2 to 7 signers.
type polCase struct {
	p         Policy
	groups    map[string][]string
	signers   []string
	approvers []string
	rejecters []string
	submitter string
}

func polRandomCase(r *rand.Rand) polCase {
	n := 2 + r.IntN(6)
	var c polCase
	for i := range n {
		c.signers = append(c.signers, fmt.Sprintf("k%d", i))
	}
	c.groups = map[string][]string{}
	names := []string{"g0", "g1", "g2", "g3"}[:2+r.IntN(3)]
	for _, g := range names {
		ms := []string{}
		for _, k := range c.signers {
			if r.IntN(2) == 0 {
				ms = append(ms, k)
			}
		}
		c.groups[g] = ms
	}
	c.p.RequiredApprovals = r.IntN(n + 2)
	c.p.SubmitterCounts = r.IntN(2) == 0
	for _, g := range names {
		if r.IntN(3) > 0 {
			c.p.Require = append(c.p.Require, Require{g, 1 + r.IntN(3)})
		}
	}
	switch r.IntN(12) {
	case 0:
		c.p.Require = append(c.p.Require, Require{"ghost", 1})
	case 1:
		c.p.Require = append(c.p.Require, Require{names[0], 1})
	case 2:
		c.p.Require = append(c.p.Require, Require{names[1], r.IntN(2) - 1})
	}
	r.Shuffle(len(c.p.Require), func(i, j int) { c.p.Require[i], c.p.Require[j] = c.p.Require[j], c.p.Require[i] })
	c.p.DelaySeconds = []int{0, 0, 0, 900, MaxDelaySeconds, MaxDelaySeconds + 1, -1}[r.IntN(7)]
	if c.p.DelaySeconds != 0 {
		c.p.Veto = []int{1, 1, n, n + 1, 0, -1}[r.IntN(6)]
	} else if r.IntN(10) == 0 {
		c.p.Veto = 1
	}
	c.submitter = c.signers[r.IntN(n)]
	for _, k := range c.signers {
		switch r.IntN(3) {
		case 0:
			c.approvers = append(c.approvers, k)
		case 1:
			c.rejecters = append(c.rejecters, k)
		}
	}
	if r.IntN(4) == 0 && len(c.approvers) > 0 {
		c.approvers = append(c.approvers, c.approvers[0]) // a repeat
	}
	return c
}

// polBrute decides Match's question by trying every assignment: each
// counted key fills no slot or a slot of one require entry whose group it
// is in. It also checks Hall's condition over every subset of entries,
// the same answer reached another way, and fails t if they differ.
func polBrute(t *testing.T, p Policy, groups map[string][]string, approvers []string, submitter string) bool {
	t.Helper()
	set := map[string]bool{}
	for _, k := range approvers {
		if p.SubmitterCounts || k != submitter {
			set[k] = true
		}
	}
	var keys []string
	for k := range set {
		keys = append(keys, k)
	}
	var entries []Require
	need := 0
	for _, r := range p.Require {
		if r.Approvals > 0 {
			entries = append(entries, r)
			need += r.Approvals
		}
	}
	if len(keys) < p.RequiredApprovals {
		return false
	}
	filled := make([]int, len(entries))
	var try func(i, left int) bool
	try = func(i, left int) bool {
		if left == 0 {
			return true
		}
		if len(keys)-i < left {
			return false
		}
		for e, r := range entries {
			if filled[e] < r.Approvals && slices.Contains(groups[r.Group], keys[i]) {
				filled[e]++
				ok := try(i+1, left-1)
				filled[e]--
				if ok {
					return true
				}
			}
		}
		return try(i+1, left)
	}
	found := try(0, need)

	hall := true
	for mask := 1; mask < 1<<len(entries); mask++ {
		union, sum := map[string]bool{}, 0
		for e, r := range entries {
			if mask&(1<<e) != 0 {
				sum += r.Approvals
				for _, k := range groups[r.Group] {
					if set[k] {
						union[k] = true
					}
				}
			}
		}
		if len(union) < sum {
			hall = false
		}
	}
	if found != hall {
		t.Fatalf("brute force says %v, Hall's condition %v: %+v %v %v %s", found, hall, p, groups, approvers, submitter)
	}
	return found
}

// polRefused is what CheckPolicy must refuse, written out from PROTOCOL 9.
func polRefused(t *testing.T, c polCase) bool {
	p, n := c.p, len(c.signers)
	if p.RequiredApprovals < 1 || p.RequiredApprovals > n || (!p.SubmitterCounts && p.RequiredApprovals == n) {
		return true
	}
	if p.DelaySeconds < 0 || p.DelaySeconds > MaxDelaySeconds {
		return true
	}
	if p.DelaySeconds > 0 && (p.Veto < 1 || p.Veto > n) || p.DelaySeconds == 0 && p.Veto != 0 {
		return true
	}
	sum := 0
	for i, r := range p.Require {
		if _, set := c.groups[r.Group]; !set || r.Approvals < 1 || slices.ContainsFunc(p.Require[:i], func(q Require) bool { return q.Group == r.Group }) {
			return true
		}
		sum += r.Approvals
	}
	if sum > p.RequiredApprovals {
		return true
	}
	all := p
	all.SubmitterCounts = true
	return !polBrute(t, all, c.groups, c.signers, "")
}

func TestPolicyProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(2026, 9))
	var met, unmet, accepted, refused, unreachable int
	for range 4000 {
		c := polRandomCase(r)
		a, ok := Match(c.p, c.groups, c.approvers, c.submitter)
		if want := polBrute(t, c.p, c.groups, c.approvers, c.submitter); ok != want {
			t.Fatalf("%+v: Match says %v, brute force %v", c, ok, want)
		}
		if ok {
			met++
			if why := polValid(c.p, c.groups, c.approvers, c.submitter, a); why != "" {
				t.Fatalf("%+v: assignment %v: %s", c, a, why)
			}
		} else {
			unmet++
			if a != nil {
				t.Fatalf("%+v: no match but assignment %v", c, a)
			}
		}

		var undecided []string
		for _, k := range c.signers {
			if !slices.Contains(c.approvers, k) && !slices.Contains(c.rejecters, k) {
				undecided = append(undecided, k)
			}
		}
		reach := Reachable(c.p, c.groups, c.approvers, undecided, c.submitter)
		if want := polBrute(t, c.p, c.groups, append(slices.Clone(c.approvers), undecided...), c.submitter); reach != want {
			t.Fatalf("%+v: Reachable says %v, brute force %v", c, reach, want)
		}
		if ok && !reach {
			t.Fatalf("%+v: met but not reachable", c)
		}
		if !reach {
			unreachable++
		}

		err := CheckPolicy(c.p, c.groups, c.signers)
		if want := polRefused(t, c); (err != nil) != want {
			t.Fatalf("%+v: CheckPolicy = %v, want refused %v", c, err, want)
		}
		if err != nil {
			refused++
			if twokey.ErrorCode(err) != twokey.EBadPayload {
				t.Fatalf("%+v: refused with code %s: %v", c, twokey.ErrorCode(err), err)
			}
			continue
		}
		accepted++
		// An accepted policy is met when every signer approves.
		if _, ok := Match(c.p, c.groups, c.signers, ""); !ok {
			t.Fatalf("%+v: accepted but all signers do not meet it", c)
		}
		// At submission: refused exactly when the other signers cannot
		// meet it, and then saying which group when a group is why.
		err = CheckSubmitter(c.p, c.groups, c.signers, c.submitter)
		_, canWithout := Match(c.p, c.groups, c.signers, c.submitter)
		if want := !polBrute(t, c.p, c.groups, c.signers, c.submitter); (err != nil) != want || canWithout == want {
			t.Fatalf("%+v: CheckSubmitter = %v, want refused %v", c, err, want)
		}
		if err != nil {
			if c.p.SubmitterCounts || twokey.ErrorCode(err) != twokey.EBadPayload || !strings.Contains(err.Error(), "group ") || !strings.Contains(err.Error(), "without its submitter") {
				t.Fatalf("%+v: CheckSubmitter refused with %v", c, err)
			}
		}
	}
	// Each side of each question was exercised.
	for name, n := range map[string]int{"met": met, "unmet": unmet, "accepted": accepted, "refused": refused, "unreachable": unreachable} {
		if n < 100 {
			t.Errorf("only %d cases %s", n, name)
		}
	}
}

func TestCheckPolicyMessages(t *testing.T) {
	signers := []string{"a", "b", "c", "d"}
	groups := map[string][]string{"finance": {"a"}, "security": {"a", "b"}, "legal": {"a", "b"}, "ops": {"c", "d"}, "empty": {}}
	tests := []struct {
		p    Policy
		want string // "" for accepted
	}{
		{DefaultPolicy(2), ""},
		{Policy{RequiredApprovals: 3, Require: []Require{{"finance", 1}, {"ops", 2}}, DelaySeconds: 900, Veto: 1}, ""},
		{Policy{RequiredApprovals: 2, Require: []Require{{"finance", 2}}, SubmitterCounts: true},
			"group finance has 1 signer but the rule needs 2 of it: add a signer to finance or require 1"},
		{Policy{RequiredApprovals: 2, Require: []Require{{"empty", 1}}, SubmitterCounts: true},
			"group empty has no signers but the rule needs 1 of it: add a signer to empty or drop it from require"},
		{Policy{RequiredApprovals: 2, Require: []Require{{"hr", 1}}, SubmitterCounts: true},
			"require names group hr, which is not set: set it in groups first, or name one of empty, finance, legal, ops, security"},
		{Policy{RequiredApprovals: 2, Require: []Require{{"Bad Name", 1}}, SubmitterCounts: true},
			`require names group "Bad Name", which is not set`},
		{Policy{RequiredApprovals: 2, Require: []Require{{"ops", 1}, {"ops", 1}}, SubmitterCounts: true},
			"require names group ops twice: name it once, with the approvals it needs"},
		{Policy{RequiredApprovals: 2, Require: []Require{{"ops", 0}}, SubmitterCounts: true},
			"require: approvals 0 of group ops must be at least 1: require 1 or more, or drop the entry"},
		{Policy{RequiredApprovals: 2, Require: []Require{{"ops", 2}, {"finance", 1}}, SubmitterCounts: true},
			"require adds up to 3 approvals (2 of ops and 1 of finance) but required_approvals is 2: raise required_approvals to 3 or require fewer"},
		{Policy{RequiredApprovals: 4, Require: []Require{{"security", 1}, {"finance", 1}, {"legal", 1}, {"ops", 1}}, SubmitterCounts: true},
			"no key fills two slots, and groups finance, legal and security need 3 distinct keys between them (1 of security, 1 of finance and 1 of legal) but have only 2 signers between them: add a signer to finance, legal or security, or require fewer"},
		{Policy{RequiredApprovals: 4, SubmitterCounts: false},
			"with submitter_counts false the submitter's approval does not count, so the 4 approvals must come from the other 3 signers: require at most 3, or let the submitter count"},
		{Policy{RequiredApprovals: 5, SubmitterCounts: true}, "required_approvals 5 must lie between 1 and the 4 signers"},
		{Policy{RequiredApprovals: 0, SubmitterCounts: true}, "required_approvals 0 must lie between 1 and the 4 signers"},
		{Policy{RequiredApprovals: 1, SubmitterCounts: true, DelaySeconds: MaxDelaySeconds + 1, Veto: 1}, "delay_seconds 604801 must lie between 0 and 604800 (7 days)"},
		{Policy{RequiredApprovals: 1, SubmitterCounts: true, DelaySeconds: 60}, "veto 0 must lie between 1 and the 4 signers"},
		{Policy{RequiredApprovals: 1, SubmitterCounts: true, DelaySeconds: 60, Veto: 5}, "veto 5 must lie between 1 and the 4 signers"},
		{Policy{RequiredApprovals: 1, SubmitterCounts: true, Veto: 1}, "veto 1 applies only during a cool-off: set delay_seconds or drop veto"},
	}
	for _, tt := range tests {
		err := CheckPolicy(tt.p, groups, signers)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: refused: %v", tt.p, err)
		case tt.want != "" && (err == nil || twokey.ErrorCode(err) != twokey.EBadPayload || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("%+v:\n got %v\nwant %s", tt.p, err, tt.want)
		}
	}
	// A group's members who are not signers do not count.
	if err := CheckPolicy(Policy{RequiredApprovals: 2, Require: []Require{{"x", 2}}, SubmitterCounts: true}, map[string][]string{"x": {"a", "gone", "a"}}, signers); err == nil || !strings.Contains(err.Error(), "has 1 signer") {
		t.Errorf("members outside the signers counted: %v", err)
	}
}

func TestCheckSubmitterMessages(t *testing.T) {
	signers := []string{"a", "b", "s"}
	groups := map[string][]string{"finance": {"s"}, "security": {"s", "a"}, "audit": {"a", "s"}, "ops": {"a", "b"}}
	tests := []struct {
		p    Policy
		want string
	}{
		{Policy{RequiredApprovals: 1, Require: []Require{{"finance", 1}}, SubmitterCounts: true}, ""},
		{Policy{RequiredApprovals: 1, Require: []Require{{"ops", 1}}}, ""},
		{Policy{RequiredApprovals: 1, Require: []Require{{"finance", 1}}},
			"without its submitter, group finance has no signers to approve but the rule needs 1 of it: another signer of finance must submit this request"},
		{Policy{RequiredApprovals: 2, Require: []Require{{"security", 2}}},
			"without its submitter, group security has 1 signer to approve but the rule needs 2 of it: another signer of security must submit this request"},
		{Policy{RequiredApprovals: 2, Require: []Require{{"security", 1}, {"audit", 1}}},
			"without its submitter, groups audit and security have 1 signer between them to approve but the rule needs 2 distinct keys of them (1 of security and 1 of audit): another signer of audit or security must submit this request"},
		// More slots than the other signers (a policy CheckPolicy refuses).
		{Policy{RequiredApprovals: 2, Require: []Require{{"security", 1}, {"ops", 2}}},
			"without its submitter, groups ops and security have 2 signers between them to approve but the rule needs 3 distinct keys of them (1 of security and 2 of ops): another signer of ops or security must submit this request"},
		{Policy{RequiredApprovals: 2, Require: []Require{{"ops", 1}, {"finance", 1}}},
			"without its submitter, group finance has no signers to approve but the rule needs 1 of it"},
		{Policy{RequiredApprovals: 3},
			"without its submitter, the request has 2 signers to approve it but needs 3 approvals"},
	}
	for _, tt := range tests {
		err := CheckSubmitter(tt.p, groups, signers, "s")
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: refused: %v", tt.p, err)
		case tt.want != "" && (err == nil || twokey.ErrorCode(err) != twokey.EBadPayload || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("%+v:\n got %v\nwant %s", tt.p, err, tt.want)
		}
	}
}

func TestPolicyDescribe(t *testing.T) {
	tests := []struct {
		p    Policy
		want string
	}{
		{DefaultPolicy(2), "2 approvals"},
		{DefaultPolicy(1), "1 approval"},
		{Policy{RequiredApprovals: 3, Require: []Require{{"finance", 1}, {"security", 1}}, ReasonRequired: true, DelaySeconds: 900, Veto: 1},
			"3 approvals, including 1 of finance and 1 of security; not the submitter; reason required; 15 min cool-off, 1 veto"},
		{Policy{RequiredApprovals: 4, Require: []Require{{"a", 2}, {"b", 1}, {"c", 1}}, SubmitterCounts: true}, "4 approvals, including 2 of a, 1 of b and 1 of c"},
		{Policy{RequiredApprovals: 2, SubmitterCounts: true, DelaySeconds: MaxDelaySeconds, Veto: 2}, "2 approvals; 7 days cool-off, 2 vetoes"},
		{Policy{RequiredApprovals: 2, SubmitterCounts: true, DelaySeconds: 86400, Veto: 1}, "2 approvals; 1 day cool-off, 1 veto"},
		{Policy{RequiredApprovals: 2, SubmitterCounts: true, DelaySeconds: 7200, Veto: 1}, "2 approvals; 2 h cool-off, 1 veto"},
		{Policy{RequiredApprovals: 2, SubmitterCounts: true, DelaySeconds: 90, Veto: 1}, "2 approvals; 90 s cool-off, 1 veto"},
		{Policy{RequiredApprovals: 2}, "2 approvals; not the submitter"},
	}
	for _, tt := range tests {
		if got := tt.p.Describe(); got != tt.want {
			t.Errorf("%+v:\n got %s\nwant %s", tt.p, got, tt.want)
		}
	}
}

func TestValidGroupName(t *testing.T) {
	for s, want := range map[string]bool{
		"finance": true, "a": true, "on-call_2": true, strings.Repeat("x", 32): true,
		"": false, strings.Repeat("x", 33): false, "Finance": false, "fin ance": false,
		"fin.ance": false, "é": false, "a/b": false,
	} {
		if got := ValidGroupName(s); got != want {
			t.Errorf("ValidGroupName(%q) = %v", s, got)
		}
	}
}

func TestCheckGroups(t *testing.T) {
	signers := []string{"a", "b"}
	for _, tt := range []struct {
		groups map[string][]string
		want   string
	}{
		{nil, ""},
		{map[string][]string{"finance": {"a", "b"}, "empty": {}}, ""},
		{map[string][]string{"Finance": {"a"}}, `group name "Finance": use 1 to 32 of a-z, 0-9, _ and -`},
		{map[string][]string{"finance": {"a", "z"}}, "group finance: z is not a signer"},
		{map[string][]string{"finance": {"a", "a"}}, "group finance names a twice"},
	} {
		err := CheckGroups(tt.groups, signers)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: refused: %v", tt.groups, err)
		case tt.want != "" && (err == nil || twokey.ErrorCode(err) != twokey.EBadPayload || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("%v:\n got %v\nwant %s", tt.groups, err, tt.want)
		}
	}
}

func TestDecodePolicy(t *testing.T) {
	accepted := []struct {
		in   string
		want Policy
	}{
		{`{"required_approvals":2}`, DefaultPolicy(2)},
		{`{"required_approvals":2,"require":null,"submitter_counts":true}`, DefaultPolicy(2)},
		{`{"required_approvals":3,"require":[{"group":"finance","approvals":1}],"submitter_counts":false,"reason_required":true,"delay_seconds":900}`,
			Policy{RequiredApprovals: 3, Require: []Require{{"finance", 1}}, ReasonRequired: true, DelaySeconds: 900, Veto: 1}},
		// Out of range, but well-formed: CheckPolicy's to refuse.
		{`{"required_approvals":1,"delay_seconds":60,"veto":0}`, Policy{RequiredApprovals: 1, Require: []Require{}, SubmitterCounts: true, DelaySeconds: 60}},
		{`{"required_approvals":1,"veto":2}`, Policy{RequiredApprovals: 1, Require: []Require{}, SubmitterCounts: true, Veto: 2}},
	}
	for _, tt := range accepted {
		got, err := DecodePolicy([]byte(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v, %v\nwant %+v", tt.in, got, err, tt.want)
		}
	}
	refused := []struct{ in, want string }{
		{`{"required_approvals":1,"Submitter_Counts":false}`, `policy: unknown field "Submitter_Counts"`},
		{`{"required_approvals":1,"require":[{"Group":"finance","approvals":1}]}`, `require entry 1: unknown field "Group"`},
		{`{"required_approvals":1,"require":[{"group":"finance","approvals":1,"x":1}]}`, `require entry 1: unknown field "x"`},
		{`{"required_approvals":1,"executable_at":"2026-01-01T00:00:00Z"}`, `policy: unknown field "executable_at"`},
		{`{"required_approvals":1,"required_approvals":2}`, "repeats the key"},
		{`{"required_approvals":1.5}`, "policy: json: cannot unmarshal"},
		{`{"required_approvals":"2"}`, "policy: json: cannot unmarshal"},
		{`{"required_approvals":1,"require":[null]}`, "require entry 1 is an object"},
		{`{"required_approvals":1,"require":{}}`, "require is an array"},
		{`[]`, "not a JSON object"},
		{`null`, "not a JSON object"},
	}
	for _, tt := range refused {
		_, err := DecodePolicy([]byte(tt.in))
		if err == nil || twokey.ErrorCode(err) != twokey.EBadPayload || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: refused with %v, want %q", tt.in, err, tt.want)
		}
	}
}

// FuzzPolicyJSON decodes arbitrary bytes as a policy, strictly, and checks
// what it decodes against a fixed gate. Nothing may panic; every refusal
// is bad_payload; an accepted policy is met by all the signers, reads the
// same after a round trip through JSON, and is described in one line.
func FuzzPolicyJSON(f *testing.F) {
	for _, s := range []string{
		`{"required_approvals":3,"require":[{"group":"finance","approvals":1},{"group":"security","approvals":1}],"submitter_counts":false,"reason_required":true,"delay_seconds":900,"veto":1}`,
		`{"required_approvals":2,"require":[{"group":"finance","approvals":2}]}`,
		`{"required_approvals":2,"require":[{"group":"finance","approvals":1},{"group":"finance","approvals":1}]}`,
		`{"required_approvals":1,"require":[{"group":"ops","approvals":1}]}`,
		`{"required_approvals":4,"submitter_counts":false}`,
		`{"required_approvals":1,"require":[{"group":"finance","approvals":9223372036854775807},{"group":"security","approvals":9223372036854775807}]}`,
		`{"required_approvals":1,"veto":1}`,
		`{"REQUIRE":[]}`,
	} {
		f.Add([]byte(s))
	}
	signers := []string{"a", "b", "c", "d"}
	groups := map[string][]string{"finance": {"a", "b"}, "security": {"b", "c"}, "legal": {"b"}, "ops": {}}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePolicy(data)
		if err != nil {
			if twokey.ErrorCode(err) == twokey.EInternal {
				t.Fatalf("unclassified refusal: %v", err)
			}
			return
		}
		err = CheckPolicy(p, groups, signers)
		if err != nil {
			if twokey.ErrorCode(err) != twokey.EBadPayload {
				t.Fatalf("CheckPolicy refused with %v", err)
			}
			return
		}
		a, ok := Match(p, groups, signers, "")
		if !ok || polValid(p, groups, signers, "", a) != "" {
			t.Fatalf("%+v accepted, but all signers give %v %v", p, a, ok)
		}
		for _, s := range signers {
			if err := CheckSubmitter(p, groups, signers, s); err != nil && twokey.ErrorCode(err) != twokey.EBadPayload {
				t.Fatalf("CheckSubmitter refused with %v", err)
			}
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodePolicy(b)
		if err != nil || !reflect.DeepEqual(back, p) {
			t.Fatalf("%+v reads back from %s as %+v, %v", p, b, back, err)
		}
		if d := p.Describe(); d == "" || strings.Contains(d, "\n") {
			t.Fatalf("Describe = %q", d)
		}
	})
}
