package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/termtext"
	"github.com/twokey/twokey/templates"
)

type requestOptions struct {
	expires time.Duration
	preview bool
	wait    bool
	reason  string
	cmd     *cobra.Command // for which flags were given
}

func newRequestCmd(f *factory) *cobra.Command {
	o := &requestOptions{}
	cmd := &cobra.Command{
		Use:   "request CONV TEMPLATE [k=v ...]",
		Short: "Propose a call from a template (counts as your approval)",
		Long: `Fill in a template and propose the call to the conversation. Your request
counts as your own approval; it runs once M distinct signers have approved it
(M from the most specific rule that applies), before it expires.

--preview prints the resolved call, the rule that applies, its M and,
when the rule asks for more (groups, a reason, a cool-off), its whole
policy, and submits nothing.

--reason says why you ask (1 to 1,000 characters, shown to every signer);
a rule with a required reason refuses a request without one.

'request show' is the subcommand below. For a conversation named "show",
put -- before the conversation, with the flags ahead of it:
twokey request --preview -- show dogs.breed breed=hound`,
		Example: "  twokey request ops dogs.breed breed=hound --preview\n" +
			"  twokey request ops httpbin.headers --expires 30m --wait\n" +
			"  twokey request ops httpbin.echo data=refund --reason \"refund for ticket 4411\"",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.cmd = cmd
			return runRequest(cmd.Context(), f, o, args)
		},
	}
	cmd.Flags().DurationVar(&o.expires, "expires", time.Hour, "how long the request waits for approvals (at most 168h)")
	cmd.Flags().BoolVar(&o.preview, "preview", false, "show the resolved call and its M; submit nothing")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait until the request settles and print the outcome")
	cmd.Flags().StringVar(&o.reason, "reason", "", "why you ask (1 to 1,000 characters; required by a rule with a required reason)")
	var wait, body bool
	show := &cobra.Command{
		Use:   "show CONV ID",
		Short: "Show a request's state and outcome (a unique id prefix is enough)",
		Long: `Show a request's state and outcome. ID is the request's id or a unique
prefix of it.

To make a request in a conversation named "show" rather than show one, put
-- before the conversation (flags ahead of it):
twokey request --preview -- show dogs.breed breed=hound`,
		Example: "  twokey request show ops 3f2a --wait",
		Args:    cobra.ArbitraryArgs, // checked in RunE, which names the other reading
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 || !requestIDLike(args[1]) {
				return usagef("request show takes CONV ID (an id is hex, e.g. 3f2a); got %s. To make a request in a conversation named \"show\" instead, put -- before it: %s",
					gotArgs(len(args)), shellLine(append([]string{"twokey", "request", "--", "show"}, args...)))
			}
			c, conv, id, err := f.request(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			var st *api.RequestState
			if wait {
				st, err = c.WaitRequest(cmd.Context(), conv.ID, id)
			} else {
				st, err = c.Request(cmd.Context(), conv.ID, id)
			}
			if err != nil {
				return err
			}
			return printRequest(cmd.Context(), f.io.Out, c, conv, st, body || wait)
		},
	}
	show.Flags().BoolVar(&wait, "wait", false, "wait until the request settles")
	show.Flags().BoolVar(&body, "body", false, "print the whole response body")
	show.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		err = c.Root().FlagErrorFunc()(c, err)
		if strings.Contains(err.Error(), "--preview") || strings.Contains(err.Error(), "--expires") {
			return usageError{err.Error() + `; those are request's flags: for a conversation named "show", write them before -- and the conversation: twokey request --preview -- show TEMPLATE [k=v ...]`}
		}
		return err
	})
	cmd.AddCommand(show)
	return cmd
}

// shellLine joins argv as a command line a shell reads back as argv.
func shellLine(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = templates.ShellQuote(a)
	}
	return strings.Join(out, " ")
}

// requestIDLike reports whether s could be a request id or a prefix of
// one: lower-case hex and dashes.
func requestIDLike(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdef-") == ""
}

