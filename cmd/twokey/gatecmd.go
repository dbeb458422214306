package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

func newGateCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gate",
		Short: "Enable the gateway and manage its threshold rules",
		Long: `Once the gateway is enabled in a conversation, every member is a signer, and
a request runs only after M distinct signers approve it. M comes from the
most specific threshold rule that applies (service+endpoint+method beats
service+endpoint, beats service+method, ... beats * * *), else from the
conversation's default. A rule may ask for more: approvals from named
groups of signers, not counting the submitter, a reason, a cool-off during
which a veto stops the call ('gate rule add --help'). After enabling,
members, M, groups and rules change only by a proposal every signer
approves.`,
	}
	var approvals int
	var ruleFlags, groupFlags []string
	var enablePolicy policyFlags
	enable := &cobra.Command{
		Use:   "enable CONV --approvals M [--group NAME=MEMBER,MEMBER ...] [--rule SPEC ...]",
		Short: "Turn the gateway on (admin only); every member becomes a signer",
		Long: `Turn the gateway on: every member becomes a signer, and a request runs once
M distinct signers approve it, M from the most specific --rule that applies,
else --approvals.

--group NAME=MEMBER,MEMBER names a group of signers (members by name or key;
repeat the flag for each group). A rule may then require approvals from
groups. A rule's SPEC is service=S,endpoint=/p,method=M,approvals=N and may
add require=finance:1+security:1, submitter_counts=false,
reason_required=true, delay=15m and veto=N. With exactly one --rule, the
flags --require, --no-self-approval, --reason-required, --delay and --veto
add the same to it; with several, write them inside each SPEC.`,
		Example: "  twokey gate enable ops --approvals 2\n" +
			"  twokey gate enable ops --approvals 2 --rule service=httpbin,method=POST,approvals=3\n" +
			"  twokey gate enable ops --approvals 2 --group finance=alice,bob --group security=carol --rule service=httpbin,method=POST,approvals=3 --require finance=1,security=1 --delay 15m",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if approvals < 1 {
				return usagef("--approvals M is required (how many distinct signers must approve)")
			}
			rules, err := gate.ParseRules(ruleFlags)
			if err != nil {
				return usagef("--%s", twokey.ErrorMessage(err))
			}
			if given := enablePolicy.changed(cmd); len(given) > 0 {
				switch len(rules) {
				case 0:
					return usagef("%s add to a rule: give the rule with --rule, e.g. --rule approvals=%d for every request, or --rule service=S,approvals=N", strings.Join(given, ", "), approvals)
				case 1:
					if err := enablePolicy.apply(cmd, &rules[0]); err != nil {
						return err
					}
				default:
					return usagef("%s would apply to one of %d --rule flags: with several rules, write the fields inside each SPEC instead (require=finance:1+security:1, submitter_counts=false, reason_required=true, delay=15m, veto=1)", strings.Join(given, ", "), len(rules))
				}
			}
			c, conv, err := f.conversation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			groups, err := parseGroups(groupFlags, func(ref string) (string, error) { return memberKey(conv, ref) })
			if err != nil {
				return err
			}
			h, err := c.Header(cmd.Context(), conv.ID)
			if err != nil {
				return err
			}
			p := gate.EnablePayload{Header: h, RequiredApprovals: approvals, Rules: rules}
			if len(groups) > 0 {
				p.Groups = groups
			}
			if _, err := c.Post(cmd.Context(), conv.ID, conversation.KindGateEnable, p); err != nil {
				return err
			}
			g, err := c.Gate(cmd.Context(), conv.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "gateway enabled in %s: %d of %d signers must approve\n", conv.Name, g.RequiredApprovals, len(g.Signers))
			printSigners(f, g)
			printGroups(f.io.Out, g)
			if len(g.Rules) > 0 {
				printRules(f, g.Rules)
			}
			return nil
		},
	}
	enable.Flags().IntVar(&approvals, "approvals", 0, "default number of distinct signer approvals (M)")
	enable.Flags().StringArrayVar(&ruleFlags, "rule", nil, "a threshold rule: service=S,endpoint=/p,method=POST,approvals=N (omitted fields are *; may add require=, submitter_counts=, reason_required=, delay=, veto=)")
	enable.Flags().StringArrayVar(&groupFlags, "group", nil, "a group of signers, NAME=MEMBER,MEMBER (by name or key; repeatable)")
	enablePolicy.add(enable)

	show := &cobra.Command{
		Use:     "show CONV",
		Short:   "Show the gate: signers, groups, M, rules and their policies, secrets and open proposals",
		Example: "  twokey gate show ops",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, conv, g, err := f.gateOf(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !g.Enabled {
				fmt.Fprintf(f.io.Out, "gateway is off in %s; its admin enables it with 'twokey gate enable %s --approvals M'\n", conv.Name, conv.Name)
				return nil
			}
			fmt.Fprintf(f.io.Out, "gateway on in %s: default %d of %d signers\n", conv.Name, g.RequiredApprovals, len(g.Signers))
			printSigners(f, g)
			printGroups(f.io.Out, g)
			printRules(f, g.Rules)
			fmt.Fprintf(f.io.Out, "secrets: %d (twokey secret ls %s)\n", len(g.Secrets), conv.Name)
			printProposals(f, conv, g)
			return nil
		},
	}
	rule := &cobra.Command{Use: "rule", Short: "Add, remove and list threshold rules"}
	var r gate.Rule
	var addPolicy policyFlags
	add := &cobra.Command{
		Use:   "add CONV [SPEC] [--service S] [--endpoint /path] [--method M] --approvals N [--require GROUP=K,...] [--no-self-approval] [--reason-required] [--delay 15m] [--veto N]",
		Short: "Propose a new rule (every signer must approve the change)",
		Long: `Propose a new threshold rule. Give it with flags, or as one SPEC in the
syntax 'gate enable --rule' takes: service=S,endpoint=/path,method=M,approvals=N
(an omitted field is *).

A rule may ask for more than N approvals: --require finance=1,security=1
(the approvers include 1 of group finance and 1 of security, no one filling
two slots; 'twokey gate show' lists the groups), --no-self-approval (the
submitter's approval does not count), --reason-required (a request must
say why), --delay 15m (a cool-off after the approvals, during which
--veto N rejections stop the call; 1 by default). These flags also add to
a SPEC.`,
		Example: "  twokey gate rule add ops --service httpbin --endpoint /post --method POST --approvals 3\n" +
			"  twokey gate rule add ops service=httpbin,method=POST,approvals=3\n" +
			"  twokey gate rule add ops --service hackernews --approvals 1\n" +
			"  twokey gate rule add ops --service httpbin --method POST --approvals 3 --require finance=1,security=1 --no-self-approval --reason-required --delay 15m --veto 1",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				for _, name := range []string{"service", "endpoint", "method", "approvals"} {
					if cmd.Flags().Changed(name) {
						return usagef("give the rule as SPEC (%s) or with --service, --endpoint, --method and --approvals, not both", args[1])
					}
				}
				var err error
				if r, err = gate.ParseRule(args[1]); err != nil {
					return usagef("%s; give the rule as service=S,endpoint=/path,method=M,approvals=N (an omitted field is *) or as --service S --endpoint /path --method M --approvals N", twokey.ErrorMessage(err))
				}
			}
			if r.RequiredApprovals < 1 {
				return usagef("--approvals N is required")
			}
			if err := addPolicy.apply(cmd, &r); err != nil {
				return err
			}
			return f.changeRules(cmd.Context(), args[0], func(rules []gate.Rule) ([]gate.Rule, error) {
				return append(rules, gate.Normalize([]gate.Rule{r})...), nil
			})
		},
	}
	add.Flags().StringVar(&r.Service, "service", "*", "service name, or *")
	add.Flags().StringVar(&r.Endpoint, "endpoint", "*", "endpoint below the service's base URL: a template pattern like /item/{id}.json, a concrete path, or *")
	add.Flags().StringVar(&r.Method, "method", "*", "HTTP method, or *")
	add.Flags().IntVar(&r.RequiredApprovals, "approvals", 0, "approvals required for matching requests")
	addPolicy.add(add)
	var rm gate.Rule
	remove := &cobra.Command{
		Use:     "rm CONV [--service S] [--endpoint /path] [--method M]",
		Short:   "Propose removing the rule on exactly these fields",
		Example: "  twokey gate rule rm ops --service httpbin --endpoint /post --method POST",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			want := gate.Normalize([]gate.Rule{rm})[0]
			return f.changeRules(cmd.Context(), args[0], func(rules []gate.Rule) ([]gate.Rule, error) {
				i := slices.IndexFunc(rules, func(x gate.Rule) bool {
					return x.Service == want.Service && x.Endpoint == want.Endpoint && x.Method == want.Method
				})
				if i < 0 {
					return nil, usagef("no rule on %s %s %s ('twokey gate rule ls' lists them)", want.Service, want.Method, want.Endpoint)
				}
				return slices.Delete(rules, i, i+1), nil
			})
		},
	}
	remove.Flags().StringVar(&rm.Service, "service", "*", "service name, or *")
	remove.Flags().StringVar(&rm.Endpoint, "endpoint", "*", "endpoint, or *")
	remove.Flags().StringVar(&rm.Method, "method", "*", "HTTP method, or *")
	ls := &cobra.Command{
		Use:     "ls CONV",
		Short:   "List the rules, most specific first, each with its whole policy",
		Example: "  twokey gate rule ls ops",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, g, err := f.gateOf(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "default: %s\n", nOf(g.RequiredApprovals, "approval"))
			printRules(f, g.Rules)
			return nil
		},
	}
	rule.AddCommand(add, remove, ls)
	cmd.AddCommand(enable, show, rule)
	return cmd
}

