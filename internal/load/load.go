// Package load is the logic of 'twokey bench': it measures how fast
// twokey does its job, and how the cost grows, against this machine's
// ceiling measured in the same run.
//
// It starts a real server on a temp dir and a loopback upstream that
// records when each call arrives, makes a pool of signers, loads a data set
// through the engine's own code paths, and then drives the flow over the
// real HTTP and WebSocket protocol with concurrent clients. Every loop is
// bounded in count and in time, every connection goes to 127.0.0.1, and
// the run stops by itself. Figures are reported as ratios beside the
// absolute values, because the machines are shared and an absolute time
// from one run means little.
package load

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/twokey/twokey/conversation"
)

// Config chooses what a run does.
type Config struct {
	// Scales are the load multipliers measured, 1 and 10 by default.
	Scales []int
	// Quick shrinks every size to a smoke test (go test uses it).
	Quick bool
	// Exe is the twokey binary; when set, restarts run it as a child
	// process ('twokey serve') so that its memory is measured alone.
	Exe string
	// TempDir holds the data directories (default os.TempDir()).
	TempDir string
	// ProfileDir, when set, receives a CPU profile of each phase.
	ProfileDir string
	// Log receives progress lines.
	Log io.Writer
	// Timeout bounds the whole run (DefaultTimeout when zero); tiers
	// finished by then are reported, and the run fails naming the limit.
	Timeout time.Duration
}

// DefaultTimeout bounds a run: 'make bench' (this, then the Go
// benchmarks) stays under five minutes even on a slow, shared machine.
const DefaultTimeout = 3 * time.Minute

// MaxScale is the largest load multiplier: 10x is 10,000 conversations,
// 100,000 pending requests and 5,000 idle WebSockets.
const MaxScale = 10

// sizes are the bounds of one tier.
type sizes struct {
	convs, perConv int           // the loaded data set
	approvals      []int         // approvals posted at each level of concurrency
	approvalTime   time.Duration // at most, per level
	flowConc       int
	flowOps        int
	flowTime       time.Duration
	latencyOps     int
	fanout         []int
	fanoutRecords  int
	idle           int
	ceilingTime    time.Duration
	seedWorkers    int
	// ballast is the bytes queued to the stalled fan-out subscriber (0:
	// more than the kernel's socket buffers hold), and dropWait how long
	// the server is given to drop it (0: not waited for).
	ballast  int64
	dropWait time.Duration
}

// Concurrency levels of the approvals figure.
var approvalConc = []int{1, 16, 64}

func sizesFor(scale int, quick bool) sizes {
	if quick {
		return sizes{convs: 6 * scale, perConv: 4, approvals: []int{4, 6, 8}, approvalTime: 5 * time.Second,
			flowConc: 3, flowOps: 9, flowTime: 10 * time.Second, latencyOps: 4, fanout: []int{2, 5},
			fanoutRecords: 3, idle: 4 * scale, ceilingTime: 50 * time.Millisecond, seedWorkers: 4,
			ballast: 64 << 10}
	}
	return sizes{convs: 1000 * scale, perConv: 10, approvals: []int{1500, 4000, 4000}, approvalTime: 2 * time.Second,
		flowConc: 64, flowOps: 4000, flowTime: 2 * time.Second, latencyOps: 400, fanout: []int{10, 100, 1000},
		fanoutRecords: 200, idle: 500 * scale, ceilingTime: time.Second, seedWorkers: 256,
		dropWait: defaultDropWait}
}

// files is about how many file descriptors a tier holds at once: both
// ends of every idle socket, of the largest fan-out and of the flow's
// connections, and a margin for the database, pipes and the rest.
func (sz sizes) files() int {
	return 2*(sz.idle+slices.Max(sz.fanout)+1) + 2*(2*sz.flowConc+1) + 512
}

// Report is one run's figures.
type Report struct {
	Start   time.Time
	Timeout time.Duration
	Took    time.Duration
	Procs   int
	CPUs    int
	GoVer   string
	Quick   bool
	Tiers   []*Tier
	Profile string
}

// Tier is every figure at one load multiplier.
type Tier struct {
	Scale     int
	Convs     int
	Pending   int
	SeedTook  time.Duration
	Ceiling   Ceiling
	Approvals []throughput
	Flow      flowResult // M = 2, at flowConc
	Latency   flowResult // the same flow, one client at a time
	Fanout    []fanoutResult
	Idle      idleResult
	Restart   restartResult
}

