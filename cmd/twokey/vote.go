package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/gate"
)

// newVoteCmd is approve, reject or veto. A veto is a rejection (a
// gate.reject) during a request's cool-off (PROTOCOL 9): it refuses a
// request that is not in one, where a rejection means something else.
func newVoteCmd(f *factory, verb string) *cobra.Command {
	approve, veto := verb == "approve", verb == "veto"
	var reason string
	short := map[string]string{
		"approve": "Approve a pending request",
		"reject":  "Reject a pending request, or veto one in its cool-off",
		"veto":    "Veto a request in its cool-off (a reject while it is approved)",
	}[verb]
	long := `Your vote is bound to the request's digest, computed here from the
submitter's signed request as it stands in the log: it can only ever count
for exactly the call you were shown. A unique prefix of the id is enough.

--reason says why (1 to 1,000 characters, shown to everyone).`
	switch verb {
	case "reject":
		long += `

A request under a rule with a cool-off (--delay) waits, once approved,
until it executes: a rejection then is a veto, and the rule's veto count of
them stop the call ('twokey veto' says the same and refuses otherwise).`
	case "veto":
		long += `

A request under a rule with a cool-off (--delay) waits, once approved,
until it executes; during that time the rule's veto count of rejections
(1 by default) stop the call. veto is 'twokey reject' during the cool-off,
and refuses a request that is not in one (a rejection of a pending request
is 'twokey reject').`
	case "approve":
		long += `

An approval of a request already approved and in its cool-off is recorded
and changes nothing.`
	}
	cmd := &cobra.Command{
		Use:     verb + " CONV ID",
		Short:   short,
		Long:    long,
		Example: "  twokey " + verb + " ops 3f2a\n  twokey " + verb + " ops 3f2a --reason \"checked the amount\"",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkReason(cmd, "reason", reason); err != nil {
				return err
			}
			c, conv, id, err := f.request(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			st, p, err := castVote(cmd.Context(), c, conv, id, approve, veto, reason)
			if err != nil {
				return err
			}
			did := map[bool]string{true: "approved", false: "rejected"}[approve]
			if st.State == gate.StateApproved && !approve {
				did = "vetoed"
			}
			fmt.Fprintf(f.io.Out, "%s %s: %s %s\n", did, id, p.Method, p.URL)
			after, err := c.Request(cmd.Context(), conv.ID, id)
			if err != nil {
				return err
			}
			switch {
			case after.State == gate.StateApproved && st.State == gate.StatePending:
				fmt.Fprintf(f.io.Out, "request is %s; veto with: twokey veto %s %s\n", approvedText(after.Policy.ExecutableAt, len(after.Vetoes), after.Policy.Veto, c.Now()), conv.Name, shortID(id))
			case after.State == gate.StateApproved:
				fmt.Fprintf(f.io.Out, "request is %s\n", approvedText(after.Policy.ExecutableAt, len(after.Vetoes), after.Policy.Veto, c.Now()))
			case after.State == gate.StatePending && len(after.Policy.Require) > 0:
				line := fmt.Sprintf("request is pending, approvals %d/%d", len(after.Approvals), after.RequiredApprovals)
				if g, err := c.Gate(cmd.Context(), conv.ID); err == nil {
					if unmet := unmetText(after.Policy.Policy, g.Groups, after.Approvals); unmet != "" {
						line += "; it still needs " + unmet
					}
				}
				fmt.Fprintln(f.io.Out, line)
			case after.State == gate.StateRejected && after.Result != nil && after.Result.Reason == gate.ReasonVetoed:
				fmt.Fprintf(f.io.Out, "request is rejected: vetoed (%d of %d vetoes); it will not execute\n", len(after.Vetoes), after.Policy.Veto)
			default:
				fmt.Fprintf(f.io.Out, "request is %s, approvals %d/%d\n", after.State, len(after.Approvals), after.RequiredApprovals)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", map[string]string{
		"approve": "why you approve it (shown to everyone)",
		"reject":  "why you reject it (shown to everyone)",
		"veto":    "why you veto it (shown to everyone)",
	}[verb])
	return cmd
}

// castVote votes on request id as client.Vote does (bound to the digest
// of the submitter's signed request, read from the log and verified),
// also while the request is approved and in its cool-off: an approval
// then changes nothing, a rejection is a veto. veto refuses a request
// that is not in its cool-off. It returns the state the vote was cast in.
func castVote(ctx context.Context, c *client.Client, conv api.Summary, id string, approve, veto bool, reason string) (*api.RequestState, *gate.RequestPayload, error) {
	st, err := c.Request(ctx, conv.ID, id)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case veto && st.State == gate.StatePending:
		return nil, nil, usagef("request %s is pending, not in a cool-off: nothing to veto yet. To reject it, run 'twokey reject %s %s'", shortID(id), conv.Name, shortID(id))
	case veto && st.State != gate.StateApproved:
		return nil, nil, twokey.Errorf(twokey.ERequestClosed, "request %s is %s; only a request approved and in its cool-off can be vetoed", shortID(id), st.State)
	case st.State != gate.StatePending && st.State != gate.StateApproved:
		return nil, nil, twokey.Errorf(twokey.ERequestClosed, "request %s is %s; it takes no more votes", id, st.State)
	}
	p, digest, err := c.RequestPayload(ctx, conv.ID, st)
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.VoteDigest(ctx, conv.ID, st.RequestID, digest, approve, reason); err != nil {
		return nil, nil, err
	}
	return st, p, nil
}

func newCancelCmd(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:     "cancel CONV ID",
		Short:   "Cancel your own pending request (or one approved and in its cool-off)",
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
