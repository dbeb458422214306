package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/config"
)

// webhookEvents are the events a target may ask for (docs/operations.md,
// Notifications); the default set is every one but request.approved_by.
var webhookEvents = config.NotificationEvents

var (
	webhookFormats = []string{api.WebhookJSON, api.WebhookSlack, api.WebhookNtfy}
	webhookDetails = []string{api.DetailSummary, api.DetailFull}
	deliveryStates = []string{api.DeliveryQueued, api.DeliveryDelivered, api.DeliveryDead}
)

func newWebhooksCmd(f *factory) *cobra.Command {
	var mkey string
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Notification targets: webhooks told when a request needs approval, runs, fails, ...",
		Long: `A webhook target receives a notification for each event of the conversations
it covers: a request made, approved, executed, failed, rejected, expired or
cancelled, a membership proposed or changed, a quorum at risk. Its format is
json (a versioned schema), slack (an incoming-webhook message) or ntfy;
each delivery is signed as Standard Webhooks says. Deliveries are queued and retried; a
delivery given up is dead, and 'webhooks deliveries' lists them. 'webhooks
listen' is a receiver on this machine that checks signatures, to try a
target with.

A target's signing secret is shown once, when it is made (or rotated).
Targets of twokey.yaml are listed here but changed only there. These
commands use the management API: they need the server's management key
(TWOKEY_MANAGEMENT_KEY) and run on the server's machine unless
management.allow_remote is on.

Events: ` + strings.Join(webhookEvents, ", ") + `.`,
	}
	addMgmtFlag(cmd, &mkey)
	cmd.AddCommand(newWebhooksLsCmd(f, &mkey), newWebhooksAddCmd(f, &mkey), newWebhooksEditCmd(f, &mkey),
		newWebhooksRotateCmd(f, &mkey), newWebhooksTestCmd(f, &mkey), newWebhooksDeliveriesCmd(f, &mkey),
		newWebhooksRmCmd(f, &mkey), newWebhooksListenCmd(f))
	return cmd
}

// webhookFilter is what add and edit take besides the URL: the format,
// conversations, events and detail, checked before anything is sent.
type webhookFilter struct {
	format, detail       string
	conversations, event []string
	defaultEvents        bool
}

func (w *webhookFilter) flags(cmd *cobra.Command, edit bool) {
	fl := cmd.Flags()
	fl.StringVar(&w.format, "format", "", "json (the default: the versioned schema), slack (an incoming-webhook message) or ntfy; each is signed")
	conv := "a conversation it covers, by name or id (repeatable; '*': all of them)"
	event := "an event it is sent (repeatable or comma-separated; default: every event but request.approved_by)"
	if edit {
		conv = "the conversations it covers, replacing its own (repeatable; '*': all of them)"
		event = "the events it is sent, replacing its own (repeatable or comma-separated)"
		fl.BoolVar(&w.defaultEvents, "default-events", false, "send it the default events again (every event but request.approved_by)")
	}
	fl.StringArrayVar(&w.conversations, "conversation", nil, conv)
	fl.StringArrayVar(&w.event, "event", nil, event)
	fl.StringVar(&w.detail, "detail", "", "summary (the default: no params, no URL) or full (also the params and the resolved URL)")
}

// check refuses a format, detail or event this server's notifications do
// not have, naming the ones they do.
func (w *webhookFilter) check() ([]string, error) {
	if w.format != "" && !slices.Contains(webhookFormats, w.format) {
		return nil, usagef("--format %q: give json, slack or ntfy", twokey.Clip(w.format))
	}
	if w.detail != "" && !slices.Contains(webhookDetails, w.detail) {
		return nil, usagef("--detail %q: give summary or full", twokey.Clip(w.detail))
	}
	var events []string
	for _, e := range w.event {
		for _, e := range strings.Split(e, ",") {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			if !slices.Contains(webhookEvents, e) {
				if near := nearest(e, webhookEvents); len(near) > 0 {
					return nil, usagef("no event %q; did you mean %s? ('twokey webhooks --help' lists them)", twokey.Clip(e), orList(near))
				}
				return nil, usagef("no event %q; the events are %s", twokey.Clip(e), strings.Join(webhookEvents, ", "))
			}
			events = append(events, e)
		}
	}
	for _, c := range w.conversations {
		if strings.TrimSpace(c) == "" {
			return nil, usagef("--conversation is empty: give a conversation's name or id, or '*' for all")
		}
	}
	return events, nil
}

type webhooksAddOptions struct {
	webhookFilter
	secretOnly bool
}

