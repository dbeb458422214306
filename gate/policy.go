package gate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
)

// MaxDelaySeconds is the longest cool-off a rule may set (PROTOCOL 9): 7 days.
const MaxDelaySeconds = 7 * 24 * 60 * 60

// Require is one entry of a rule's require (PROTOCOL 9): the approvers must
// include Approvals distinct keys of Group, each filling one slot.
type Require struct {
	Group     string `json:"group"`
	Approvals int    `json:"approvals"`
}

// Policy is what a request needs to execute (PROTOCOL 9's policy in the
// state object, without executable_at): the winning rule's fields with
// their defaults filled in. DefaultPolicy gives the defaults; DecodePolicy
// reads one strictly, filling in what is absent; CheckPolicy says whether
// any set of signers can meet it.
//
// Veto is 0 without a delay (and then omitted), at least 1 with one.
type Policy struct {
	RequiredApprovals int       `json:"required_approvals"`
	Require           []Require `json:"require"`
	SubmitterCounts   bool      `json:"submitter_counts"`
	ReasonRequired    bool      `json:"reason_required"`
	DelaySeconds      int       `json:"delay_seconds"`
	Veto              int       `json:"veto,omitempty"`
}

// DefaultPolicy is the policy of a request no richer rule applies to: m
// approvals, the submitter's among them, no groups, no reason, no delay.
func DefaultPolicy(m int) Policy {
	return Policy{RequiredApprovals: m, Require: []Require{}, SubmitterCounts: true}
}

// policyFields and requireFields are the exact names DecodePolicy accepts.
// Go's decoder matches names regardless of case; a reader in another
// language does not, so another spelling is refused (as conversation's
// CheckJSON does for the fields it knows).
var (
	policyFields  = []string{"required_approvals", "require", "submitter_counts", "reason_required", "delay_seconds", "veto"}
	requireFields = []string{"group", "approvals"}
)

