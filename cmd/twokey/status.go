package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newStatusCmd(f *factory) *cobra.Command {
	var mkey string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Where the server keeps its state, and on etcd which node executes",
		Long: `Print where the server keeps its state. On one bbolt file that is all there
is to say. On a shared etcd store (docs/ha.md) it prints this node's name,
the node that executes (the one holding the election's lease: only it makes
upstream calls), each etcd endpoint's health and raft leader, and each
node's watch lag (how long after a commit its follower saw it).

It uses the management API: it needs the server's management key
(TWOKEY_MANAGEMENT_KEY) and runs on the server's machine unless
management.allow_remote is on. Point it at one node with --server.`,
		Example: `  TWOKEY_MANAGEMENT_KEY=... twokey status
  twokey status --server http://10.0.0.2:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.mgmt(mkey)
			if err != nil {
				return err
			}
			st, err := m.Cluster(cmd.Context())
			if err != nil {
				return err
			}
			out := f.io.Out
			if st.Store != "etcd" {
				fmt.Fprintf(out, "store: %s (one node; it executes)\n", st.Store)
				return nil
			}
			role := "follows"
			if st.Executing {
				role = "executes"
			}
			fmt.Fprintf(out, "store: etcd\nnode: %s (%s)\nexecutor: %s\n", st.Node, role, orNone(st.Executor))
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\nENDPOINT\tHEALTHY\tLEADER\tREVISION\tERROR")
			for _, e := range st.Endpoints {
				fmt.Fprintf(tw, "%s\t%v\t%v\t%d\t%s\n", e.Endpoint, e.Healthy, e.Leader, e.Revision, e.Error)
			}
			fmt.Fprintln(tw, "\nNODE\tWATCH LAG\tREPORTED")
			for _, n := range st.Nodes {
				fmt.Fprintf(tw, "%s\t%d ms\t%s\n", n.Node, n.LagMS, n.Reported)
			}
			return tw.Flush()
		},
	}
	addMgmtFlag(cmd, &mkey)
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "none (an election is under way)"
	}
	return s
}
