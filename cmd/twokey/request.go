package main

import (
	"context"
	"fmt"
	"io"
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
}

func newRequestCmd(f *factory) *cobra.Command {
	o := &requestOptions{}
	cmd := &cobra.Command{
		Use:   "request CONV TEMPLATE [k=v ...]",
		Short: "Propose a call from a template (counts as your approval)",
		Long: `Fill in a template and propose the call to the conversation. Your request
counts as your own approval; it runs once M distinct signers have approved it
(M from the most specific rule that applies), before it expires.

--preview prints the resolved call, the rule that applies and its M, and
submits nothing.

'request show' is the subcommand below. For a conversation named "show",
put -- before the conversation, with the flags ahead of it:
twokey request --preview -- show dogs.breed breed=hound`,
		Example: "  twokey request ops dogs.breed breed=hound --preview\n" +
			"  twokey request ops httpbin.headers --expires 30m --wait",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return runRequest(cmd.Context(), f, o, args) },
	}
	cmd.Flags().DurationVar(&o.expires, "expires", time.Hour, "how long the request waits for approvals (at most 168h)")
	cmd.Flags().BoolVar(&o.preview, "preview", false, "show the resolved call and its M; submit nothing")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait until the request settles and print the outcome")
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
	if o.preview {
		for _, line := range pv.Lines {
			fmt.Fprintln(f.io.Out, line)
		}
		return nil
	}
	p := pv.Request.Payload(conversation.FormatTime(c.Now().Add(o.expires)))
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
	fmt.Fprintf(f.io.Out, "approvals %d/%d; others approve with: twokey approve %s %s\n", len(st.Approvals), st.RequiredApprovals, conv.Name, sent.RequestID[:8])
	if o.wait {
		st, err = c.WaitRequest(ctx, conv.ID, sent.RequestID)
		if err != nil {
			return err
		}
		return printRequest(ctx, f.io.Out, c, conv, st, true)
	}
	return nil
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
	fmt.Fprintf(tw, "state\t%s\n", st.State)
	fmt.Fprintf(tw, "approvals\t%d/%d (%s)\n", len(st.Approvals), st.RequiredApprovals, nl(st.Approvals))
	if len(st.Rejections) > 0 {
		fmt.Fprintf(tw, "rejections\t%s\n", nl(st.Rejections))
	}
	fmt.Fprintf(tw, "expires\t%s\n", st.ExpiresAt)
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
	cmd.Flags().StringVar(&state, "state", "", "only requests in this state (pending, executing, executed, failed, expired, rejected, cancelled)")
	return cmd
}
