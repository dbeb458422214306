package gate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/twokey/twokey/conversation"
)

// ProposalDiff is what a membership proposal changes in the gate it was
// made in, before → after: the signers who come in and go out, the
// default M, and the rules added, removed or given another M. A proposal
// is approved against the state it was made in (PROTOCOL 5: a change that
// applies closes every other open proposal), so that state is the one to
// diff against, and the member.changed that applies a proposal changes
// exactly its diff.
//
// It is the one reading of a proposal every reader draws: the CLI's
// gate show, member ls, member approve and log, and the TUI's cards, each
// through Lines.
type ProposalDiff struct {
	SignersIn  []conversation.Member // added, named as the proposal names them
	SignersOut []string              // removed, key ids
	// The default M and the number of signers, before and after.
	MBefore, MAfter int
	NBefore, NAfter int
	RulesAdded      []Rule       // in the order of the new rule set
	RulesRemoved    []Rule       // in the order of the old one
	RulesChanged    []RuleChange // same service, endpoint and method, another M or policy
	// GroupsChanged are the groups whose members change (PROTOCOL 9), by
	// name, sorted: a group set, emptied or changed.
	GroupsChanged []GroupChange
}

// GroupChange is one group before and after a change (nil: not set).
type GroupChange struct {
	Group         string
	Before, After []string
}

// RuleChange is a rule whose M a change sets anew.
type RuleChange struct {
	Before, After Rule
}

// DiffProposal is what proposal p changes in before, the gate it was made
// in. It applies p as Propose does and checks nothing: a proposal the
// rules refuse is still shown as what it asks for.
func DiffProposal(before Config, p ProposePayload) ProposalDiff {
	d := DiffConfig(before, before.proposed(p))
	for i, m := range d.SignersIn {
		for _, a := range p.Add {
			if a.Key == m.Key {
				d.SignersIn[i].Name = a.Name
			}
		}
	}
	return d
}

// DiffConfig is what changes from before to after (the signers who come
// in have no names here: DiffProposal gives the proposal's).
func DiffConfig(before, after Config) ProposalDiff {
	d := ProposalDiff{MBefore: before.RequiredApprovals, MAfter: after.RequiredApprovals,
		NBefore: len(before.Signers), NAfter: len(after.Signers)}
	for _, k := range after.Signers {
		if !slices.Contains(before.Signers, k) {
			d.SignersIn = append(d.SignersIn, conversation.Member{Key: k})
		}
	}
	for _, k := range before.Signers {
		if !slices.Contains(after.Signers, k) {
			d.SignersOut = append(d.SignersOut, k)
		}
	}
	old := Normalize(before.Rules)
	same := func(a, b Rule) bool {
		return a.Service == b.Service && a.Endpoint == b.Endpoint && a.Method == b.Method
	}
	for _, r := range Normalize(after.Rules) {
		i := slices.IndexFunc(old, func(o Rule) bool { return same(o, r) })
		switch {
		case i < 0:
			d.RulesAdded = append(d.RulesAdded, r)
		case !old[i].Equal(r):
			d.RulesChanged = append(d.RulesChanged, RuleChange{Before: old[i], After: r})
		}
	}
	next := Normalize(after.Rules)
	for _, o := range old {
		if !slices.ContainsFunc(next, func(r Rule) bool { return same(o, r) }) {
			d.RulesRemoved = append(d.RulesRemoved, o)
		}
	}
	names := groupNames(before.Groups)
	for _, g := range groupNames(after.Groups) {
		if !slices.Contains(names, g) {
			names = append(names, g)
		}
	}
	slices.Sort(names)
	for _, g := range names {
		b, inB := before.Groups[g]
		a, inA := after.Groups[g]
		if inA != inB || !GroupsEqual(map[string][]string{g: a}, map[string][]string{g: b}) {
			d.GroupsChanged = append(d.GroupsChanged, GroupChange{Group: g, Before: b, After: a})
		}
	}
	return d
}

// proposed is the gate p leads to from c, unchecked (Propose checks it):
// the removed signers out, the added ones in after them, M and the rules
// set when p gives them.
func (c Config) proposed(p ProposePayload) Config {
	next := c.Clone()
	next.Signers = slices.DeleteFunc(next.Signers, func(s string) bool { return slices.Contains(p.Remove, s) })
	for _, m := range p.Add {
		next.Signers = append(next.Signers, m.Key)
	}
	if p.RequiredApprovals != 0 {
		next.RequiredApprovals = p.RequiredApprovals
	}
	if p.Rules != nil {
		next.Rules = Normalize(*p.Rules)
	}
	if p.Groups != nil {
		next.Groups = CloneGroups(*p.Groups)
	}
	// A signer removed from the conversation leaves every group.
	for g, keys := range next.Groups {
		next.Groups[g] = slices.DeleteFunc(keys, func(k string) bool { return slices.Contains(p.Remove, k) })
	}
	if len(next.Groups) == 0 {
		next.Groups = nil
	}
	return next
}

