package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newVoteCmd(f *factory, verb string) *cobra.Command {
	approve := verb == "approve"
	var reason string
	cmd := &cobra.Command{
		Use:   verb + " CONV ID",
		Short: map[bool]string{true: "Approve a pending request", false: "Reject a pending request"}[approve],
		Long: `Your vote is bound to the request's digest, computed here from the
submitter's signed request as it stands in the log: it can only ever count
for exactly the call you were shown. A unique prefix of the id is enough.`,
		Example: "  twokey " + verb + " ops 3f2a",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, conv, id, err := f.request(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if _, p, err := c.Vote(cmd.Context(), conv.ID, id, approve, reason); err != nil {
				return err
			} else {
				fmt.Fprintf(f.io.Out, "%s %s: %s %s\n", map[bool]string{true: "approved", false: "rejected"}[approve], id, p.Method, p.URL)
			}
			st, err := c.Request(cmd.Context(), conv.ID, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "request is %s, approvals %d/%d\n", st.State, len(st.Approvals), st.RequiredApprovals)
			return nil
		},
	}
	if !approve {
		cmd.Flags().StringVar(&reason, "reason", "", "why you reject it (shown to everyone)")
	}
	return cmd
}

func newCancelCmd(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:     "cancel CONV ID",
		Short:   "Cancel your own pending request",
		Example: "  twokey cancel ops 3f2a",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, conv, id, err := f.request(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if _, err := c.Cancel(cmd.Context(), conv.ID, id); err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "cancelled %s\n", id)
			return nil
		},
	}
}
