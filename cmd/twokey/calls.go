package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
)

type callsOptions struct {
	service, since, until, conversation, key, program, event string
	limit                                                    int
	all, asJSON                                              bool
}

// newCallsCmd is 'twokey calls': the server's request log.
func newCallsCmd(f *factory) *cobra.Command {
	o := &callsOptions{}
	var mkey string
	cmd := &cobra.Command{
		Use:   "calls [--service S] [--since 24h] [--limit N | --all] [--json]",
		Short: "The server's request log: every request and how it ended (one conversation's records: 'twokey log')",
		Long: `Print the server's durable request log, newest first: each request
submitted and each outcome (executed, failed, expired, rejected, cancelled)
with its time, conversation, template, service, method, URL (query values
masked), status, duration, approvers and submitter (a signer's key, or a
program's name and key prefix). Entries are kept for request_logs.retention
(default 90 days). (A conversation's own records are 'twokey log CONV'.)

The server answers a page at a time (at most 1000 entries); --limit says
how many entries to show (100 by default), --all pages through every one.
--since and --until take a duration back from now (24h, 7d) or an RFC 3339
time; a time before 1970 counts as 1970.

This reads the management API: it needs TWOKEY_MANAGEMENT_KEY.`,
		Example: "  twokey calls --since 24h\n" +
			"  twokey calls --service httpbin --event executed,failed --json\n" +
			"  twokey calls --all --since 30d --json > log.json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.all && cmd.Flags().Changed("limit") {
				return usagef("--all shows every entry; leave out --limit")
			}
			return runCalls(cmd.Context(), f, mkey, o)
		},
	}
	addMgmtFlag(cmd, &mkey)
	fl := cmd.Flags()
	fl.StringVar(&o.service, "service", "", "only this service")
	fl.StringVar(&o.since, "since", "", "only entries this recent (24h, 7d) or since an RFC 3339 time")
	fl.StringVar(&o.until, "until", "", "only entries before this: a duration back from now (24h) or an RFC 3339 time")
	fl.StringVar(&o.conversation, "conversation", "", "only this conversation (name or id)")
	fl.StringVar(&o.key, "key", "", "only requests by this submitter: a key id, or program:NAME")
	fl.StringVar(&o.program, "program", "", "only this program's requests")
	fl.StringVar(&o.event, "event", "", "only these events, comma-separated: submitted, executed, failed, expired, rejected, cancelled")
	fl.IntVar(&o.limit, "limit", 100, fmt.Sprintf("at most this many entries (1 to %d)", api.MaxLogPage))
	fl.BoolVar(&o.all, "all", false, "every entry that matches, a page at a time")
	fl.BoolVar(&o.asJSON, "json", false, "print JSON")
	return cmd
}

// newLogsCmd is 'twokey logs', the old name of 'twokey calls' (too close
// to 'twokey log'): hidden, it still works, and says the new name.
func newLogsCmd(f *factory) *cobra.Command {
	cmd := newCallsCmd(f)
	cmd.Use = strings.Replace(cmd.Use, "calls", "logs", 1)
	cmd.Short = "Old name of 'twokey calls'"
	cmd.Hidden = true
	run := cmd.RunE
	// 'twokey logs CONV' is 'twokey log CONV' mistyped: say so, rather
	// than that logs takes no arguments.
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("'twokey logs' is the old name of 'twokey calls' (the server's request log), which takes no CONV; to print conversation %s's records, run %s", args[0], shellLine(append([]string{"twokey", "log"}, args...)))
		}
		fmt.Fprintln(f.io.Err, "twokey: 'twokey logs' is now 'twokey calls' (the server's request log; 'twokey log CONV' prints a conversation's records)")
		return run(cmd, args)
	}
	return cmd
}

// runCalls prints the request log a page at a time.
func runCalls(ctx context.Context, f *factory, mkey string, o *callsOptions) error {
	if !o.all && (o.limit < 1 || o.limit > api.MaxLogPage) {
		return usagef("--limit %d: give 1 to %d, or --all to page through every entry", o.limit, api.MaxLogPage)
	}
	m, err := f.mgmt(mkey)
	if err != nil {
		return err
	}
	q := client.LogQuery{Service: o.service, Since: o.since, Until: o.until, Conversation: o.conversation,
		Key: o.key, Program: o.program, Events: o.event}
	out := newLogsOut(f, o.asJSON)
	shown := 0
	for {
		// A page may hold fewer entries than asked (a server stops a page
		// after a bounded scan): ask again from its cursor.
		q.Limit = api.MaxLogPage
		if !o.all {
			q.Limit = o.limit - shown
		}
		page, err := m.RequestLog(ctx, q)
		if err != nil {
			return err
		}
		if err := out.add(page.Entries); err != nil {
			return err
		}
		shown += len(page.Entries)
		if page.Next == "" || (!o.all && shown >= o.limit) {
			break
		}
		q.Cursor = page.Next
	}
	return out.close()
}

// logsOut prints entries as they arrive, a page at a time: a JSON array,
// or a table flushed after each page.
type logsOut struct {
	w      io.Writer
	asJSON bool
	tw     *tabwriter.Writer
	n      int
}

func newLogsOut(f *factory, asJSON bool) *logsOut {
	if asJSON {
		return &logsOut{w: f.rawOut, asJSON: true}
	}
	return &logsOut{w: f.io.Out, tw: tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)}
}

func (o *logsOut) add(entries []api.LogEntry) error {
	for _, e := range entries {
		if o.asJSON {
			b, err := json.MarshalIndent(e, "  ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n  "
			if o.n == 0 {
				sep = "[\n  "
			}
			if _, err := fmt.Fprintf(o.w, "%s%s", sep, b); err != nil {
				return err
			}
			o.n++
			continue
		}
		if o.n == 0 {
			fmt.Fprintln(o.tw, "TIME\tEVENT\tREQUEST\tTEMPLATE\tCALL\tSTATUS\tMS\tBY\tAPPROVERS")
		}
		o.n++
		status := "-"
		if e.Status != 0 {
			status = fmt.Sprint(e.Status)
		}
		if e.Reason != "" {
			status = e.Reason
		}
		ms := "-"
		if e.DurationMS > 0 {
			ms = fmt.Sprintf("%.1f", e.DurationMS)
		}
		by := conversation.ShortKey(e.Submitter)
		if e.Program != "" {
			by = "program:" + e.Program
			if e.KeyPrefix != "" {
				by += " (" + e.KeyPrefix + "...)"
			}
		}
		approvers := make([]string, len(e.Approvers))
		for i, a := range e.Approvers {
			approvers[i] = conversation.ShortKey(a)
		}
		fmt.Fprintf(o.tw, "%s\t%s\t%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format("2006-01-02 15:04:05"), e.Event,
			shortID(e.RequestID), orDefault(e.Template, "-"), e.Method, e.URL, status, ms, by, orDefault(strings.Join(approvers, ","), "-"))
	}
	if o.tw != nil {
		return o.tw.Flush()
	}
	return nil
}

func (o *logsOut) close() error {
	switch {
	case o.asJSON && o.n == 0:
		_, err := fmt.Fprintln(o.w, "[]")
		return err
	case o.asJSON:
		_, err := fmt.Fprintln(o.w, "\n]")
		return err
	case o.n == 0:
		_, err := fmt.Fprintln(o.w, "no entries")
		return err
	}
	return nil
}
