package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/internal/load"
)

type benchOptions struct {
	scales     string
	out        string
	profileDir string
	tempDir    string
	quick      bool
}

func newBenchCmd(f *factory) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure twokey against this machine's ceiling (make bench)",
		Long: `Start a real server on a temp dir and a loopback upstream, load a data set,
and drive the whole flow over HTTP and WebSocket with concurrent clients:
approvals per second at concurrency 1, 16 and 64, requests executed end to
end, the latency from the M-th approval to the upstream, fan-out to 10, 100
and 1,000 subscribers, restart time, resident memory and the memory of an
idle WebSocket. Each tier (--scales) is measured against the ceiling (Ed25519
verifies/s, durable bbolt commits/s) taken at its start. It talks only to
127.0.0.1, stops by itself, and prints a Markdown table.`,
		Example: `  twokey bench
  twokey bench --scales 1 --out /tmp/bench.md --profile-dir /tmp/prof`,
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.config(f)
			if err != nil {
				return err
			}
			return runBench(f, o, cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.scales, "scales", "1,10", "load multipliers to measure, comma-separated (1x = 1,000 conversations, 10,000 pending requests)")
	fl.StringVar(&o.out, "out", "", "also write the table to this file")
	fl.StringVar(&o.profileDir, "profile-dir", "", "write a CPU profile of each phase here (go tool pprof)")
	fl.StringVar(&o.tempDir, "tmp", "", "where the temporary data directories go (default the system's)")
	fl.BoolVar(&o.quick, "quick", false, "tiny sizes: check that the tool works, measure nothing")
	return cmd
}

func (o *benchOptions) config(f *factory) (load.Config, error) {
	cfg := load.Config{Quick: o.quick, TempDir: o.tempDir, ProfileDir: o.profileDir, Log: f.io.Err}
	for _, s := range strings.Split(o.scales, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 100 {
			return cfg, usagef("--scales %q: give whole multipliers between 1 and 100, e.g. 1,10", o.scales)
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
	if err != nil {
		return err
	}
	md := r.Markdown()
	fmt.Fprint(f.io.Out, md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.out, err)
		}
		fmt.Fprintf(f.io.Err, "wrote %s\n", o.out)
	}
	return nil
}