// conversation resolves CONV and returns a client for it.
func (f *factory) conversation(ctx context.Context, ref string) (*client.Client, api.Summary, error) {
	c, err := f.client()
	if err != nil {
		return nil, api.Summary{}, err
	}
	conv, err := c.Conversation(ctx, ref)
	return c, conv, err
}

// gateOf resolves CONV and fetches its gate.
func (f *factory) gateOf(ctx context.Context, ref string) (*client.Client, api.Summary, *api.GateInfo, error) {
	c, conv, err := f.conversation(ctx, ref)
	if err != nil {
		return nil, conv, nil, err
	}
	g, err := c.Gate(ctx, conv.ID)
	return c, conv, g, err
}

// request resolves CONV and a request id or unique prefix in it.
func (f *factory) request(ctx context.Context, convRef, idRef string) (*client.Client, api.Summary, string, error) {
	c, conv, err := f.conversation(ctx, convRef)
	if err != nil {
		return nil, conv, "", err
	}
	id, err := c.ResolveRequest(ctx, conv.ID, idRef)
	return c, conv, id, err
}

// changeRules proposes a new rule set made by edit from the current one.
func (f *factory) changeRules(ctx context.Context, ref string, edit func([]gate.Rule) ([]gate.Rule, error)) error {
	c, conv, g, err := f.gateOf(ctx, ref)
	if err != nil {
		return err
	}
	if !g.Enabled {
		return usagef("the gateway is off in %s: give rules when enabling it (twokey gate enable %s --approvals M --rule ...)", conv.Name, conv.Name)
	}
	rules, err := edit(slices.Clone(g.Rules))
	if err != nil {
		return err
	}
	// A more specific rule with a smaller M wins over a stricter, broader
	// one (PROTOCOL 6): legal, but say so before anyone approves it.
	// The rules/check endpoint says the same (gate.NewShadows).
	for _, sh := range gate.NewShadows(g.Rules, rules) {
		fmt.Fprintf(f.io.Out, "note: %s\n", sh)
	}
	rec, err := c.Propose(ctx, conv.ID, gate.ProposePayload{Rules: &rules})
	if err != nil {
		return err
	}
	return reportProposal(ctx, f, c, conv, g, rec.Body)
}