// Members reports whether signers come in or go out.
func (d ProposalDiff) Members() bool { return len(d.SignersIn)+len(d.SignersOut) > 0 }

// Threshold reports whether the default M changes.
func (d ProposalDiff) Threshold() bool { return d.MBefore != d.MAfter }

// Rules reports whether a rule is added, removed or given another M.
func (d ProposalDiff) Rules() bool {
	return len(d.RulesAdded)+len(d.RulesRemoved)+len(d.RulesChanged) > 0
}

// Groups reports whether a group is set, changed or dropped.
func (d ProposalDiff) Groups() bool { return len(d.GroupsChanged) > 0 }

// Empty reports whether nothing changes.
func (d ProposalDiff) Empty() bool {
	return !d.Members() && !d.Threshold() && !d.Rules() && !d.Groups()
}

// What names what changes, for a sentence: "members", "threshold",
// "rules", joined ("members and rules"), or "nothing".
func (d ProposalDiff) What() string {
	var parts []string
	if d.Members() {
		parts = append(parts, "members")
	}
	if d.Threshold() {
		parts = append(parts, "threshold")
	}
	if d.Rules() {
		parts = append(parts, "rules")
	}
	if d.Groups() {
		parts = append(parts, "groups")
	}
	switch len(parts) {
	case 0:
		return "nothing"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// Label is the name of the record that applies the change:
// "RULES CHANGED", "MEMBERS CHANGED", "THRESHOLD CHANGED", or a
// combination ("MEMBERS AND RULES CHANGED"); "NOTHING CHANGED" for none.
func (d ProposalDiff) Label() string { return strings.ToUpper(d.What()) + " CHANGED" }

// Lines is the change as text, one line per change, in this order:
// "+ signer dave (ypOsFwUY)" for each signer in, "- signer carol
// (a1b2c3d4)" for each out, "default M 2 of 3 → 2 of 4 signers", then
// "+ rule httpbin POST * needs 3" for each rule added,
// "- rule httpbin GET /get needs 2" for each removed and
// "~ rule httpbin POST /post needs 2 → 3" for each given another M;
// "no change to signers, M, rules or groups" for none.
//
// The M line is there when M or the number of signers changes. name gives
// the name of a signer by key (a signer who comes in goes by the name the
// proposal gives, when it gives one). The text holds what others wrote
// (names, rule fields): the caller makes each line safe to print.
func (d ProposalDiff) Lines(name func(key string) string) []string {
	var out []string
	who := func(key, n string) string {
		if n == "" {
			n = name(key)
		}
		if short := conversation.ShortKey(key); n != short {
			return n + " (" + short + ")"
		}
		return n
	}
	for _, m := range d.SignersIn {
		out = append(out, "+ signer "+who(m.Key, m.Name))
	}
	for _, k := range d.SignersOut {
		out = append(out, "- signer "+who(k, ""))
	}
	if d.Threshold() || d.NBefore != d.NAfter {
		out = append(out, fmt.Sprintf("default M %d of %d → %d of %d signers", d.MBefore, d.NBefore, d.MAfter, d.NAfter))
	}
	rule := func(r Rule) string { return fmt.Sprintf("rule %s %s %s needs", r.Service, r.Method, r.Endpoint) }
	// A plain rule reads "needs 3"; one that says more, its policy.
	needs := func(r Rule) string {
		if r.Plain() {
			return fmt.Sprint(r.RequiredApprovals)
		}
		return r.Policy().Describe()
	}
	for _, r := range d.RulesAdded {
		out = append(out, fmt.Sprintf("+ %s %s", rule(r), needs(r)))
	}
	for _, r := range d.RulesRemoved {
		out = append(out, fmt.Sprintf("- %s %s", rule(r), needs(r)))
	}
	for _, c := range d.RulesChanged {
		out = append(out, fmt.Sprintf("~ %s %s → %s", rule(c.After), needs(c.Before), needs(c.After)))
	}
	members := func(keys []string) string {
		if len(keys) == 0 {
			return "nobody"
		}
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = who(k, "")
		}
		return strings.Join(names, ", ")
	}
	for _, g := range d.GroupsChanged {
		switch {
		case g.Before == nil:
			out = append(out, fmt.Sprintf("+ group %s: %s", g.Group, members(g.After)))
		case g.After == nil:
			out = append(out, fmt.Sprintf("- group %s", g.Group))
		default:
			out = append(out, fmt.Sprintf("~ group %s: %s → %s", g.Group, members(g.Before), members(g.After)))
		}
	}
	if len(out) == 0 {
		out = append(out, "no change to signers, M, rules or groups")
	}
	return out
}
