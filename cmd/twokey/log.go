package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
)

type logOptions struct {
	follow bool
	after  uint64
	short  bool
}

// errVerify marks a log that failed verification (exit 1, said loudly).
var errVerify = errors.New("the log did not verify: do not trust records from the one named above on")

func newLogCmd(f *factory) *cobra.Command {
	o := &logOptions{}
	cmd := &cobra.Command{
		Use:   "log CONV",
		Short: "Print one conversation's records, each verified (the server's request log is 'twokey calls')",
		Long: `Print the conversation's records as readable cards. Every record's signature
is checked over the exact bytes it carries, the hash chain is recomputed from
the first record, and records of gateway kinds must be signed by the
gateway's key. A record that fails is reported loudly and the command exits 1.`,
		Example: "  twokey log ops\n  twokey log ops --follow",
		Args:    cobra.ArbitraryArgs, // checked in RunE, which names 'twokey calls'
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("log takes CONV, the conversation whose records to print ('twokey conv ls' lists yours); got %s. The server's request log, of every conversation, is 'twokey calls'", gotArgs(len(args)))
			}
			return runLog(cmd.Context(), f, o, args[0])
		},
	}
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "keep printing new records as they arrive")
	cmd.Flags().BoolVar(&o.short, "short", false, "leave out request and response bodies")
	// A flag of 'twokey calls' given to 'twokey log' names that command.
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		err = c.Root().FlagErrorFunc()(c, err)
		for _, fl := range []string{"--since", "--until", "--service", "--limit", "--all", "--json", "--event", "--program", "--key", "--conversation"} {
			if strings.Contains(err.Error(), "flag: "+fl) {
				return usageError{err.Error() + "; that is a flag of 'twokey calls', the server's request log (log prints one conversation's records)"}
			}
		}
		return err
	})
	return cmd
}

func runLog(ctx context.Context, f *factory, o *logOptions, ref string) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	conv, err := c.Conversation(ctx, ref)
	if err != nil {
		return err
	}
	gw, err := c.Gateway(ctx)
	if err != nil {
		return err
	}
	cat, err := c.Catalog(ctx)
	if err != nil {
		return err
	}
	view := newLogView(gw.SigningKey, conv.Members, cat, func() time.Time { return time.Now() })
	view.short = o.short
	if reqs, err := c.Requests(ctx, conv.ID, ""); err == nil {
		for _, r := range reqs {
			view.final[r.RequestID] = r.State
		}
	}
	ver := &conversation.ChainVerifier{Gateway: gw.SigningKey}
	check := func(r conversation.Record) error {
		if err := ver.Check(r); err != nil {
			fmt.Fprintf(f.io.Out, "!!!!! VERIFICATION FAILED at record %d: %v\n", r.Seq, err)
			return errVerify
		}
		view.render(f.io.Out, r)
		return nil
	}
	for {
		recs, err := c.Records(ctx, conv.ID, ver.Seq, 1000)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := check(r); err != nil {
				return err
			}
		}
		if len(recs) < 1000 {
			break
		}
	}
	if !o.follow {
		fmt.Fprintf(f.io.Out, "-- %s, signatures and chain verified (chain %s)\n", nOf(int(ver.Seq), "record"), ver.Chain.String()[:19])
		return nil
	}
	fmt.Fprintf(f.io.Out, "-- %s verified; following (Ctrl-C to stop)\n", nOf(int(ver.Seq), "record"))
	err = c.Follow(ctx, conv.ID, ver.Seq, client.FollowOptions{OnState: func(s string) {
		if s != "connected" {
			fmt.Fprintf(f.io.Err, "-- %s\n", s)
		}
	}}, check)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