// DecodePolicy reads a policy from JSON strictly: a single object, no
// duplicate key, every key one of Policy's exactly as spelled (in require's
// entries too), no other field, numbers that are integers. An absent
// submitter_counts is true, an absent veto is 1 when delay_seconds is set,
// an absent require is empty. It checks the shape only: CheckPolicy checks
// the policy against the signers. A refusal is bad_payload.
func DecodePolicy(data []byte) (Policy, error) {
	if err := conversation.CheckJSON(data); err != nil {
		return Policy{}, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		return Policy{}, twokey.Errorf(twokey.EBadPayload, "a policy is a JSON object with %s", strings.Join(policyFields, ", "))
	}
	if err := exactFields("policy", top, policyFields); err != nil {
		return Policy{}, err
	}
	if raw, ok := top["require"]; ok {
		var entries []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &entries); err != nil {
			return Policy{}, twokey.Errorf(twokey.EBadPayload, "require is an array of {\"group\", \"approvals\"}")
		}
		for i, e := range entries {
			if e == nil {
				return Policy{}, twokey.Errorf(twokey.EBadPayload, "require entry %d is an object {\"group\", \"approvals\"}", i+1)
			}
			if err := exactFields(fmt.Sprintf("require entry %d", i+1), e, requireFields); err != nil {
				return Policy{}, err
			}
		}
	}
	var w struct {
		RequiredApprovals int       `json:"required_approvals"`
		Require           []Require `json:"require"`
		SubmitterCounts   *bool     `json:"submitter_counts"`
		ReasonRequired    bool      `json:"reason_required"`
		DelaySeconds      int       `json:"delay_seconds"`
		Veto              *int      `json:"veto"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Policy{}, twokey.Errorf(twokey.EBadPayload, "policy: %s", twokey.Clip(err.Error()))
	}
	p := Policy{
		RequiredApprovals: w.RequiredApprovals,
		Require:           w.Require,
		SubmitterCounts:   w.SubmitterCounts == nil || *w.SubmitterCounts,
		ReasonRequired:    w.ReasonRequired,
		DelaySeconds:      w.DelaySeconds,
	}
	if p.Require == nil {
		p.Require = []Require{}
	}
	switch {
	case w.Veto != nil:
		p.Veto = *w.Veto
	case p.DelaySeconds > 0:
		p.Veto = 1
	}
	return p, nil
}

func exactFields(what string, obj map[string]json.RawMessage, names []string) error {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(names, k) {
			return twokey.Errorf(twokey.EBadPayload, "%s: unknown field %q (the fields are %s, spelled in lower case)", what, twokey.Clip(k), strings.Join(names, ", "))
		}
	}
	return nil
}

// ValidGroupName reports whether s may name a group: 1 to 32 of a-z, 0-9,
// _ and -.
func ValidGroupName(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// CheckGroups checks a set of groups against the signers it will hold
// (PROTOCOL 9): each name valid, each member a signer, none twice in a
// group. An empty group is allowed. A refusal is bad_payload.
func CheckGroups(groups map[string][]string, signers []string) error {
	for _, g := range groupNames(groups) {
		if !ValidGroupName(g) {
			return twokey.Errorf(twokey.EBadPayload, "group name %q: use 1 to 32 of a-z, 0-9, _ and -", twokey.Clip(g))
		}
		seen := make(map[string]bool, len(groups[g]))
		for _, k := range groups[g] {
			if !slices.Contains(signers, k) {
				return twokey.Errorf(twokey.EBadPayload, "group %s: %s is not a signer; a group holds signers only", g, conversation.ShortKey(k))
			}
			if seen[k] {
				return twokey.Errorf(twokey.EBadPayload, "group %s names %s twice; name each signer once", g, conversation.ShortKey(k))
			}
			seen[k] = true
		}
	}
	return nil
}

func groupNames(groups map[string][]string) []string {
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	return names
}

// Match decides whether approvers meet p (PROTOCOL 9, Counting). The
// counted approvers are the distinct keys of approvers, without submitter
// when p.SubmitterCounts is false; the caller passes signers' approvals
// only. The requirement is met when they number at least
// p.RequiredApprovals and fill every require slot (Approvals slots per
// entry, one key per slot, a key only in a slot of a group it is in, no
// key in two slots).
//
// assignment maps each key that fills a slot to the slot's group; keys
// counted outside any slot are absent. It is nil when ok is false or p has
// no slots. The search is deterministic: the same sets of approvers and
// group members, in whatever order, give the same assignment.
//
// Match never panics on a policy CheckPolicy would refuse: a require
// entry with Approvals below 1 adds no slot, one naming a group not in
// groups cannot be filled.
func Match(p Policy, groups map[string][]string, approvers []string, submitter string) (assignment map[string]string, ok bool) {
	keys := counted(p, approvers, submitter)
	if len(keys) < p.RequiredApprovals {
		return nil, false
	}
	m := newMatching(p.Require, groups, keys)
	if m == nil || m.solve() < len(m.slots) {
		return nil, false
	}
	return m.assignment(), true
}

// Reachable reports whether the requirement can still be met: whether the
// counted approvers together with the undecided signers (neither approved
// nor rejected) would meet it if every one of them approved. A pending
// request that is not reachable is rejected (PROTOCOL 9).
func Reachable(p Policy, groups map[string][]string, approvers, undecided []string, submitter string) bool {
	all := make([]string, 0, len(approvers)+len(undecided))
	all = append(append(all, approvers...), undecided...)
	_, ok := Match(p, groups, all, submitter)
	return ok
}

// CheckPolicy refuses a policy no set of the signers can meet, or one
// whose fields are out of range (PROTOCOL 9): required_approvals outside
// 1 to the number of signers, or equal to it with submitter_counts false;
// a require entry naming a group that is not set or named twice, or with
// approvals below 1; a group with fewer signers than its approvals; a sum
// of approvals above required_approvals; slots that distinct signers
// cannot fill; delay_seconds outside 0 to MaxDelaySeconds; with a delay, a
// veto outside 1 to the number of signers, and without one, any veto.
// The groups are those in force (CheckGroups checks them); only their
// members who are signers count. A refusal is bad_payload and says how to
// fix the rule; the caller says which rule.
func CheckPolicy(p Policy, groups map[string][]string, signers []string) error {
	keys := counted(Policy{SubmitterCounts: true}, signers, "")
	n := len(keys)
	if p.RequiredApprovals < 1 || p.RequiredApprovals > n {
		return twokey.Errorf(twokey.EBadPayload, "required_approvals %d must lie between 1 and the %d signers", p.RequiredApprovals, n)
	}
	if !p.SubmitterCounts && p.RequiredApprovals >= n {
		return twokey.Errorf(twokey.EBadPayload, "with submitter_counts false the submitter's approval does not count, so the %d approvals must come from the other %d signers: require at most %d, or let the submitter count", p.RequiredApprovals, n-1, n-1)
	}
	if p.DelaySeconds < 0 || p.DelaySeconds > MaxDelaySeconds {
		return twokey.Errorf(twokey.EBadPayload, "delay_seconds %d must lie between 0 and %d (7 days)", p.DelaySeconds, MaxDelaySeconds)
	}
	if p.DelaySeconds > 0 && (p.Veto < 1 || p.Veto > n) {
		return twokey.Errorf(twokey.EBadPayload, "veto %d must lie between 1 and the %d signers: it is how many rejections during the cool-off stop the call", p.Veto, n)
	}
	if p.DelaySeconds == 0 && p.Veto != 0 {
		return twokey.Errorf(twokey.EBadPayload, "veto %d applies only during a cool-off: set delay_seconds or drop veto", p.Veto)
	}
	sum := 0
	for i, r := range p.Require {
		members, set := groups[r.Group]
		if !set {
			return twokey.Errorf(twokey.EBadPayload, "require names group %s, which is not set: %s", gname(r.Group), setGroupsHint(groups))
		}
		for _, q := range p.Require[:i] {
			if q.Group == r.Group {
				return twokey.Errorf(twokey.EBadPayload, "require names group %s twice: name it once, with the approvals it needs", gname(r.Group))
			}
		}
		if r.Approvals < 1 {
			return twokey.Errorf(twokey.EBadPayload, "require: approvals %d of group %s must be at least 1: require 1 or more, or drop the entry", r.Approvals, gname(r.Group))
		}
		if have := len(intersect(members, keys)); have < r.Approvals {
			fix := fmt.Sprintf("require %d", have)
			if have == 0 {
				fix = "drop it from require"
			}
			return twokey.Errorf(twokey.EBadPayload, "group %s has %s but the rule needs %d of it: add a signer to %s or %s", gname(r.Group), signersText(have), r.Approvals, gname(r.Group), fix)
		}
		sum += r.Approvals
	}
	if sum > p.RequiredApprovals {
		return twokey.Errorf(twokey.EBadPayload, "require adds up to %d approvals (%s) but required_approvals is %d: raise required_approvals to %d or require fewer", sum, slotsText(p.Require), p.RequiredApprovals, sum)
	}
	// The checks above leave no more slots than signers, so m is not nil.
	m := newMatching(p.Require, groups, keys)
	if m == nil || m.solve() < len(m.slots) {
		gs, have, need := m.tight()
		return twokey.Errorf(twokey.EBadPayload, "no key fills two slots, and %s need %d distinct keys between them (%s) but have only %s between them: add a signer to %s, or require fewer", groupsText(gs), need, slotsText(requireOf(p.Require, gs)), signersText(have), orText(gs))
	}
	return nil
}

// CheckSubmitter refuses, at submission, a request whose requirement
// cannot be met by the signers when its submitter's approval does not
// count (PROTOCOL 9: bad_payload, saying which group). It refuses exactly
// when Match with every signer approving fails; with p.SubmitterCounts
// true that is a policy CheckPolicy refuses, and it says what CheckPolicy
// says.
func CheckSubmitter(p Policy, groups map[string][]string, signers []string, submitter string) error {
	if _, ok := Match(p, groups, signers, submitter); ok {
		return nil
	}
	if p.SubmitterCounts {
		// Who submits changes nothing: the policy itself cannot be met.
		if err := CheckPolicy(p, groups, signers); err != nil {
			return err
		}
	}
	keys := counted(p, signers, submitter)
	without := ""
	if !p.SubmitterCounts {
		without = "without its submitter, "
	}
	if len(keys) < p.RequiredApprovals {
		return twokey.Errorf(twokey.EBadPayload, "%sthe request has %s to approve it but needs %d approvals: another signer must submit it, or the rule must require fewer", without, signersText(len(keys)), p.RequiredApprovals)
	}
	var gs []string
	var have, need int
	if m := newMatching(p.Require, groups, keys); m != nil {
		m.solve()
		gs, have, need = m.tight()
	} else {
		// More slots than keys: a group that alone cannot fill its
		// slots, or else all the groups required.
		gs, have, need = overfull(p.Require, groups, keys)
	}
	if len(gs) == 1 {
		return twokey.Errorf(twokey.EBadPayload, "%sgroup %s has %s to approve but the rule needs %d of it: another signer of %s must submit this request", without, gname(gs[0]), signersText(have), need, gname(gs[0]))
	}
	return twokey.Errorf(twokey.EBadPayload, "%s%s have %s between them to approve but the rule needs %d distinct keys of them (%s): another signer of %s must submit this request", without, groupsText(gs), signersText(have), need, slotsText(requireOf(p.Require, gs)), orText(gs))
}

// Describe is the policy in one line of English: "3 approvals, including
// 1 of finance and 1 of security; not the submitter; reason required;
// 15 min cool-off, 1 veto", or just "2 approvals".
func (p Policy) Describe() string {
	var b strings.Builder
	b.WriteString(countText(p.RequiredApprovals, "approval", "approvals"))
	if len(p.Require) > 0 {
		b.WriteString(", including ")
		b.WriteString(slotsText(p.Require))
	}
	if !p.SubmitterCounts {
		b.WriteString("; not the submitter")
	}
	if p.ReasonRequired {
		b.WriteString("; reason required")
	}
	if p.DelaySeconds > 0 {
		b.WriteString("; ")
		b.WriteString(DelayText(p.DelaySeconds))
		b.WriteString(" cool-off, ")
		b.WriteString(countText(p.Veto, "veto", "vetoes"))
	}
	return b.String()
}

// counted is the sorted distinct keys of approvers that count under p.
func counted(p Policy, approvers []string, submitter string) []string {
	keys := make([]string, 0, len(approvers))
	for _, k := range approvers {
		if !p.SubmitterCounts && k == submitter {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// intersect is the distinct members of a group that are among keys
// (sorted), sorted.
func intersect(members, keys []string) []string {
	var out []string
	for _, k := range members {
		if _, found := slices.BinarySearch(keys, k); found {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// matching is the bipartite graph of require slots and counted keys, and a
// matching in it found by augmenting paths (Kuhn's algorithm). Slots are
// ordered by group name and keys by id, so the result depends only on the
// sets given.
type matching struct {
	slots  []string // the group of each slot
	keys   []string // the counted keys, sorted
	adj    [][]int  // slot -> the keys (indexes) that may fill it, ascending
	keyOf  []int    // slot -> key index, or -1
	slotOf []int    // key index -> slot, or -1
	seen   []bool   // keys visited in the current search
}

// newMatching builds the graph, or returns nil when the slots outnumber
// the keys (so no matching fills them, and a huge approvals allocates
// nothing).
func newMatching(req []Require, groups map[string][]string, keys []string) *matching {
	total := 0
	for _, r := range req {
		if r.Approvals <= 0 {
			continue
		}
		if r.Approvals > len(keys)-total {
			return nil
		}
		total += r.Approvals
	}
	order := slices.Clone(req)
	slices.SortStableFunc(order, func(a, b Require) int { return strings.Compare(a.Group, b.Group) })
	m := &matching{keys: keys, slots: make([]string, 0, total), adj: make([][]int, 0, total)}
	adjOf := map[string][]int{}
	for _, r := range order {
		adj, done := adjOf[r.Group]
		if !done {
			for _, k := range groups[r.Group] {
				if i, found := slices.BinarySearch(keys, k); found {
					adj = append(adj, i)
				}
			}
			slices.Sort(adj)
			adj = slices.Compact(adj)
			adjOf[r.Group] = adj
		}
		for range max(r.Approvals, 0) {
			m.slots = append(m.slots, r.Group)
			m.adj = append(m.adj, adj)
		}
	}
	m.keyOf = make([]int, len(m.slots))
	for i := range m.keyOf {
		m.keyOf[i] = -1
	}
	m.slotOf = make([]int, len(keys))
	for i := range m.slotOf {
		m.slotOf[i] = -1
	}
	m.seen = make([]bool, len(keys))
	return m
}

// solve fills as many slots as it can and returns how many.
func (m *matching) solve() int {
	filled := 0
	for s := range m.slots {
		clear(m.seen)
		if m.augment(s) {
			filled++
		}
	}
	return filled
}

// augment looks for an alternating path from slot s to a free key and
// flips it. Its depth is at most the number of slots.
func (m *matching) augment(s int) bool {
	for _, k := range m.adj[s] {
		if m.seen[k] {
			continue
		}
		m.seen[k] = true
		if m.slotOf[k] < 0 || m.augment(m.slotOf[k]) {
			m.slotOf[k], m.keyOf[s] = s, k
			return true
		}
	}
	return false
}

func (m *matching) assignment() map[string]string {
	if len(m.slots) == 0 {
		return nil
	}
	a := make(map[string]string, len(m.slots))
	for s, k := range m.keyOf {
		a[m.keys[k]] = m.slots[s]
	}
	return a
}

// tight explains a maximum matching that leaves a slot empty (Hall's
// theorem): the slots reachable from the first empty one by alternating
// paths belong to groups whose members among the keys (have, every one of
// them reached) are fewer than those groups' slots (need). It returns
// those groups, sorted; nothing for a nil m or a full matching.
func (m *matching) tight() (groups []string, have, need int) {
	if m == nil {
		return nil, 0, 0
	}
	start := slices.Index(m.keyOf, -1)
	if start < 0 {
		return nil, 0, 0
	}
	inSlot := make([]bool, len(m.slots))
	inKey := make([]bool, len(m.keys))
	queue := []int{start}
	inSlot[start] = true
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, k := range m.adj[s] {
			if inKey[k] {
				continue
			}
			inKey[k] = true
			if t := m.slotOf[k]; t >= 0 && !inSlot[t] {
				inSlot[t] = true
				queue = append(queue, t)
			}
		}
	}
	for s, in := range inSlot {
		if in && !slices.Contains(groups, m.slots[s]) {
			groups = append(groups, m.slots[s])
		}
	}
	for _, g := range m.slots {
		if slices.Contains(groups, g) {
			need++
		}
	}
	for _, in := range inKey {
		if in {
			have++
		}
	}
	return groups, have, need
}

// overfull explains slots that outnumber the keys, as tight does: the
// first group (in name order) with fewer members among keys than its
// slots, or else every group with a slot.
func overfull(req []Require, groups map[string][]string, keys []string) (gs []string, have, need int) {
	slots := map[string]int{}
	for _, r := range req {
		if r.Approvals > 0 {
			slots[r.Group] += r.Approvals
		}
	}
	names := slices.Sorted(maps.Keys(slots))
	for _, g := range names {
		if h := len(intersect(groups[g], keys)); h < slots[g] {
			return []string{g}, h, slots[g]
		}
	}
	var union []string
	for _, g := range names {
		union = append(union, intersect(groups[g], keys)...)
		need += slots[g]
	}
	slices.Sort(union)
	return names, len(slices.Compact(union)), need
}

// requireOf is the entries of req naming one of gs.
func requireOf(req []Require, gs []string) []Require {
	var out []Require
	for _, r := range req {
		if slices.Contains(gs, r.Group) {
			out = append(out, r)
		}
	}
	return out
}

func setGroupsHint(groups map[string][]string) string {
	if len(groups) == 0 {
		return "no groups are set; set groups first"
	}
	return "set it in groups first, or name one of " + strings.Join(gnames(groupNames(groups)), ", ")
}

func countText(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func signersText(n int) string {
	if n == 0 {
		return "no signers"
	}
	return countText(n, "signer", "signers")
}

// slotsText is "1 of finance and 2 of security".
func slotsText(req []Require) string {
	parts := make([]string, 0, len(req))
	for _, r := range req {
		parts = append(parts, fmt.Sprintf("%d of %s", r.Approvals, gname(r.Group)))
	}
	return andList(parts, "and")
}

// gname is a group's name in a message: as is when valid, else quoted.
func gname(g string) string {
	if ValidGroupName(g) {
		return g
	}
	return fmt.Sprintf("%q", twokey.Clip(g))
}

// groupsText is "group a" or "groups a and b".
func groupsText(gs []string) string {
	if len(gs) == 1 {
		return "group " + gname(gs[0])
	}
	return "groups " + andList(gnames(gs), "and")
}

func orText(gs []string) string { return andList(gnames(gs), "or") }

func gnames(gs []string) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = gname(g)
	}
	return out
}

func andList(parts []string, conj string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " " + conj + " " + parts[len(parts)-1]
}

// DelayText is a cool-off in the largest unit that divides it, as
// Describe writes it: "90 s", "15 min", "2 h", "1 day", "7 days"; "none"
// for none.
func DelayText(sec int) string {
	switch {
	case sec <= 0:
		return "none"
	case sec%86400 == 0:
		return countText(sec/86400, "day", "days")
	case sec%3600 == 0:
		return fmt.Sprintf("%d h", sec/3600)
	case sec%60 == 0:
		return fmt.Sprintf("%d min", sec/60)
	}
	return fmt.Sprintf("%d s", sec)
}

// ValidatePolicies checks every rule's policy against the groups and
// signers it will be in force with (CheckPolicy), naming the rule it
// refuses: "rule 2 (stripe POST /v1/refunds -> ...): group finance has 1
// signer but the rule needs 2 of it: ...". ValidateRules checks the rest.
func ValidatePolicies(rules []Rule, groups map[string][]string, signers []string) error {
	for i, r := range rules {
		if err := CheckPolicy(r.Policy(), groups, signers); err != nil {
			return twokey.Errorf(twokey.EBadPayload, "rule %d (%s %s %s): %s", i+1, r.Service, r.Method, r.Endpoint, twokey.ErrorMessage(err))
		}
	}
	return nil
}

// MaxReasonChars is the longest reason a request or a vote may carry, in
// Unicode code points (PROTOCOL 9).
const MaxReasonChars = 1000

// CheckReason refuses a reason longer than MaxReasonChars code points, or
// one that is not valid UTF-8 (bad_payload). An empty reason is no reason.
func CheckReason(what, reason string) error {
	if !utf8.ValidString(reason) {
		return twokey.Errorf(twokey.EBadPayload, "%s is not valid UTF-8", what)
	}
	if n := utf8.RuneCountInString(reason); n > MaxReasonChars {
		return twokey.Errorf(twokey.EBadPayload, "%s has %d characters; at most %d are allowed", what, n, MaxReasonChars)
	}
	return nil
}

// CloneGroups returns a deep copy of groups (nil stays nil).
func CloneGroups(groups map[string][]string) map[string][]string {
	if groups == nil {
		return nil
	}
	out := make(map[string][]string, len(groups))
	for g, keys := range groups {
		out[g] = slices.Clone(keys)
		if out[g] == nil {
			out[g] = []string{}
		}
	}
	return out
}

// GroupsEqual reports whether two sets of groups name the same groups with
// the same keys, in any order; nil and empty are equal.
func GroupsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for g, ka := range a {
		kb, ok := b[g]
		if !ok || len(ka) != len(kb) {
			return false
		}
		sa, sb := slices.Sorted(slices.Values(ka)), slices.Sorted(slices.Values(kb))
		if !slices.Equal(sa, sb) {
			return false
		}
	}
	return true
}

// GroupsOf lists the groups key is in, sorted.
func GroupsOf(groups map[string][]string, key string) []string {
	var out []string
	for _, g := range groupNames(groups) {
		if slices.Contains(groups[g], key) {
			out = append(out, g)
		}
	}
	return out
}

// CheckAssignment checks an assignment a gateway record states (PROTOCOL
// 9, Counting): each key in it one of approvers and in the group it maps
// to, each require entry's group filled by exactly its approvals, no group
// that is not required. With no slots the assignment is empty.
func CheckAssignment(p Policy, groups map[string][]string, approvers []string, assignment map[string]string) error {
	if len(p.Require) == 0 {
		if len(assignment) > 0 {
			return fmt.Errorf("it assigns keys to slots, but the rule has no require")
		}
		return nil
	}
	filled := map[string]int{}
	for _, k := range slices.Sorted(maps.Keys(assignment)) {
		g := assignment[k]
		if !slices.Contains(approvers, k) {
			return fmt.Errorf("it assigns %s, who is not a counted approver, to group %s", conversation.ShortKey(k), twokey.Clip(g))
		}
		if !slices.Contains(groups[g], k) {
			return fmt.Errorf("it assigns %s to group %s, which does not hold that key", conversation.ShortKey(k), twokey.Clip(g))
		}
		filled[g]++
	}
	for _, r := range p.Require {
		if filled[r.Group] != r.Approvals {
			return fmt.Errorf("it fills %d of group %s's %d slots", filled[r.Group], r.Group, r.Approvals)
		}
		delete(filled, r.Group)
	}
	for g := range filled {
		return fmt.Errorf("it assigns keys to group %s, which the rule does not require", twokey.Clip(g))
	}
	return nil
}