func nameOf(g *api.GateInfo, key string) string {
	for _, m := range g.Members {
		if m.Key == key && m.Name != "" {
			return m.Name
		}
	}
	if len(key) > 8 {
		return key[:8]
	}
	return key
}

func printSigners(f *factory, g *api.GateInfo) {
	for _, s := range g.Signers {
		fmt.Fprintf(f.io.Out, "  signer %-10s %s\n", nameOf(g, s), s)
	}
}

func printRules(f *factory, rules []gate.Rule) {
	if len(rules) == 0 {
		fmt.Fprintln(f.io.Out, "no rules: every request needs the default")
		return
	}
	sorted := slices.Clone(rules)
	slices.SortStableFunc(sorted, func(a, b gate.Rule) int { return b.Score() - a.Score() })
	tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
	// A rule set of plain M-of-N rules is shown as it always was; with
	// one rule that asks for more, each rule's whole policy is in a
	// last column.
	rich := slices.ContainsFunc(sorted, func(r gate.Rule) bool { return !r.Plain() })
	head, policy := "", func(gate.Rule) string { return "" }
	if rich {
		head, policy = "\tPOLICY", func(r gate.Rule) string { return "\t" + r.Policy().Describe() }
	}
	fmt.Fprintln(tw, "SERVICE\tENDPOINT\tMETHOD\tAPPROVALS\tSPECIFICITY"+head)
	for _, r := range sorted {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d%s\n", r.Service, r.Endpoint, r.Method, r.RequiredApprovals, r.Score(), policy(r))
	}
	tw.Flush()
	for _, sh := range gate.Shadows(rules) {
		fmt.Fprintf(f.io.Out, "note: %s\n", sh)
	}
}