func newWebhooksAddCmd(f *factory, mkey *string) *cobra.Command {
	o := &webhooksAddOptions{}
	cmd := &cobra.Command{
		Use:   "add NAME URL [--format json|slack|ntfy] [--conversation C ...] [--event E ...] [--detail summary|full]",
		Short: "Make a notification target (its signing secret is shown once)",
		Example: "  twokey webhooks add ops-hook https://hooks.example.com/twokey --conversation ops\n" +
			"  twokey webhooks add ops-slack https://hooks.slack.com/services/T0/B0/XXXX --format slack --conversation ops --event request.created --event request.executed\n" +
			"  twokey webhooks add phone https://ntfy.sh/my-topic --format ntfy --conversation '*' --event request.created",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWebhooksAdd(cmd.Context(), f, *mkey, args[0], args[1], o)
		},
	}
	o.flags(cmd, false)
	cmd.Flags().BoolVar(&o.secretOnly, "secret-only", false, "print only the secret (for scripts)")
	return cmd
}

func runWebhooksAdd(ctx context.Context, f *factory, mkey, name, url string, o *webhooksAddOptions) error {
	events, err := o.check()
	if err != nil {
		return err
	}
	if len(o.conversations) == 0 {
		return usagef("name the conversations it covers with --conversation C (repeatable), or --conversation '*' for all of them")
	}
	m, err := f.mgmt(mkey)
	if err != nil {
		return err
	}
	out, err := m.CreateWebhook(ctx, api.WebhookCreate{Name: name, URL: url, Format: o.format,
		Conversations: o.conversations, Events: events, Detail: o.detail})
	if err != nil {
		return err
	}
	printWebhookSecret(f, out, o.secretOnly, "created webhook target")
	if !o.secretOnly {
		fmt.Fprintf(f.io.Out, "try it: twokey webhooks test %s\n", out.Name)
	}
	return nil
}

// printWebhookSecret prints a target just made or rotated with its secret,
// this once, and how a receiver checks it.
func printWebhookSecret(f *factory, ws api.WebhookSecret, secretOnly bool, what string) {
	if secretOnly {
		fmt.Fprintln(f.io.Out, ws.Secret)
		return
	}
	fmt.Fprintf(f.io.Out, "%s %q: %s\n", what, ws.Name, webhookSummary(ws.Webhook))
	if ws.Secret == "" {
		return
	}
	fmt.Fprintf(f.io.Out, "\n  %s\n\n", ws.Secret)
	fmt.Fprintln(f.io.Out, "This is the only time the secret is shown: store it where the receiver can read it now.")
	fmt.Fprintln(f.io.Out, "Each delivery is signed as Standard Webhooks says: webhook-signature holds v1,BASE64(HMAC-SHA256(key, ID.TIMESTAMP.BODY)),")
	fmt.Fprintln(f.io.Out, "with the key the base64 after whsec_, ID and TIMESTAMP the webhook-id and webhook-timestamp headers, BODY the raw body;")
	fmt.Fprintln(f.io.Out, "any Standard Webhooks library checks it (docs/operations.md, Notifications).")
	if !ws.PreviousSecretUntil.IsZero() {
		fmt.Fprintf(f.io.Out, "the previous secret signs too until %s: move the receiver to the new one before then\n", stamp(ws.PreviousSecretUntil))
	}
}

// webhookSummary is a target in one line: format, URL, what it covers.
func webhookSummary(h api.Webhook) string {
	return fmt.Sprintf("%s to %s; conversations %s; events %s; detail %s", h.Format, h.URL, convList(h.Conversations), eventList(h.Events), orDefault(h.Detail, api.DetailSummary))
}

func convList(cs []string) string {
	if len(cs) == 0 {
		return "none"
	}
	if slices.Equal(cs, []string{"*"}) {
		return "all"
	}
	return strings.Join(cs, ",")
}

func eventList(es []string) string {
	if len(es) == 0 {
		return "default (all but request.approved_by)"
	}
	return strings.Join(es, ",")
}

