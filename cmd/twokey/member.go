package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/api"
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
	var adds, removes []string
	var approvals int
	propose := &cobra.Command{
		Use:     "propose CONV [--add NAME=KEY] [--remove NAME|KEY] [--approvals M]",
		Short:   "Propose a membership or threshold change (counts as your approval)",
		Example: "  twokey member propose ops --add dave=KEY\n  twokey member propose ops --remove carol --approvals 1",
		Args:    cobra.ExactArgs(1),
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
			if len(add) == 0 && len(rm) == 0 && approvals == 0 {
				return usagef("propose what? give --add, --remove or --approvals")
			}
			if len(add) == 0 {
				add = nil
			}
			rec, err := c.Propose(cmd.Context(), conv.ID, gate.ProposePayload{Add: add, Remove: rm, RequiredApprovals: approvals})
			if err != nil {
				return err
			}
			return reportProposal(cmd.Context(), f, c, conv, before, rec.Body)
		},
	}
	propose.Flags().StringArrayVar(&adds, "add", nil, "add a member, NAME=KEY (repeatable)")
	propose.Flags().StringArrayVar(&removes, "remove", nil, "remove a member by name or key (repeatable)")
	propose.Flags().IntVar(&approvals, "approvals", 0, "new default M")
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
		Short:   "List members and which are signers",
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
