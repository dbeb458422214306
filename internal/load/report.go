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
	w("Run %s, %s, %d CPUs (GOMAXPROCS %d), took %s (limit %s).\n", r.Start.UTC().Format("2006-01-02 15:04 MST"), r.GoVer, r.CPUs, r.Procs,
		r.Took.Round(time.Second), r.Timeout)
	if r.Quick {
		w("QUICK RUN: sizes shrunk to a smoke test; these figures mean nothing.\n")
	}
	if len(r.Tiers) == 0 {
		return b.String()
	}
	var tiers []string
	for _, t := range r.Tiers {
		tiers = append(tiers, fmt.Sprintf("%dx = %s conversations holding %s pending requests (loaded in %s)",
			t.Scale, num(float64(t.Convs)), num(float64(t.Pending)), t.SeedTook.Round(100*time.Millisecond)))
	}
	w("Load: %s. The load clients, the server and the upstream share this machine.\n\n", strings.Join(tiers, "; "))

	first, last := r.Tiers[0], r.Tiers[len(r.Tiers)-1]
	growth := len(r.Tiers) > 1
	head := func(name string) {
		w("| %s |", name)
		for _, t := range r.Tiers {
			w(" %dx |", t.Scale)
		}
		if growth {
			w(" growth %dx / %dx |", last.Scale, first.Scale)
		}
		w("\n|---|")
		for range r.Tiers {
			w("---:|")
		}
		if growth {
			w("---:|")
		}
		w("\n")
	}
	// row writes a line: one cell per tier, then the growth from the
	// first tier to the last (g may be nil: no growth shown).
	row := func(name string, cell func(t *Tier) string, g func(a, b *Tier) string) {
		w("| %s |", name)
		for _, t := range r.Tiers {
			w(" %s |", cell(t))
		}
		if growth {
			if g == nil {
				w(" |")
			} else {
				w(" %s |", g(last, first))
			}
		}
		w("\n")
	}
	// abs is the growth of an absolute value; frac the growth of a
	// throughput as a fraction of its tier's ceiling (each tier has its
	// own), with the absolute growth beside it.
	abs := func(v func(t *Tier) float64) func(a, b *Tier) string {
		return func(a, b *Tier) string { return ratio(v(a), v(b)) }
	}
	frac := func(v, ceil func(t *Tier) float64) func(a, b *Tier) string {
		return func(a, b *Tier) string {
			if ceil(a) == 0 || ceil(b) == 0 {
				return "n/a"
			}
			return fmt.Sprintf("%s (absolute %s)", ratio(v(a)/ceil(a), v(b)/ceil(b)), ratio(v(a), v(b)))
		}
	}
	lat := func(d func(t *Tier) dist) func(a, b *Tier) string {
		return func(a, b *Tier) string {
			x, y := d(a).P99, d(b).P99
			if x == missed || y == missed {
				return "n/a"
			}
			return "p99 " + ratio(float64(x), float64(y))
		}
	}

	w("**Ceiling**: this machine's best, measured at the start of each tier with nothing of twokey's around it. C is the fewer of Ed25519 verifies/s on every core and this disk's ideal group commit: approval-sized appends from %d writers, ONE committer committing everything queued in one bbolt transaction as soon as the previous commit ends (no timer), on a copy of the tier's database. The rows marked reference are not the ceiling: bbolt's DB.Batch (the ceiling before; its batches wait for a 10 ms timer or for every writer, so it measures bbolt's batching, not the disk) and twokey's own store.\n\n", first.Ceiling.Writers)
	head("ceiling")
	row("Ed25519 verifies/s, 1 goroutine", func(t *Tier) string { return num(t.Ceiling.VerifyOne) }, abs(func(t *Tier) float64 { return t.Ceiling.VerifyOne }))
	row(fmt.Sprintf("Ed25519 verifies/s, %d goroutines", r.Procs), func(t *Tier) string { return num(t.Ceiling.VerifyAll) }, abs(func(t *Tier) float64 { return t.Ceiling.VerifyAll }))
	row(fmt.Sprintf("ideal group commit: approval-sized appends/s (%s bytes each), %d writers, one committer, on a copy of the tier's database (its MiB; appends per commit)",
		num(float64(first.Ceiling.IdealValue)), first.Ceiling.Writers), func(t *Tier) string {
		ic := t.Ceiling.Ideal
		return fmt.Sprintf("%s (%s MiB; %.1f)", num(ic.Writes), mib(ic.FileBytes), float64(ic.Done)/float64(max(1, ic.Commits)))
	}, abs(func(t *Tier) float64 { return t.Ceiling.Ideal.Writes }))
	row("ideal group commit: pages / KiB written per append (write+sync time per page)", func(t *Tier) string {
		ic := t.Ceiling.Ideal
		return fmt.Sprintf("%.2f / %s KiB (%s)", ic.Pages, kib(ic.Bytes), ms(ic.PageTime))
	}, abs(func(t *Tier) float64 { return t.Ceiling.Ideal.Bytes }))
	row("**C = ceiling per approval = min(verifies/s, ideal appends/s)**", func(t *Tier) string { return "**" + num(t.Ceiling.Min()) + "**" },
		abs(func(t *Tier) float64 { return t.Ceiling.Min() }))
	row(fmt.Sprintf("**C₃ = ceiling per M=2 request = min(verifies/s ÷ %d, ideal appends/s ÷ %d)**", flowVerifies, flowCommits),
		func(t *Tier) string { return "**" + num(t.Ceiling.PerRequest()) + "**" }, abs(func(t *Tier) float64 { return t.Ceiling.PerRequest() }))
	row("(reference, not the ceiling) raw bbolt commits/s, one small put and one fsync per transaction, sequential, fresh file", func(t *Tier) string { return num(t.Ceiling.FsyncSeq) },
		abs(func(t *Tier) float64 { return t.Ceiling.FsyncSeq }))
	row(fmt.Sprintf("(reference, not the ceiling) raw bbolt approval-sized writes/s, %d writers, DB.Batch, fresh file, the layout before log-first (pages per write, write+sync time per page)", first.Ceiling.Writers),
		func(t *Tier) string {
			return fmt.Sprintf("%s = %s of ideal (%.1f, %s)", num(t.Ceiling.RawWrites), ratio(t.Ceiling.RawWrites, t.Ceiling.Ideal.Writes), t.Ceiling.RawPages, ms(t.Ceiling.RawPageTime))
		}, abs(func(t *Tier) float64 { return t.Ceiling.RawWrites }))
	row(fmt.Sprintf("(a figure, not the ceiling) the same appends through store.Commit, %d writers, fresh file", first.Ceiling.Writers), func(t *Tier) string {
		return fmt.Sprintf("%s = %s of ideal", num(t.Ceiling.StoreWrites), ratio(t.Ceiling.StoreWrites, t.Ceiling.Ideal.Writes))
	}, frac(func(t *Tier) float64 { return t.Ceiling.StoreWrites }, func(t *Tier) float64 { return t.Ceiling.Ideal.Writes }))
	w("\n**Figures** (\"x = f of C\": the figure, and its fraction of that tier's ceiling; the growth of a throughput is the growth of that fraction)\n\n")
	head("figure")
	ceilMin := func(t *Tier) float64 { return t.Ceiling.Min() }
	for i, c := range approvalConc {
		if i >= len(first.Approvals) {
			break
		}
		v := func(t *Tier) float64 { return t.Approvals[i].PerSec() }
		row(fmt.Sprintf("2. approvals accepted/s (verified, committed, acknowledged), c=%d", c), func(t *Tier) string {
			return fmt.Sprintf("%s = %s of C %s", num(v(t)), ratio(v(t), t.Ceiling.Min()), num(t.Ceiling.Min()))
		}, frac(v, ceilMin))
	}
	for i, c := range approvalConc {
		if i >= len(first.Approvals) {
			break
		}
		row(fmt.Sprintf("2. bbolt pages written per approval at c=%d (write+sync time per page; approvals per commit; checkpoints among the commits)", c), func(t *Tier) string {
			a := t.Approvals[i]
			return fmt.Sprintf("%.1f (%s; %.1f; %d)", a.Pages, ms(a.PageTime), a.PerCommit, a.Checkpoints)
		}, abs(func(t *Tier) float64 { return t.Approvals[i].Pages }))
	}
	for i, c := range approvalConc {
		if i >= len(first.Approvals) {
			break
		}
		row(fmt.Sprintf("2. bytes fsync'd per approval at c=%d (× the ideal append's)", c), func(t *Tier) string {
			return fmt.Sprintf("%s KiB (%s×)", kib(t.Approvals[i].Bytes), ratio(t.Approvals[i].Bytes, t.Ceiling.Ideal.Bytes))
		}, abs(func(t *Tier) float64 { return t.Approvals[i].Bytes }))
	}
	flowV := func(t *Tier) float64 { return t.Flow.PerSec() }
	row(fmt.Sprintf("3. requests executed/s end to end, M=2, c=%d (each: %d verifies, %d durable commits, so held to C₃)", first.Flow.Conc, flowVerifies, flowCommits),
		func(t *Tier) string {
			return fmt.Sprintf("%s = %s of C₃ %s", num(flowV(t)), ratio(flowV(t), t.Ceiling.PerRequest()), num(t.Ceiling.PerRequest()))
		}, frac(flowV, func(t *Tier) float64 { return t.Ceiling.PerRequest() }))
	latRow := func(name string, d func(t *Tier) dist, extra func(t *Tier) string) {
		row(name, func(t *Tier) string {
			x := d(t)
			s := fmt.Sprintf("%s / %s / %s", ms(x.P50), ms(x.P99), ms(x.Max))
			if extra != nil {
				s += extra(t)
			}
			return s
		}, lat(d))
	}
	latRow("4. M-th approval sent → upstream, one client: p50 / p99 / max", func(t *Tier) dist { return t.Latency.SentToUpstream }, nil)
	latRow("4. approval's commit durable (it holds the executing mark) → upstream, one client", func(t *Tier) dist { return t.Latency.CommitToUpstream }, nil)
	latRow("4. approval's answer read → upstream, one client (negative: the call arrived first, see below)", func(t *Tier) dist { return t.Latency.AckToUpstream },
		func(t *Tier) string {
			return fmt.Sprintf("; %d of %d negative", t.Latency.AckNegative, t.Latency.AckToUpstream.N)
		})
	latRow(fmt.Sprintf("4. M-th approval sent → upstream, under load c=%d", first.Flow.Conc), func(t *Tier) dist { return t.Flow.SentToUpstream }, nil)
	latRow(fmt.Sprintf("4. M-th approval sent → gate.response read on the WebSocket, c=%d", first.Flow.Conc), func(t *Tier) dist { return t.Flow.SentToResult }, nil)
	for i, f := range first.Fanout {
		name := fmt.Sprintf("5. fan-out, commit durable → %s subscribers: p50 / p99 (the last subscriber's p99)", num(float64(f.Subs)))
		if f.Stalled {
			name = fmt.Sprintf("5. fan-out to the same %s with one more subscriber that never reads", num(float64(f.Subs)))
		}
		d := func(t *Tier) dist {
			if i >= len(t.Fanout) {
				return dist{P99: missed}
			}
			return t.Fanout[i].Delivery
		}
		row(name, func(t *Tier) string {
			if i >= len(t.Fanout) {
				return "-"
			}
			x := t.Fanout[i]
			s := fmt.Sprintf("%s / %s (%s); %d of %d missing", ms(x.Delivery.P50), ms(x.Delivery.P99), ms(x.Last.P99), x.Missing, x.Subs*x.Records)
			if x.Negative > 0 {
				s += fmt.Sprintf(", %d before their commit", x.Negative)
			}
			if x.Stalled {
				s += "; " + stallCell(x, t.Fanout)
			}
			return s
		}, lat(d))
	}
	row("6. restart with the data loaded (to 'listening on')", func(t *Tier) string { return ms(t.Restart.Took) }, abs(func(t *Tier) float64 { return float64(t.Restart.Took) }))
	row("6. resident memory after restart (peak during it), MiB", func(t *Tier) string {
		if t.Restart.InProcess {
			return mib(t.Restart.RSS) + " (heap growth, in process)"
		}
		return fmt.Sprintf("%s (%s)", mib(t.Restart.RSS), mib(t.Restart.HWM))
	}, abs(func(t *Tier) float64 { return float64(t.Restart.RSS) }))
	row("6. of which anonymous (heap, stacks), MiB; the rest is the mapped database", func(t *Tier) string { return mib(t.Restart.Anon) },
		abs(func(t *Tier) float64 { return float64(t.Restart.Anon) }))
	row("6. database file, MiB", func(t *Tier) string { return mib(t.Restart.DBBytes) }, abs(func(t *Tier) float64 { return float64(t.Restart.DBBytes) }))
	row("6. idle WebSocket: KiB per connection, heap+stack (RSS)", func(t *Tier) string {
		return fmt.Sprintf("%.1f (%.1f) over %s", t.Idle.HeapPerKiB, t.Idle.RSSPerKiB, num(float64(t.Idle.N)))
	}, abs(func(t *Tier) float64 { return t.Idle.HeapPerKiB }))

	w("\nThe growth column compares the last tier with the first: the data set (conversations, pending requests, idle sockets) grows %s times, the offered load per phase does not.\n", ratio(float64(last.Scale), float64(first.Scale)))
	w("A negative \"answer read → upstream\" is not an error: the call starts as soon as the approval's commit (which holds the executing mark) is durable, in parallel with the HTTP answer to the approver, so the upstream can see the call before the approver has read its answer.\n")

	w("\n**Targets**\n\n")
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	for _, t := range r.Tiers {
		w("- %dx:\n", t.Scale)
		if len(t.Approvals) == len(approvalConc) {
			a := t.Approvals[len(approvalConc)-1].PerSec()
			w("  - approvals accepted/s at c=64 ≥ 0.50 of C: %s (%s)\n", ratio(a, t.Ceiling.Min()), check(a >= t.Ceiling.Min()/2))
		}
		fl := t.Flow.PerSec()
		w("  - requests executed/s end to end, M=2, c=%d ≥ 0.50 of C₃: %s (%s)\n", t.Flow.Conc, ratio(fl, t.Ceiling.PerRequest()), check(fl >= t.Ceiling.PerRequest()/2))
		w("  - M-th approval → upstream p99 < 5 ms, one client: %s (%s)\n", ms(t.Latency.SentToUpstream.P99), check(t.Latency.SentToUpstream.P99 < 5*time.Millisecond))
		w("  - M-th approval → upstream p99 < 25 ms, under load c=%d: %s (%s)\n", t.Flow.Conc, ms(t.Flow.SentToUpstream.P99), check(t.Flow.SentToUpstream.P99 < 25*time.Millisecond))
		for _, f := range t.Fanout {
			var bound time.Duration
			switch f.Subs {
			case 100:
				bound = 5 * time.Millisecond
			case 1000:
				bound = 50 * time.Millisecond
			default:
				continue
			}
			ok := f.Missing == 0 && f.Delivery.P99 < bound
			if !f.Stalled {
				w("  - fan-out to %s p99 < %d ms, none missing: %s, %d missing (%s)\n", num(float64(f.Subs)), bound.Milliseconds(), ms(f.Delivery.P99), f.Missing, check(ok))
				continue
			}
			w("  - a slow subscriber never slows the others (it is really stalled and dropped; the others' p99 < %d ms, none missing): %s (%s)\n",
				bound.Milliseconds(), stallCell(f, t.Fanout), check(ok && f.Dropped))
		}
	}
	held := ""
	if last.Pending != 100000 {
		held = fmt.Sprintf(" (this run's largest tier holds %s)", num(float64(last.Pending)))
	}
	w("- restart with 100,000 pending < 2 s%s: %s (%s)\n", held, ms(last.Restart.Took), check(last.Restart.Took < 2*time.Second))
	if last.Restart.InProcess || last.Restart.Anon == 0 {
		w("- anonymous memory after that restart < 100 MiB: not measured (the restart was not a child process on Linux) (**not met**)\n")
	} else {
		w("- anonymous memory after that restart < 100 MiB: %s MiB (%s)\n", mib(last.Restart.Anon), check(last.Restart.Anon < 100<<20))
	}
	w("- idle WebSocket < 16 KiB: %.1f KiB (%s)\n", last.Idle.HeapPerKiB, check(last.Idle.HeapPerKiB < 16))
	w("- rule lookup independent of the number of conversations, expiry without a scan: the Go benchmarks (BenchmarkSubmit, BenchmarkExpiry).\n")
	return b.String()
}

// stallCell says what became of a stalled subscriber, and the others'
// p99 beside the same fan-out without it.
func stallCell(f fanoutResult, all []fanoutResult) string {
	var s string
	switch {
	case !f.DropChecked:
		s = fmt.Sprintf("%s MiB queued to the stalled one, its drop not waited for", mib(f.Ballast))
	case f.Dropped:
		s = fmt.Sprintf("the stalled one (%s MiB queued to it) dropped by the server after %s", mib(f.Ballast), f.DroppedAfter.Round(100*time.Millisecond))
	default:
		s = fmt.Sprintf("the stalled one (%s MiB queued to it) NOT dropped within %s: the stall is not proven", mib(f.Ballast), defaultDropWait)
	}
	for _, g := range all {
		if g.Subs == f.Subs && !g.Stalled && f.Delivery.P99 != missed && g.Delivery.P99 != missed {
			s += fmt.Sprintf("; the others' p99 %s, %s× that without it", ms(f.Delivery.P99), ratio(float64(f.Delivery.P99), float64(g.Delivery.P99)))
		}
	}
	return s
}