func runRequest(ctx context.Context, f *factory, o *requestOptions, args []string) error {
	if o.expires <= 0 {
		return usagef("--expires %s: a request must wait some time for approvals; give a positive duration, e.g. --expires 30m (the default is 1h, the longest 168h)", o.expires)
	}
	if o.expires > twokey.MaxRequestTTL {
		return usagef("--expires %s: a request waits at most 7 days (168h) for approvals; give a shorter --expires", o.expires)
	}
	if o.cmd != nil {
		if err := checkReason(o.cmd, "reason", o.reason); err != nil {
			return err
		}
	}
	c, conv, err := f.conversation(ctx, args[0])
	if err != nil {
		return err
	}
	cat, err := c.Catalog(ctx)
	if err != nil {
		return err
	}
	t, _ := findTemplate(cat, args[1])
	if t == nil {
		return unknownTemplate(cat, args[1])
	}
	// Read against the template, so that a mistake shows its parameters.
	kv, err := t.ParseArgs(args[2:])
	if err != nil {
		return usageError{twokey.ErrorMessage(err)}
	}
	// The server resolves the template and says what the gate makes of
	// it (gate.NewPreview): the preview prints its lines, a submission
	// signs its request.
	pv, err := c.Preview(ctx, conv.ID, args[1], kv)
	if twokey.ErrorCode(err) == twokey.EBadPayload {
		// The preview's body is the command line's template and
		// parameters: what it refuses is a wrong argument (exit 2).
		return usageError{twokey.ErrorMessage(err)}
	}
	if err != nil {
		return err
	}
	policy := gate.PolicyOf(pv.RequiredApprovals, pv.Rule)
	if o.preview {
		for _, line := range previewLines(pv) {
			fmt.Fprintln(f.io.Out, line)
		}
		return nil
	}
	if pv.GateEnabled && policy.ReasonRequired && o.reason == "" {
		return usagef("rule %s requires a reason: say why you ask with --reason TEXT (1 to %d characters)", ruleName(pv.Rule), gate.MaxReasonChars)
	}
	p := pv.Request.Payload(conversation.FormatTime(c.Now().Add(o.expires)))
	p.Reason = o.reason
	rec, err := c.Submit(ctx, conv.ID, p)
	if err != nil {
		return err
	}
	var sent gate.RequestPayload
	_ = jsonUnmarshal(rec.Body, &sent)
	st, err := c.Request(ctx, conv.ID, sent.RequestID)
	if err != nil {
		return err
	}
	fmt.Fprintf(f.io.Out, "submitted request %s: %s %s\n", sent.RequestID, p.Method, p.URL)
	if sp := st.Policy.Policy; !plainPolicy(sp) {
		fmt.Fprintf(f.io.Out, "policy: %s\n", sp.Describe())
	}
	fmt.Fprintf(f.io.Out, "approvals %d/%d; others approve with: twokey approve %s %s\n", len(st.Approvals), st.RequiredApprovals, conv.Name, sent.RequestID[:8])
	if st.State == gate.StateApproved {
		fmt.Fprintf(f.io.Out, "%s; veto with: twokey veto %s %s\n", approvedText(st.Policy.ExecutableAt, len(st.Vetoes), st.Policy.Veto, c.Now()), conv.Name, sent.RequestID[:8])
	}
	if o.wait {
		st, err = c.WaitRequest(ctx, conv.ID, sent.RequestID)
		if err != nil {
			return err
		}
		return printRequest(ctx, f.io.Out, c, conv, st, true)
	}
	return nil
}

// previewLines are the preview's lines (the server's, gate.NewPreview),
// with "policy: ..." before the last when the rule that applies asks for
// more than M approvals (and the server's lines do not say it already).
func previewLines(pv *api.Preview) []string {
	lines := pv.Lines
	if !pv.GateEnabled || pv.Rule == nil || pv.Rule.Plain() || len(lines) == 0 {
		return lines
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "policy: ") {
			return lines
		}
	}
	policy := "policy: " + gate.PolicyOf(pv.RequiredApprovals, pv.Rule).Describe()
	out := append(slices.Clone(lines[:len(lines)-1]), policy)
	return append(out, lines[len(lines)-1])
}

// plainPolicy reports whether p says no more than M approvals.
func plainPolicy(p gate.Policy) bool {
	return len(p.Require) == 0 && p.SubmitterCounts && !p.ReasonRequired && p.DelaySeconds == 0
}

// ruleName is a rule as "httpbin POST *", or "the default" for none.
func ruleName(r *gate.Rule) string {
	if r == nil {
		return "the default"
	}
	return fmt.Sprintf("%s %s %s", r.Service, r.Method, r.Endpoint)
}

