package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/termtext"
)

// Policies beyond M-of-N (PROTOCOL 9) as the command line gives and shows
// them: groups of signers (--group NAME=MEMBER,MEMBER), what a rule adds
// (--require, --no-self-approval, --reason-required, --delay, --veto), a
// request's and a vote's reason, the cool-off of an approved request.

// policyFlags are the flags that add PROTOCOL 9's fields to a rule.
type policyFlags struct {
	require   string
	noSelf    bool
	reasonReq bool
	delay     string
	veto      int
}

// policyFlagNames are the flags policyFlags adds, as the user types them.
var policyFlagNames = []string{"require", "no-self-approval", "reason-required", "delay", "veto"}

func (p *policyFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&p.require, "require", "", "the approvers must include K of each group: GROUP=K,GROUP=K (e.g. finance=1,security=1)")
	fl.BoolVar(&p.noSelf, "no-self-approval", false, "the submitter's own approval does not count (submitter_counts false)")
	fl.BoolVar(&p.reasonReq, "reason-required", false, "a request must say why (twokey request --reason TEXT)")
	fl.StringVar(&p.delay, "delay", "", "a cool-off between reaching the approvals and the call, e.g. 15m (at most 168h)")
	fl.IntVar(&p.veto, "veto", 0, "with --delay, how many rejections during the cool-off stop the call (default 1)")
}

// changed lists the policy flags given on cmd's command line, as --name.
func (p *policyFlags) changed(cmd *cobra.Command) []string {
	var out []string
	for _, n := range policyFlagNames {
		if cmd.Flags().Changed(n) {
			out = append(out, "--"+n)
		}
	}
	return out
}

// apply sets the fields the flags given on cmd name in r; a flag not
// given leaves r's field as it is (so a SPEC's own fields hold). A bad
// value is a usage error naming the flag.
func (p *policyFlags) apply(cmd *cobra.Command, r *gate.Rule) error {
	fl := cmd.Flags()
	if fl.Changed("require") {
		req, err := gate.ParseRequire(p.require)
		if err != nil {
			return usagef("--%s", twokey.ErrorMessage(err))
		}
		r.Require = req
	}
	if fl.Changed("no-self-approval") {
		counts := !p.noSelf
		r.SubmitterCounts = &counts
	}
	if fl.Changed("reason-required") {
		r.ReasonRequired = p.reasonReq
	}
	if fl.Changed("delay") {
		sec, err := gate.ParseDelay(p.delay)
		if err != nil {
			return usagef("--%s", twokey.ErrorMessage(err))
		}
		r.DelaySeconds = sec
	}
	if fl.Changed("veto") {
		if p.veto < 1 {
			return usagef("--veto %d: veto is how many rejections during the cool-off stop the call, at least 1", p.veto)
		}
		r.Veto = p.veto
	}
	if r.Veto > 0 && r.DelaySeconds == 0 {
		return usagef("--veto %d applies only during a cool-off: give --delay too (e.g. --delay 15m), or drop --veto", r.Veto)
	}
	*r = gate.Normalize([]gate.Rule{*r})[0]
	return nil
}

// parseGroups reads --group flags, NAME=MEMBER,MEMBER each (NAME= for an
// empty group), resolving each member with key (a name or a key). A
// group given twice is refused: give all its members in one flag.
func parseGroups(flags []string, key func(ref string) (string, error)) (map[string][]string, error) {
	out := map[string][]string{}
	for _, fl := range flags {
		name, list, ok := strings.Cut(fl, "=")
		name = strings.TrimSpace(name)
		if !ok {
			return nil, usagef("--group %q: write NAME=MEMBER,MEMBER (members by name or key), e.g. --group finance=alice,bob", fl)
		}
		if !gate.ValidGroupName(name) {
			return nil, usagef("--group %q: a group name is 1 to 32 of a-z, 0-9, _ and -", fl)
		}
		if _, dup := out[name]; dup {
			return nil, usagef("--group %s is given twice: give all its members in one flag, --group %s=MEMBER,MEMBER", name, name)
		}
		keys := []string{}
		for _, ref := range strings.Split(list, ",") {
			ref = strings.TrimSpace(ref)
			if ref == "" {
				continue
			}
			k, err := key(ref)
			if err != nil {
				return nil, usagef("--group %s: %s", name, err.Error())
			}
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		out[name] = keys
	}
	return out, nil
}

// groupNames is groups' names, sorted.
func groupNames(groups map[string][]string) []string {
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	return names
}

// printGroups writes g's groups a line each, members by name.
func printGroups(w io.Writer, g *api.GateInfo) {
	for _, name := range groupNames(g.Groups) {
		fmt.Fprintln(w, termtext.Line(fmt.Sprintf("  group %-10s %s", name, orDefault(namesOf(g, g.Groups[name]), "(empty)"))))
	}
}

func namesOf(g *api.GateInfo, keys []string) string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = nameOf(g, k)
	}
	return strings.Join(out, ", ")
}

