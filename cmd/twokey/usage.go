package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
)

func newUsageCmd(f *factory) *cobra.Command {
	var by, since, until, service string
	var asJSON bool
	var mkey string
	cmd := &cobra.Command{
		Use:   "usage [--by key|service|day] [--since 30d] [--json]",
		Short: "Requests submitted, executed, failed, expired and rejected, and upstream latency",
		Long: `Add up the request log by submitter (a signer's key, or program:NAME), by
service or by day (UTC): requests submitted, executed, failed, expired,
rejected and cancelled, and the p50 and p95 latency of the upstream calls
in milliseconds. The log keeps request_logs.retention (default 90 days).

Usage is counted per UTC day: --since and --until count the whole days
they fall in (the output names the days). The percentiles come from a
histogram of buckets 9% wide, so they are within 5% of the exact figure.

This reads the management API: it needs TWOKEY_MANAGEMENT_KEY.`,
		Example: "  twokey usage --by key\n  twokey usage --by day --since 7d",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if by != api.UsageByKey && by != api.UsageByService && by != api.UsageByDay {
				return usagef("--by %q: use key, service or day", by)
			}
			m, err := f.mgmt(mkey)
			if err != nil {
				return err
			}
			out, err := m.Usage(cmd.Context(), client.UsageQuery{By: by, Since: since, Until: until, Service: service})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONOut(f, out.Rows)
			}
			if len(out.Rows) == 0 {
				fmt.Fprintln(f.io.Out, "no requests in the log for this period")
				return nil
			}
			if out.FirstDay != "" || out.LastDay != "" {
				fmt.Fprintf(f.io.Out, "days (UTC) %s to %s\n", orDefault(out.FirstDay, "the first"), orDefault(out.LastDay, "today"))
			}
			tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "%s\tSUBMITTED\tEXECUTED\tFAILED\tEXPIRED\tREJECTED\tCANCELLED\tP50 MS\tP95 MS\n", strings.ToUpper(by))
			for _, u := range out.Rows {
				g := u.Group
				if by == api.UsageByKey && !strings.HasPrefix(g, "program:") {
					g = conversation.ShortKey(g)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\n", g, u.Submitted, u.Executed, u.Failed, u.Expired, u.Rejected, u.Cancelled, u.P50MS, u.P95MS)
			}
			return tw.Flush()
		},
	}
	addMgmtFlag(cmd, &mkey)
	cmd.Flags().StringVar(&by, "by", "key", "group by key (signer or program), service or day")
	cmd.Flags().StringVar(&since, "since", "", "only this recent a period (24h, 30d) or since an RFC 3339 time (whole UTC days)")
	cmd.Flags().StringVar(&until, "until", "", "only before this: a duration back from now or an RFC 3339 time (whole UTC days)")
	cmd.Flags().StringVar(&service, "service", "", "only this service")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