// printRequest writes a request's state, and its response when executed.
func printRequest(ctx context.Context, w io.Writer, c *client.Client, conv api.Summary, st *api.RequestState, body bool) error {
	names := map[string]string{}
	for _, m := range conv.Members {
		names[m.Key] = m.Name
	}
	nl := func(keys []string) string {
		out := make([]string, len(keys))
		for i, k := range keys {
			out[i] = orDefault(names[k], conversation.ShortKey(k))
		}
		return strings.Join(out, ", ")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "request\t%s\n", st.RequestID)
	fmt.Fprintf(tw, "call\t%s %s\n", st.Request.Method, st.Request.URL)
	if st.Request.Template != "" {
		fmt.Fprintf(tw, "template\t%s\n", st.Request.Template)
	}
	if st.Program != "" {
		fmt.Fprintf(tw, "program\t%s\n", st.Program)
	}
	if st.Request.Reason != "" {
		fmt.Fprintf(tw, "why\t%s\n", termtext.Line(st.Request.Reason))
	}
	if !plainPolicy(st.Policy.Policy) {
		fmt.Fprintf(tw, "policy\t%s\n", st.Policy.Describe())
	}
	state := st.State
	if st.State == gate.StateApproved {
		state = approvedText(st.Policy.ExecutableAt, len(st.Vetoes), st.Policy.Veto, c.Now())
	} else if st.State == gate.StateRejected && st.Result != nil && st.Result.Reason == gate.ReasonVetoed {
		state = "rejected (vetoed during the cool-off)"
	}
	fmt.Fprintf(tw, "state\t%s\n", state)
	fmt.Fprintf(tw, "approvals\t%d/%d (%s)\n", len(st.Approvals), st.RequiredApprovals, nl(st.Approvals))
	if st.State == gate.StatePending && len(st.Policy.Require) > 0 {
		if g, err := c.Gate(ctx, conv.ID); err == nil {
			if unmet := unmetText(st.Policy.Policy, g.Groups, st.Approvals); unmet != "" {
				fmt.Fprintf(tw, "needs\t%s\n", unmet)
			}
		}
	}
	if len(st.Assignment) > 0 {
		fmt.Fprintf(tw, "groups\t%s\n", assignmentText(st.Assignment, func(k string) string { return orDefault(names[k], conversation.ShortKey(k)) }))
	}
	if len(st.Rejections) > 0 {
		fmt.Fprintf(tw, "rejections\t%s\n", nl(st.Rejections))
	}
	if len(st.Vetoes) > 0 {
		fmt.Fprintf(tw, "vetoes\t%d of %d (%s)\n", len(st.Vetoes), st.Policy.Veto, nl(st.Vetoes))
	}
	if st.State != gate.StateApproved {
		fmt.Fprintf(tw, "expires\t%s\n", st.ExpiresAt)
	}
	fmt.Fprintf(tw, "digest\t%s\n", st.RequestDigest)
	if st.Result != nil {
		if st.Result.Reason != "" {
			fmt.Fprintf(tw, "reason\t%s\n", st.Result.Reason)
		}
		if st.Result.Detail != "" {
			fmt.Fprintf(tw, "detail\t%s\n", termtext.Line(st.Result.Detail))
		}
		if st.Result.Status != 0 {
			fmt.Fprintf(tw, "status\t%d in %d ms\n", st.Result.Status, st.Result.DurationMS)
		}
	}
	tw.Flush()
	if body && st.State == gate.StateExecuted && st.Result != nil && st.Result.Seq > 0 {
		recs, err := c.Records(ctx, conv.ID, st.Result.Seq, 1)
		if err == nil && len(recs) == 1 && recs[0].Kind == conversation.KindGateResponse {
			var p gate.ResponsePayload
			if jsonUnmarshal(recs[0].Body, &p) == nil {
				fmt.Fprintf(w, "response %d %s (%s)\n", p.Status, p.ContentType, nOf(p.Redactions, "redaction"))
				fmt.Fprintln(w, responseBody(&p, 0))
			}
		}
	}
	return nil
}

func newRequestsCmd(f *factory) *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:     "requests CONV [--state pending]",
		Short:   "List a conversation's requests, newest first",
		Example: "  twokey requests ops --state pending",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, conv, err := f.conversation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			list, err := c.Requests(cmd.Context(), conv.ID, state)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintln(f.io.Out, "no requests")
				return nil
			}
			tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tAPPROVALS\tTEMPLATE\tCALL\tEXPIRES")
			for _, r := range list {
				fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s %s\t%s\n", r.RequestID[:8], r.State, len(r.Approvals), r.RequiredApprovals,
					orDefault(r.Request.Template, "-"), r.Request.Method, r.Request.URL, r.ExpiresAt)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only requests in this state (pending, approved, executing, executed, failed, expired, rejected, cancelled)")
	return cmd
}