// Run measures every tier and returns the report. When a tier fails (or
// the run times out), the report of the tiers finished before it is
// returned with the error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Scales) == 0 {
		cfg.Scales = []int{1, 10}
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	for _, scale := range cfg.Scales {
		if scale < 1 || scale > MaxScale {
			return nil, fmt.Errorf("scale %d: give whole multipliers from 1 to %d", scale, MaxScale)
		}
		if err := checkFiles(sizesFor(scale, cfg.Quick).files()); err != nil {
			return nil, fmt.Errorf("%dx: %w", scale, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	work, err := os.MkdirTemp(cfg.TempDir, "twokey-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	r := &Report{Start: time.Now(), Timeout: cfg.Timeout, Procs: runtime.GOMAXPROCS(0), CPUs: runtime.NumCPU(), GoVer: runtime.Version(),
		Quick: cfg.Quick, Profile: cfg.ProfileDir}
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "[%6.1fs] %s\n", time.Since(r.Start).Seconds(), fmt.Sprintf(format, args...))
	}
	pool := make([]*conversation.Identity, 64)
	for i := range pool {
		if pool[i], err = conversation.NewIdentity(fmt.Sprintf("signer%02d", i)); err != nil {
			return nil, err
		}
	}
	for _, scale := range cfg.Scales {
		t, err := runTier(ctx, cfg, filepath.Join(work, fmt.Sprintf("x%d", scale)), scale, pool, logf)
		if err == nil {
			err = ctx.Err() // a phase may have stopped early, with partial figures
		}
		if err != nil {
			r.Took = time.Since(r.Start)
			if ctx.Err() == context.DeadlineExceeded {
				err = fmt.Errorf("the run passed its time limit (--timeout %s) during %dx: the machine is too busy or too slow for these sizes; raise --timeout or measure fewer scales (--scales 1)", cfg.Timeout, scale)
			} else {
				err = fmt.Errorf("%dx: %w", scale, err)
			}
			if len(r.Tiers) == 0 {
				return nil, err
			}
			return r, err
		}
		r.Tiers = append(r.Tiers, t)
	}
	r.Took = time.Since(r.Start)
	return r, nil
}

