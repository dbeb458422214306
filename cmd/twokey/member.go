package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

func newMemberCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Change members (admin before the gateway is on; by proposal after)",
		Long: `Before the gateway is enabled the admin adds and removes members directly.
Once it is on, members, M and rules change only through a proposal: adding a
member or changing M or rules needs every current signer; removing needs
every signer not being removed. When a change applies, every pending request
of the conversation is cancelled (its signers have changed).`,
	}
	var adds, removes, groupFlags, dropGroups []string
	var approvals int
	propose := &cobra.Command{
		Use:   "propose CONV [--add NAME=KEY] [--remove NAME|KEY] [--approvals M] [--group NAME=MEMBER,MEMBER] [--drop-group NAME]",
		Short: "Propose a membership, threshold or group change (counts as your approval)",
		Long: `Propose a change of members, of the default M or of the groups of signers.
It applies once every signer it needs has approved ('twokey member approve').

--group NAME=MEMBER,MEMBER sets that group to exactly those members (by name
or key; a member added by --add in the same proposal may be named); other
groups stay as they are. --drop-group NAME removes a group. A member removed
by --remove leaves every group. A change of groups is a membership change:
it cancels the pending requests when it applies.`,
		Example: "  twokey member propose ops --add dave=KEY\n" +
			"  twokey member propose ops --remove carol --approvals 1\n" +
			"  twokey member propose ops --group finance=alice,dave\n" +
			"  twokey member propose ops --drop-group security",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			add, err := parseMembers(adds)
			if err != nil {
				return err
			}
			c, conv, before, err := f.gateOf(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var rm []string
			for _, r := range removes {
				k, err := memberKey(conv, r)
				if err != nil {
					return err
				}
				rm = append(rm, k)
			}
			if len(add) == 0 && len(rm) == 0 && approvals == 0 && len(groupFlags) == 0 && len(dropGroups) == 0 {
				return usagef("propose what? give --add, --remove, --approvals, --group or --drop-group")
			}
			groups, err := proposedGroups(conv, before, add, rm, groupFlags, dropGroups)
			if err != nil {
				return err
			}
			if len(add) == 0 {
				add = nil
			}
			rec, err := c.Propose(cmd.Context(), conv.ID, gate.ProposePayload{Add: add, Remove: rm, RequiredApprovals: approvals, Groups: groups})
			if err != nil {
				return err
			}
			return reportProposal(cmd.Context(), f, c, conv, before, rec.Body)
		},
	}
	propose.Flags().StringArrayVar(&adds, "add", nil, "add a member, NAME=KEY (repeatable)")
	propose.Flags().StringArrayVar(&removes, "remove", nil, "remove a member by name or key (repeatable)")
	propose.Flags().IntVar(&approvals, "approvals", 0, "new default M")
	propose.Flags().StringArrayVar(&groupFlags, "group", nil, "set a group of signers to NAME=MEMBER,MEMBER (by name or key; repeatable; other groups unchanged)")
	propose.Flags().StringArrayVar(&dropGroups, "drop-group", nil, "remove the group NAME (repeatable)")
	approveOpts := &approveProposalOptions{}
	approve := &cobra.Command{
		Use:     "approve CONV PROPOSAL_ID",
		Short:   "Approve an open proposal (a unique id prefix is enough)",
		Example: "  twokey member approve ops 9c1e",
		Args:    cobra.ExactArgs(2),
		Long: `Approve an open proposal. It first prints what the proposal changes, as its
proposer signed it (read from the log and verified): signers in and out, the
default M before and after, rules added, removed and given another M. On a
terminal it then asks "approve? [y/N]"; --yes approves without asking. When
standard input is not a terminal (a script, a pipe) and --yes is not given,
no one can confirm the change, so nothing is approved and it exits 2.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			approveOpts.conv, approveOpts.id = args[0], args[1]
			return runApproveProposal(cmd.Context(), f, approveOpts)
		},
	}
	approve.Flags().BoolVarP(&approveOpts.yes, "yes", "y", false, "approve without asking (what it changes is printed all the same)")
	ls := &cobra.Command{
		Use:     "ls CONV",
		Short:   "List members, which are signers and the groups they are in",
		Example: "  twokey member ls ops",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, conv, g, err := f.gateOf(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, m := range g.Members {
				role := "member"
				for _, s := range g.Signers {
					if s == m.Key {
						role = "signer"
					}
				}
				if m.Key == g.Admin {
					role += ", admin"
				}
				if gs := gate.GroupsOf(g.Groups, m.Key); len(gs) > 0 {
					role += "; groups " + strings.Join(gs, ", ")
				}
				fmt.Fprintf(f.io.Out, "%-12s %s  %s\n", orDefault(m.Name, "-"), m.Key, role)
			}
			printProposals(f, conv, g)
			return nil
		},
	}
	add := &cobra.Command{
		Use:     "add CONV NAME=KEY",
		Short:   "Add a member (admin, before the gateway is enabled)",
		Example: "  twokey member add ops dave=KEY",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ms, err := parseMembers(args[1:])
			if err != nil {
				return err
			}
			c, conv, err := f.conversation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if _, err := c.AddMember(cmd.Context(), conv.ID, ms[0]); err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "added %s to %s\n", ms[0].Name, conv.Name)
			return nil
		},
	}
	remove := &cobra.Command{
		Use:     "remove CONV NAME|KEY",
		Short:   "Remove a member (admin, before the gateway is enabled)",
		Example: "  twokey member remove ops carol",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, conv, err := f.conversation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			k, err := memberKey(conv, args[1])
			if err != nil {
				return err
			}
			if _, err := c.RemoveMember(cmd.Context(), conv.ID, k); err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "removed %s from %s\n", args[1], conv.Name)
			return nil
		},
	}
	cmd.AddCommand(add, remove, propose, approve, ls)
	return cmd
}

// proposedGroups is the whole new set of groups a member.propose carries
// (PROTOCOL 9), or nil to leave them: the groups in force, each --group
// set to its members, each --drop-group gone. Members are named as
// memberKey reads them, among the conversation's members and those add
// brings in; a member rm removes leaves every group.
func proposedGroups(conv api.Summary, before *api.GateInfo, add []conversation.Member, rm, set, drop []string) (*map[string][]string, error) {
	if len(set) == 0 && len(drop) == 0 {
		return nil, nil
	}
	known := api.Summary{Name: conv.Name, Members: append(slices.Clone(conv.Members), add...)}
	sets, err := parseGroups(set, func(ref string) (string, error) { return memberKey(known, ref) })
	if err != nil {
		return nil, err
	}
	groups := gate.CloneGroups(before.Groups)
	if groups == nil {
		groups = map[string][]string{}
	}
	for _, name := range drop {
		if _, ok := groups[name]; !ok {
			return nil, usagef("--drop-group %s: %s has no group %s (%s)", name, conv.Name, name, groupsHint(before.Groups))
		}
		if _, ok := sets[name]; ok {
			return nil, usagef("--drop-group %s and --group %s: give one of them", name, name)
		}
		delete(groups, name)
	}
	for name, keys := range sets {
		for _, k := range keys {
			if slices.Contains(rm, k) {
				return nil, usagef("--group %s names %s, whom --remove takes out: a group holds signers only", name, nameOf(before, k))
			}
		}
		groups[name] = keys
	}
	for name, keys := range groups {
		groups[name] = slices.DeleteFunc(keys, func(k string) bool { return slices.Contains(rm, k) })
	}
	return &groups, nil
}

// groupsHint names the groups set, for an error.
func groupsHint(groups map[string][]string) string {
	if len(groups) == 0 {
		return "none is set"
	}
	return "the groups are " + strings.Join(groupNames(groups), ", ")
}

// memberKey finds a member by name or key.
func memberKey(conv api.Summary, ref string) (string, error) {
	var hits []string
	for _, m := range conv.Members {
		if m.Key == ref || m.Name == ref || (len(ref) >= 6 && strings.HasPrefix(m.Key, ref)) {
			hits = append(hits, m.Key)
		}
	}
	if len(hits) != 1 {
		return "", usagef("%q names %d members of %s; give a name or key that names exactly one", ref, len(hits), conv.Name)
	}
	return hits[0], nil
}
