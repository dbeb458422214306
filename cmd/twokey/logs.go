package main

import (
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/reqlog"
)

type logsOptions struct {
	service, since, conversation, key, program, event string
	limit                                             int
	asJSON                                            bool
}

func newLogsCmd(f *factory) *cobra.Command {
	o := &logsOptions{}
	var mkey string
	cmd := &cobra.Command{
		Use:   "logs [--service S] [--since 24h] [--json]",
		Short: "The server's request log: every request submitted and how it ended",
		Long: `Print the server's durable request log, newest first: each request
submitted and each outcome (executed, failed, expired, rejected, cancelled)
with its time, conversation, template, service, method, URL (query values
masked), status, duration, approvers and submitter (a signer's key, or a
program's name and key prefix). Entries are kept for request_logs.retention
(default 90 days).

This reads the management API: it needs TWOKEY_MANAGEMENT_KEY.`,
		Example: "  twokey logs --since 24h\n" +
			"  twokey logs --service httpbin --event executed,failed --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := f.mgmt(mkey)
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"service": o.service, "since": o.since, "conversation": o.conversation,
				"key": o.key, "program": o.program, "event": o.event} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", fmt.Sprint(o.limit))
			var out struct {
				Entries []reqlog.Entry `json:"entries"`
			}
			if err := m.do(cmd.Context(), "GET", "/v0/management/logs?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			if o.asJSON {
				return writeJSONOut(f, out.Entries)
			}
			if len(out.Entries) == 0 {
				fmt.Fprintln(f.io.Out, "no entries")
				return nil
			}
			tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tEVENT\tREQUEST\tTEMPLATE\tCALL\tSTATUS\tMS\tBY\tAPPROVERS")
			for _, e := range out.Entries {
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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format("2006-01-02 15:04:05"), e.Event,
					shortID(e.RequestID), orDefault(e.Template, "-"), e.Method, e.URL, status, ms, by, orDefault(strings.Join(approvers, ","), "-"))
			}
			return tw.Flush()
		},
	}
	addMgmtFlag(cmd, &mkey)
	fl := cmd.Flags()
	fl.StringVar(&o.service, "service", "", "only this service")
	fl.StringVar(&o.since, "since", "", "only entries this recent (24h, 7d) or since an RFC 3339 time")
	fl.StringVar(&o.conversation, "conversation", "", "only this conversation (name or id)")
	fl.StringVar(&o.key, "key", "", "only requests by this submitter: a key id, or program:NAME")
	fl.StringVar(&o.program, "program", "", "only this program's requests")
	fl.StringVar(&o.event, "event", "", "only these events, comma-separated: submitted, executed, failed, expired, rejected, cancelled")
	fl.IntVar(&o.limit, "limit", 100, "at most this many entries")
	fl.BoolVar(&o.asJSON, "json", false, "print JSON")
	return cmd
}