// stamp writes t to the second, UTC.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func newWebhooksLsCmd(f *factory, mkey *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "ls [--json]",
		Short:   "List notification targets: format, URL, conversations, events, queue (never a secret)",
		Aliases: []string{"list"},
		Example: "  twokey webhooks ls\n  twokey webhooks ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.mgmt(*mkey)
			if err != nil {
				return err
			}
			hooks, err := m.Webhooks(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONOut(f, hooks)
			}
			if len(hooks) == 0 {
				fmt.Fprintln(f.io.Out, "no webhook targets; make one with 'twokey webhooks add NAME URL --conversation C'")
				return nil
			}
			tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFORMAT\tURL\tCONVERSATIONS\tEVENTS\tDETAIL\tSOURCE\tQUEUED\tDEAD")
			for _, h := range hooks {
				queued := fmt.Sprint(h.Queued)
				if h.Queued > 0 && !h.OldestQueued.IsZero() {
					queued += " (oldest " + stamp(h.OldestQueued) + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", h.Name, h.Format, twokey.ClipAt(h.URL, 48), convList(h.Conversations),
					eventList(h.Events), orDefault(h.Detail, api.DetailSummary), h.Source, queued, h.Dead)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type webhooksEditOptions struct {
	webhookFilter
	url string
}

func newWebhooksEditCmd(f *factory, mkey *string) *cobra.Command {
	o := &webhooksEditOptions{}
	cmd := &cobra.Command{
		Use:   "edit NAME [--url U] [--format F] [--conversation C ...] [--event E ...] [--default-events] [--detail D]",
		Short: "Change a notification target: the flags given replace its own",
		Example: "  twokey webhooks edit ops-hook --url https://hooks.example.com/v2/twokey\n" +
			"  twokey webhooks edit ops-hook --event request.created --event request.failed --detail full",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runWebhooksEdit(cmd, f, *mkey, args[0], o) },
	}
	o.flags(cmd, true)
	cmd.Flags().StringVar(&o.url, "url", "", "the URL it is sent to")
	return cmd
}

func runWebhooksEdit(cmd *cobra.Command, f *factory, mkey, name string, o *webhooksEditOptions) error {
	events, err := o.check()
	if err != nil {
		return err
	}
	fl := cmd.Flags()
	var in api.WebhookUpdate
	set := func(flag string, s *string) *string {
		if fl.Changed(flag) {
			return s
		}
		return nil
	}
	in.URL, in.Format, in.Detail = set("url", &o.url), set("format", &o.format), set("detail", &o.detail)
	if fl.Changed("conversation") {
		in.Conversations = &o.conversations
	}
	switch {
	case fl.Changed("event") && o.defaultEvents:
		return usagef("give --event or --default-events, not both")
	case fl.Changed("event"):
		if len(events) == 0 {
			return usagef("--event is empty: give the events to send, or --default-events for the default set")
		}
		in.Events = &events
	case o.defaultEvents:
		in.Events = &[]string{}
	}
	if in.URL == nil && in.Format == nil && in.Detail == nil && in.Conversations == nil && in.Events == nil {
		return usagef("nothing to change: give at least one of --url, --format, --conversation, --event, --default-events, --detail (to make a new secret: twokey webhooks rotate %s)", name)
	}
	if in.URL != nil && *in.URL == "" {
		return usagef("--url is empty: give the URL to send to")
	}
	m, err := f.mgmt(mkey)
	if err != nil {
		return err
	}
	out, err := m.UpdateWebhook(cmd.Context(), name, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(f.io.Out, "changed webhook target %q: %s\n", out.Name, webhookSummary(out.Webhook))
	return nil
}

func newWebhooksRotateCmd(f *factory, mkey *string) *cobra.Command {
	var grace string
	var secretOnly bool
	cmd := &cobra.Command{
		Use:   "rotate NAME [--grace 24h]",
		Short: "Give a target a new signing secret; the previous one signs beside it for the grace period",
		Example: "  twokey webhooks rotate ops-hook              # routine: the old secret signs too for 24h\n" +
			"  twokey webhooks rotate ops-hook --grace 0    # a secret that leaked: the old one stops now",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if grace != "" {
				if _, err := config.ParseDuration(grace); err != nil {
					return usagef("--grace %q is not a duration: give one such as 24h or 7d, or 0 to stop the old secret now", twokey.Clip(grace))
				}
			}
			m, err := f.mgmt(*mkey)
			if err != nil {
				return err
			}
			out, err := m.UpdateWebhook(cmd.Context(), args[0], api.WebhookUpdate{RotateSecret: true, Grace: grace})
			if err != nil {
				return err
			}
			printWebhookSecret(f, out, secretOnly, "rotated the secret of webhook target")
			return nil
		},
	}
	cmd.Flags().StringVar(&grace, "grace", "", "how long the previous secret keeps signing beside the new one (default 24h; 0: it stops now)")
	cmd.Flags().BoolVar(&secretOnly, "secret-only", false, "print only the new secret (for scripts)")
	return cmd
}