func runTier(ctx context.Context, cfg Config, dir string, scale int, pool []*conversation.Identity, logf func(string, ...any)) (*Tier, error) {
	sz := sizesFor(scale, cfg.Quick)
	t := &Tier{Scale: scale}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	profile := func(name string, f func() error) error {
		if cfg.ProfileDir == "" {
			return f()
		}
		pf, err := os.Create(filepath.Join(cfg.ProfileDir, fmt.Sprintf("x%d-%s.pprof", scale, name)))
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return f() // another profile is running (go test -cpuprofile)
		}
		defer pprof.StopCPUProfile()
		return f()
	}

	up, err := startUpstream()
	if err != nil {
		return nil, err
	}
	defer up.close()
	e, err := startEnv(filepath.Join(dir, "data"), up, pool)
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			e.close()
		}
	}()

	logf("%dx: loading %s conversations with %s pending requests through the engine", scale, num(float64(sz.convs)), num(float64(sz.convs*sz.perConv)))
	var s *seeded
	// Loading is setup, not a figure: the collector is told to run less
	// often while it lasts, and set back before anything is measured.
	gc := debug.SetGCPercent(400)
	err = profile("seed", func() (err error) { s, err = e.seed(ctx, sz.convs, sz.perConv, sz.seedWorkers); return })
	debug.SetGCPercent(gc)
	runtime.GC()
	if err != nil {
		return nil, err
	}
	t.Convs, t.Pending, t.SeedTook = len(s.convs), s.pending, s.took
	logf("%dx: loaded in %s", scale, s.took.Round(time.Millisecond))

	// The ceiling is taken right before the figures it bounds.
	logf("%dx: ceiling (%s per measure)", scale, sz.ceilingTime)
	if t.Ceiling, err = measureCeiling(ctx, e.d.Store(), dir, sz.ceilingTime, 64); err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	ic := t.Ceiling.Ideal
	logf("%dx: ceiling: %s verifies/s (%d procs); ideal group commit on a %s MiB copy of the tier's database (copied in %s): %s appends/s of %s bytes in %d commits, %.1f pages each",
		scale, num(t.Ceiling.VerifyAll), t.Ceiling.Procs, mib(ic.FileBytes), t.Ceiling.CopyTook.Round(time.Millisecond), num(ic.Writes), num(float64(t.Ceiling.IdealValue)), ic.Commits, ic.Pages)
	logf("%dx: references: %s fsync'd tx/s, %s writes/s through DB.Batch on raw bbolt, %s/s through store.Commit",
		scale, num(t.Ceiling.FsyncSeq), num(t.Ceiling.RawWrites), num(t.Ceiling.StoreWrites))

	from := 0
	err = profile("approvals", func() error {
		for i, c := range approvalConc {
			var jobs []job
			var err error
			if jobs, from, err = e.approvalJobs(s, from, sz.approvals[i]); err != nil {
				return err
			}
			st0 := e.d.Store().Stats()
			tp := e.postAll(ctx, jobs, c, sz.approvalTime)
			st := e.d.Store().Stats().Sub(st0)
			if tp.Done > 0 {
				tp.Pages = float64(st.PagesWritten) / float64(tp.Done)
				tp.Bytes = float64(st.BytesWritten) / float64(tp.Done)
				tp.PageTime = st.WriteTime / time.Duration(max(1, st.PagesWritten))
				tp.PerCommit = float64(tp.Done) / float64(max(1, st.Commits))
				tp.Checkpoints = st.Checkpoints
			}
			if tp.Errors > 0 {
				return fmt.Errorf("approvals at c=%d: %d errors, first: %s", c, tp.Errors, tp.FirstErr)
			}
			t.Approvals = append(t.Approvals, tp)
			logf("%dx: approvals c=%d: %s/s (%d in %s), %.1f pages (%s KiB) written each, %.1f per commit, %d checkpoints", scale, c, num(tp.PerSec()), tp.Done, tp.Elapsed.Round(time.Millisecond), tp.Pages, kib(tp.Bytes), tp.PerCommit, tp.Checkpoints)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	convs, err := e.flowConvs(ctx, sz.flowConc+1)
	if err != nil {
		return nil, err
	}
	e.times.start()
	err = profile("flow", func() (err error) {
		t.Flow, err = e.flow(ctx, convs[:sz.flowConc], sz.flowConc, sz.flowOps, sz.flowTime)
		return err
	})
	if err != nil {
		return nil, err
	}
	if t.Flow.Errors > 0 {
		return nil, fmt.Errorf("flow: %d errors, first: %s", t.Flow.Errors, t.Flow.FirstErr)
	}
	logf("%dx: executed c=%d: %s/s; approval sent -> upstream p50 %s p99 %s", scale, sz.flowConc, num(t.Flow.PerSec()),
		ms(t.Flow.SentToUpstream.P50), ms(t.Flow.SentToUpstream.P99))
	t.Latency, err = e.flow(ctx, convs[sz.flowConc:], 1, sz.latencyOps, 15*time.Second)
	e.times.stop()
	if err != nil {
		return nil, err
	}
	if t.Latency.Errors > 0 {
		return nil, fmt.Errorf("latency: %d errors, first: %s", t.Latency.Errors, t.Latency.FirstErr)
	}
	logf("%dx: one at a time: approval sent -> upstream p50 %s p99 %s max %s", scale,
		ms(t.Latency.SentToUpstream.P50), ms(t.Latency.SentToUpstream.P99), ms(t.Latency.SentToUpstream.Max))

	fconv, ballast, err := e.fanoutConvs(ctx)
	if err != nil {
		return nil, err
	}
	err = profile("fanout", func() error {
		for _, n := range sz.fanout {
			variants := []bool{false}
			if n == sz.fanout[len(sz.fanout)/2] {
				variants = append(variants, true) // the same with one subscriber the server cannot write to
			}
			for _, stalled := range variants {
				recs := sz.fanoutRecords
				if n*recs > 50000 {
					recs = max(10, 50000/n) // bound the deliveries of the largest run
				}
				f, err := e.fanout(ctx, fconv, ballast, n, stalled, recs, sz.ballast, sz.dropWait)
				if err != nil {
					return err
				}
				t.Fanout = append(t.Fanout, f)
				logf("%dx: fan-out to %d: p50 %s p99 %s (last subscriber p99 %s), %d missing", scale, n,
					ms(f.Delivery.P50), ms(f.Delivery.P99), ms(f.Last.P99), f.Missing)
				if stalled {
					logf("%dx: ... with a stalled subscriber (%s MiB queued to it): dropped %v after %s", scale, mib(f.Ballast), f.Dropped, f.DroppedAfter.Round(time.Millisecond))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	if t.Idle, err = e.idleSockets(ctx, s, sz.idle); err != nil {
		return nil, err
	}
	logf("%dx: %d idle WebSockets: %.1f KiB heap+stack each, %.1f KiB RSS each", scale, t.Idle.N, t.Idle.HeapPerKiB, t.Idle.RSSPerKiB)

	closed = true
	if err := e.close(); err != nil {
		return nil, err
	}
	up.close()
	if t.Restart, err = restart(ctx, e.dir, cfg.Exe); err != nil {
		return nil, err
	}
	logf("%dx: restart with %s pending: %s, RSS %s MiB (peak %s MiB), database %s MiB", scale, num(float64(t.Pending)),
		t.Restart.Took.Round(time.Millisecond), mib(t.Restart.RSS), mib(t.Restart.HWM), mib(t.Restart.DBBytes))
	return t, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

func kib(b float64) string { return fmt.Sprintf("%.1f", b/(1<<10)) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
