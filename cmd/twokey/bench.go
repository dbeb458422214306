package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/internal/load"
)

type benchOptions struct {
	scales     string
	out        string
	profileDir string
	tempDir    string
	quick      bool
	timeout    time.Duration
}

func newBenchCmd(f *factory) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure twokey against this machine's ceiling (what 'make bench' runs)",
		Long: `Measure how fast twokey does its job on this machine, and how the cost
grows with the data, by running the real thing: a server on a temp
directory, a loopback upstream that notes when each call arrives, and
concurrent clients speaking the real HTTP and WebSocket protocol. It talks
only to 127.0.0.1, deletes its temp directory and stops by itself.

Machines are shared and noisy, so every figure is set beside a ceiling
measured in the same run, right before the figures it bounds, with
nothing of twokey's around it:
  verifies/s   Ed25519 signature checks per second, on every core
  appends/s    this disk's ideal group commit: durable approval-sized
               appends (what one approval's commit appends to the log:
               its record and the state derived from it), 64 writers,
               ONE committer that commits everything queued in one bbolt
               transaction as soon as the previous commit ends (no timer),
               under a global sequence in one bucket, on a copy of the
               tier's own database (same size, same tree), so that the
               bigger data set is in the ceiling too
  C            min(verifies/s, appends/s): an approval costs one of each
  C3           min(verifies/s / 2, appends/s / 3): an M=2 request costs
               two verifies and three durable commits
The ceiling used to be bbolt's DB.Batch: its batches close when every
writer is in or on a 10 ms timer, so it measured bbolt's batching, not
this machine's limit: on a 2-core VM it read a quarter to a third of
what the ideal commit does on the same disk. It is
still shown, as a reference row, with the same appends through twokey's
own store (a figure of the code under test, not the ceiling), and the
pages and bytes each ideal append wrote.

Then, at each load multiplier (--scales; 1x is 1,000 conversations holding
10,000 pending requests, loaded through the engine):
  2. approvals accepted per second at concurrency 1, 16 and 64, as a
     fraction of C (target at 64: at least 0.50, at 1x and at 10x), and
     the pages and bytes each one fsync'd
  3. requests executed per second end to end (submit, approve, upstream
     call, result records), M=2 and concurrency 64, as a fraction of C3
     (target: at least 0.50)
  4. latency from the M-th approval to the upstream receiving the call
     (target: p99 under 5 ms with one client, under 25 ms at
     concurrency 64)
  5. fan-out from a record's durable commit to 10, 100 and 1,000
     WebSocket subscribers (target: p99 under 5 ms at 100 and under
     50 ms at 1,000, none missing), and the same with one subscriber that
     never reads, fed more than the kernel's socket buffers hold so that
     the server's write to it really blocks: it must be dropped and the
     others must not slow down
  6. restart time over the loaded data (as a child 'twokey serve'),
     resident and anonymous memory, and memory per idle WebSocket
     (targets: with 100,000 pending, restart under 2 s and anonymous
     memory under 100 MiB; an idle WebSocket under 16 KiB)
Targets are reported, met or not met; none fails the run.
The last column is the growth from the first multiplier to the last.

It prints a Markdown table on stdout (and to --out) and its progress on
stderr. The default run takes two to three minutes on a quiet 2-core
machine (loading 10x's 100,000 requests is most of it); --timeout bounds
it, and the tiers finished by then are still printed. With --profile-dir, a CPU
profile of each phase is written there; read one with
  go tool pprof -top DIR/x1-approvals.pprof
where samples labelled side=server are the server's and side=load the
load clients' (pprof -tagfocus side=server). A tier holds both ends of
every loopback socket, so 10x needs about 13,000 open files.`,
		Example: `  make bench                        # this, then the Go benchmarks; see BENCHMARKS.md
  twokey bench
  twokey bench --scales 1 --out /tmp/bench.md --profile-dir /tmp/prof
  twokey bench --quick --scales 1   # seconds: checks the tool works, measures nothing`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.config(f)
			if err != nil {
				return err
			}
			return runBench(f, o, cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.scales, "scales", "1,10", fmt.Sprintf("load multipliers to measure, comma-separated, 1 to %d (1x = 1,000 conversations, 10,000 pending requests)", load.MaxScale))
	fl.StringVar(&o.out, "out", "", "also write the table to this file")
	fl.StringVar(&o.profileDir, "profile-dir", "", "write a CPU profile of each phase here (go tool pprof -top FILE)")
	fl.StringVar(&o.tempDir, "tmp", "", "where the temporary data directories go (default the system's)")
	fl.BoolVar(&o.quick, "quick", false, "tiny sizes: check that the tool works in seconds, measure nothing")
	fl.DurationVar(&o.timeout, "timeout", load.DefaultTimeout, "stop the whole run after this long (tiers finished by then are printed)")
	return cmd
}

func (o *benchOptions) config(f *factory) (load.Config, error) {
	cfg := load.Config{Quick: o.quick, TempDir: o.tempDir, ProfileDir: o.profileDir, Log: f.io.Err, Timeout: o.timeout}
	if o.timeout <= 0 {
		return cfg, usagef("--timeout %s: give a positive duration, e.g. 3m", o.timeout)
	}
	for _, s := range strings.Split(o.scales, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > load.MaxScale {
			return cfg, usagef("--scales %q: give whole multipliers from 1 to %d, e.g. 1,10", o.scales, load.MaxScale)
		}
		cfg.Scales = append(cfg.Scales, n)
	}
	return cfg, nil
}

func runBench(f *factory, o *benchOptions, cfg load.Config) error {
	if exe, err := os.Executable(); err == nil {
		cfg.Exe = exe // restarts run 'twokey serve' as a child, to measure its memory alone
	}
	r, err := load.Run(f.ctx, cfg)
	if r != nil {
		md := r.Markdown()
		if err != nil {
			md += fmt.Sprintf("\nINCOMPLETE: %v\n", err)
		}
		fmt.Fprint(f.io.Out, md)
		if o.out != "" {
			if werr := os.WriteFile(o.out, []byte(md), 0o644); werr != nil {
				return errors.Join(err, fmt.Errorf("write %s: %w", o.out, werr))
			}
			fmt.Fprintf(f.io.Err, "wrote %s\n", o.out)
		}
	}
	return err
}