// assignmentText is an assignment as "alice for finance, carol for
// security", by group then name.
func assignmentText(asg map[string]string, name func(string) string) string {
	type slot struct{ who, group string }
	var slots []slot
	for k, grp := range asg {
		slots = append(slots, slot{name(k), grp})
	}
	slices.SortFunc(slots, func(a, b slot) int {
		if c := strings.Compare(a.group, b.group); c != 0 {
			return c
		}
		return strings.Compare(a.who, b.who)
	})
	parts := make([]string, len(slots))
	for i, s := range slots {
		parts[i] = s.who + " for " + s.group
	}
	return strings.Join(parts, ", ")
}

// approvedText is the state of a request in its cool-off: "approved —
// executes at 12:15:00 UTC (in 14m59s) unless vetoed (0 of 1 vetoes)".
func approvedText(executableAt string, vetoes, veto int, now time.Time) string {
	at, err := time.Parse(time.RFC3339Nano, executableAt)
	if err != nil {
		return fmt.Sprintf("approved — in its cool-off unless vetoed (%d of %d vetoes)", vetoes, veto)
	}
	left := "due now"
	if d := at.Sub(now).Round(time.Second); d > 0 {
		left = "in " + d.String()
	}
	return fmt.Sprintf("approved — executes at %s UTC (%s) unless vetoed (%d of %d vetoes)", at.UTC().Format("15:04:05"), left, vetoes, veto)
}

// checkReason is gate.CheckReason for a flag, a usage error naming it; an
// empty reason given on purpose is refused too (a reason is 1 to 1,000
// characters: leave the flag out to give none).
func checkReason(cmd *cobra.Command, flag, reason string) error {
	if !cmd.Flags().Changed(flag) {
		return nil
	}
	if strings.TrimSpace(reason) == "" {
		return usagef("--%s is empty: a reason is 1 to %d characters (leave --%s out to give none)", flag, gate.MaxReasonChars, flag)
	}
	if err := gate.CheckReason("--"+flag, reason); err != nil {
		return usagef("%s: shorten it", twokey.ErrorMessage(err))
	}
	return nil
}

// unmetText says what a pending request's policy still lacks, given its
// counted approvals and the groups in force (a change of groups cancels
// a request, so they are its groups): "1 more approval", "1 more of
// security". It is a hint: whether the slots can be filled is
// gate.Match's to say, and "" means nothing obvious is missing.
func unmetText(p gate.Policy, groups map[string][]string, approvals []string) string {
	var parts []string
	if n := len(approvals); n < p.RequiredApprovals {
		parts = append(parts, nOf(p.RequiredApprovals-n, "more approval"))
	}
	for _, r := range p.Require {
		have := 0
		for _, k := range approvals {
			if slices.Contains(groups[r.Group], k) {
				have++
			}
		}
		if have < r.Approvals {
			parts = append(parts, fmt.Sprintf("%d more of %s", r.Approvals-have, r.Group))
		}
	}
	if len(parts) == 0 && len(p.Require) > 0 {
		if _, ok := gate.Match(p, groups, approvals, ""); !ok {
			parts = append(parts, "approvals that fill the group slots with distinct keys")
		}
	}
	return strings.Join(parts, " and ")
}
