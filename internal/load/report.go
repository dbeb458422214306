package load

import (
	"fmt"
	"strings"
	"time"
)

// Markdown renders the report as the table BENCHMARKS.md holds.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("Run %s, %s, %d CPUs (GOMAXPROCS %d), took %s.\n", r.Start.UTC().Format("2006-01-02 15:04 MST"), r.GoVer, r.CPUs, r.Procs, r.Took.Round(time.Second))
	if r.Quick {
		w("QUICK RUN: sizes shrunk to a smoke test; these figures mean nothing.\n")
	}
	var tiers []string
	for _, t := range r.Tiers {
		tiers = append(tiers, fmt.Sprintf("%dx = %s conversations holding %s pending requests (loaded in %s)",
			t.Scale, num(float64(t.Convs)), num(float64(t.Pending)), t.SeedTook.Round(100*time.Millisecond)))
	}
	w("Load: %s.\n\n", strings.Join(tiers, "; "))

	head := func(first string) {
		w("| %s |", first)
		for _, t := range r.Tiers {
			w(" %dx |", t.Scale)
		}
		if len(r.Tiers) > 1 {
			w(" %dx / %dx |", r.Tiers[len(r.Tiers)-1].Scale, r.Tiers[0].Scale)
		}
		w("\n|---|")
		for range r.Tiers {
			w("---:|")
		}
		if len(r.Tiers) > 1 {
			w("---:|")
		}
		w("\n")
	}
	// row writes a line: one cell per tier, then the growth of val.
	row := func(name string, cell func(t *Tier) string, val func(t *Tier) float64) {
		w("| %s |", name)
		for _, t := range r.Tiers {
			w(" %s |", cell(t))
		}
		if len(r.Tiers) > 1 {
			if val == nil {
				w(" |")
			} else {
				w(" %s |", ratio(val(r.Tiers[len(r.Tiers)-1]), val(r.Tiers[0])))
			}
		}
		w("\n")
	}

	w("**Ceiling** (measured at the start of each tier, same run)\n\n")
	head("ceiling")
	row("Ed25519 verifies/s, 1 goroutine", func(t *Tier) string { return num(t.Ceiling.VerifyOne) }, func(t *Tier) float64 { return t.Ceiling.VerifyOne })
	row(fmt.Sprintf("Ed25519 verifies/s, %d goroutines", r.Procs), func(t *Tier) string { return num(t.Ceiling.VerifyAll) }, func(t *Tier) float64 { return t.Ceiling.VerifyAll })
	row("bbolt commits/s, one fsync per tx (sequential small put)", func(t *Tier) string { return num(t.Ceiling.FsyncSeq) }, func(t *Tier) float64 { return t.Ceiling.FsyncSeq })
	row("group-committed approval-sized writes/s (64 writers, store.Commit)", func(t *Tier) string { return num(t.Ceiling.GroupWrites) }, func(t *Tier) float64 { return t.Ceiling.GroupWrites })
	row("bbolt pages written per group-committed write (write+sync per page)", func(t *Tier) string {
		return fmt.Sprintf("%.1f (%s)", t.Ceiling.GroupPages, ms(t.Ceiling.GroupPageTime))
	}, func(t *Tier) float64 { return t.Ceiling.GroupPages })
	row("**ceiling = min(verifies/s, group-committed writes/s)**", func(t *Tier) string { return "**" + num(t.Ceiling.Min()) + "**" }, func(t *Tier) float64 { return t.Ceiling.Min() })

	w("\n**Figures** (a/b: the figure as a fraction of that tier's ceiling)\n\n")
	head("figure")
	for i, c := range approvalConc {
		if i >= len(r.Tiers[0].Approvals) {
			break
		}
		row(fmt.Sprintf("2. approvals accepted/s, c=%d", c), func(t *Tier) string {
			a := t.Approvals[i].PerSec()
			return fmt.Sprintf("%s = %s of %s", num(a), ratio(a, t.Ceiling.Min()), num(t.Ceiling.Min()))
		}, func(t *Tier) float64 { return t.Approvals[i].PerSec() })
	}
	for i, c := range approvalConc {
		if i >= len(r.Tiers[0].Approvals) {
			break
		}
		row(fmt.Sprintf("2. bbolt pages written per approval at c=%d (write+sync per page)", c), func(t *Tier) string {
			return fmt.Sprintf("%.1f (%s)", t.Approvals[i].Pages, ms(t.Approvals[i].PageTime))
		}, func(t *Tier) float64 { return t.Approvals[i].Pages })
	}
	row(fmt.Sprintf("3. requests executed/s end to end, M=2, c=%d", r.Tiers[0].Flow.Conc), func(t *Tier) string {
		a := t.Flow.PerSec()
		return fmt.Sprintf("%s = %s of %s", num(a), ratio(a, t.Ceiling.Min()), num(t.Ceiling.Min()))
	}, func(t *Tier) float64 { return t.Flow.PerSec() })
	lat := func(name string, d func(t *Tier) dist) {
		row(name, func(t *Tier) string {
			x := d(t)
			return fmt.Sprintf("%s / %s / %s", ms(x.P50), ms(x.P99), ms(x.Max))
		}, func(t *Tier) float64 { return float64(d(t).P99) })
	}
	lat("4. M-th approval sent → upstream, one client: p50 / p99 / max", func(t *Tier) dist { return t.Latency.SentToUpstream })
	lat("4. durable executing mark → upstream, one client", func(t *Tier) dist { return t.Latency.CommitToUpstream })
	lat("4. approval's ack read → upstream, one client", func(t *Tier) dist { return t.Latency.AckToUpstream })
	lat(fmt.Sprintf("4. M-th approval sent → upstream, under load c=%d", r.Tiers[0].Flow.Conc), func(t *Tier) dist { return t.Flow.SentToUpstream })
	lat(fmt.Sprintf("4. approval sent → gate.response on the WebSocket, c=%d", r.Tiers[0].Flow.Conc), func(t *Tier) dist { return t.Flow.SentToResult })
	for i, f := range r.Tiers[0].Fanout {
		name := fmt.Sprintf("5. fan-out, commit → %s subscribers: p50 / p99 (last one's p99)", num(float64(f.Subs)))
		if f.Stalled > 0 {
			name = fmt.Sprintf("5. fan-out to %s + %d stalled subscriber", num(float64(f.Subs)), f.Stalled)
		}
		row(name, func(t *Tier) string {
			if i >= len(t.Fanout) {
				return "-"
			}
			x := t.Fanout[i]
			s := fmt.Sprintf("%s / %s (%s)", ms(x.Delivery.P50), ms(x.Delivery.P99), ms(x.Last.P99))
			if x.Missing > 0 {
				s += fmt.Sprintf(", %d missing", x.Missing)
			}
			return s
		}, func(t *Tier) float64 {
			if i >= len(t.Fanout) {
				return 0
			}
			return float64(t.Fanout[i].Delivery.P99)
		})
	}
	row("6. restart with the data loaded (to 'listening on')", func(t *Tier) string { return ms(t.Restart.Took) }, func(t *Tier) float64 { return float64(t.Restart.Took) })
	row("6. resident memory after restart (peak during it), MiB", func(t *Tier) string {
		if t.Restart.InProcess {
			return mib(t.Restart.RSS) + " (heap growth, in process)"
		}
		return fmt.Sprintf("%s (%s)", mib(t.Restart.RSS), mib(t.Restart.HWM))
	}, func(t *Tier) float64 { return float64(t.Restart.RSS) })
	row("6. of which anonymous (heap, stacks), MiB; the rest is the mapped database", func(t *Tier) string { return mib(t.Restart.Anon) },
		func(t *Tier) float64 { return float64(t.Restart.Anon) })
	row("6. database file, MiB", func(t *Tier) string { return mib(t.Restart.DBBytes) }, func(t *Tier) float64 { return float64(t.Restart.DBBytes) })
	row("6. idle WebSocket: KiB per connection, heap+stack (RSS)", func(t *Tier) string {
		return fmt.Sprintf("%.1f (%.1f) over %s", t.Idle.HeapPerKiB, t.Idle.RSSPerKiB, num(float64(t.Idle.N)))
	}, func(t *Tier) float64 { return t.Idle.HeapPerKiB })

	w("\n**Targets**\n\n")
	last := r.Tiers[len(r.Tiers)-1]
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	for _, t := range r.Tiers {
		if len(t.Approvals) == len(approvalConc) {
			a := t.Approvals[2].PerSec()
			w("- %dx: approvals/s at c=64 ≥ 0.50 of the ceiling: %s (%s); ", t.Scale, ratio(a, t.Ceiling.Min()), check(a >= t.Ceiling.Min()/2))
		}
		w("M-th approval → upstream p99 < 10 ms: %s (%s); ", ms(t.Latency.SentToUpstream.P99), check(t.Latency.SentToUpstream.P99 < 10*time.Millisecond))
		for _, f := range t.Fanout {
			if f.Subs == 100 && f.Stalled == 0 {
				w("fan-out to 100 p99 < 10 ms: %s (%s)", ms(f.Delivery.P99), check(f.Delivery.P99 < 10*time.Millisecond))
			}
		}
		w("\n")
	}
	w("- %s pending: restart < 5 s: %s (%s); idle WebSocket < 32 KiB: %.1f KiB (%s)\n", num(float64(last.Pending)), ms(last.Restart.Took),
		check(last.Restart.Took < 5*time.Second), last.Idle.HeapPerKiB, check(last.Idle.HeapPerKiB < 32))
	return b.String()
}