func newWebhooksTestCmd(f *factory, mkey *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "test NAME [--json]",
		Short:   "Send one webhook.test to a target now and say what it answered",
		Example: "  twokey webhooks test ops-hook",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.mgmt(*mkey)
			if err != nil {
				return err
			}
			d, err := m.TestWebhook(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSONOut(f, d); err != nil {
					return err
				}
			} else {
				printTestDelivery(f.io.Out, args[0], d)
			}
			if d.State != api.DeliveryDelivered {
				return fmt.Errorf("the target %q did not accept the test: check its URL and that the receiver is up and answers 2xx ('twokey webhooks ls' shows the URL)", args[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the delivery as JSON")
	return cmd
}

func printTestDelivery(w io.Writer, name string, d api.WebhookDelivery) {
	took := ""
	if !d.DoneAt.IsZero() && !d.CreatedAt.IsZero() {
		took = " in " + d.DoneAt.Sub(d.CreatedAt).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "%s webhook.test to %q: %s%s, attempt %d (webhook-id %s)\n", d.State, name, lastAnswer(d), took, d.Attempts, d.ID)
}

// lastAnswer is a delivery's last answer: the notifier's words on a
// failure ("answered 503: ..."; "dial tcp ...: connection refused"), else
// "status 200", "not sent yet" or "no answer".
func lastAnswer(d api.WebhookDelivery) string {
	status := strconv.Itoa(d.LastStatus)
	switch {
	case d.LastError != "" && d.LastStatus != 0 && !strings.Contains(d.LastError, status):
		return "status " + status + ": " + d.LastError
	case d.LastError != "":
		return d.LastError
	case d.LastStatus != 0:
		return "status " + status
	case d.Attempts == 0:
		return "not sent yet"
	}
	return "no answer"
}

type webhooksDeliveriesOptions struct {
	state  string
	limit  int
	asJSON bool
}

func newWebhooksDeliveriesCmd(f *factory, mkey *string) *cobra.Command {
	o := &webhooksDeliveriesOptions{}
	cmd := &cobra.Command{
		Use:   "deliveries NAME [--state queued|delivered|dead] [--limit N] [--json]",
		Short: "A target's deliveries, newest first: event, request, state, attempts, last answer",
		Example: "  twokey webhooks deliveries ops-hook\n" +
			"  twokey webhooks deliveries ops-hook --state dead --limit 10",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWebhooksDeliveries(cmd.Context(), f, *mkey, args[0], o)
		},
	}
	cmd.Flags().StringVar(&o.state, "state", "", "only deliveries queued (waiting for a retry), delivered or dead (given up)")
	cmd.Flags().IntVar(&o.limit, "limit", api.DefaultDeliveries, fmt.Sprintf("at most N deliveries, 1 to %d", api.MaxDeliveries))
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	return cmd
}

func runWebhooksDeliveries(ctx context.Context, f *factory, mkey, name string, o *webhooksDeliveriesOptions) error {
	if o.state != "" && !slices.Contains(deliveryStates, o.state) {
		return usagef("--state %q: give queued, delivered or dead (or no --state for all)", twokey.Clip(o.state))
	}
	if o.limit < 1 || o.limit > api.MaxDeliveries {
		return usagef("--limit %d: give 1 to %d", o.limit, api.MaxDeliveries)
	}
	m, err := f.mgmt(mkey)
	if err != nil {
		return err
	}
	ds, err := m.WebhookDeliveries(ctx, name, o.state, o.limit)
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSONOut(f, ds)
	}
	if len(ds) == 0 {
		what := "deliveries"
		if o.state != "" {
			what = o.state + " deliveries"
		}
		fmt.Fprintf(f.io.Out, "no %s for %q; send one with 'twokey webhooks test %s'\n", what, name, name)
		return nil
	}
	tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tCONVERSATION\tREQUEST\tSTATE\tATTEMPTS\tLAST")
	for _, d := range ds {
		state := d.State
		if d.State == api.DeliveryQueued && !d.NextAt.IsZero() {
			state += " (next " + stamp(d.NextAt) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", stamp(d.CreatedAt), d.Event, orDefault(shortID(d.Conversation), "-"),
			orDefault(shortID(d.Request), "-"), state, d.Attempts, lastAnswer(d))
	}
	return tw.Flush()
}

func newWebhooksRmCmd(f *factory, mkey *string) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Short:   "Delete a notification target and its queue",
		Aliases: []string{"delete"},
		Example: "  twokey webhooks rm ops-hook",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.mgmt(*mkey)
			if err != nil {
				return err
			}
			if err := m.DeleteWebhook(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(f.io.Out, "deleted webhook target %q\n", args[0])
			return nil
		},
	}
}
