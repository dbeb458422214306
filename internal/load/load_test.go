package load

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestQuickRun runs every phase at smoke-test sizes: the tool works end to
// end, over the real protocol, and renders its table.
func TestQuickRun(t *testing.T) {
	var log strings.Builder
	r, err := Run(context.Background(), Config{Scales: []int{1, 2}, Quick: true, TempDir: t.TempDir(), Log: &log})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	md := r.Markdown()
	for _, want := range []string{"C = ceiling per approval", "C₃ = ceiling per M=2 request", "ideal group commit", "copy of the tier's database",
		"(reference, not the ceiling) raw bbolt approval-sized writes/s", "through store.Commit", "bytes fsync'd per approval at c=64",
		"requests executed/s end to end, M=2, c=3 ≥ 0.50 of C₃", "p99 < 25 ms, under load", "anonymous memory after that restart", "approvals accepted/s (verified, committed, acknowledged), c=64", "requests executed/s", "of C₃",
		"negative", "one more subscriber that never reads", "restart", "idle WebSocket", "growth 2x / 1x", "(absolute "} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	for _, tier := range r.Tiers {
		if tier.Flow.Done == 0 || tier.Latency.Done == 0 {
			t.Errorf("%dx: no request executed", tier.Scale)
		}
		ic := tier.Ceiling.Ideal
		if ic.Writes <= 0 || ic.Commits <= 0 || ic.Pages <= 0 || ic.Bytes <= 0 || ic.FileBytes <= 0 || tier.Ceiling.IdealValue <= 0 ||
			tier.Ceiling.RawWrites <= 0 || tier.Ceiling.StoreWrites <= 0 || tier.Ceiling.PerRequest() >= tier.Ceiling.Min() {
			t.Errorf("%dx: ceiling %+v: want ideal, raw and store writes, and a per-request ceiling below the per-approval one", tier.Scale, tier.Ceiling)
		}
		if tier.Ceiling.Min() > ic.Writes {
			t.Errorf("%dx: C %v above the ideal commit's %v", tier.Scale, tier.Ceiling.Min(), ic.Writes)
		}
		for _, a := range tier.Approvals {
			if a.Bytes <= 0 || a.Pages <= 0 {
				t.Errorf("%dx: approvals at c=%d: %v pages, %v bytes written each", tier.Scale, a.Conc, a.Pages, a.Bytes)
			}
		}
		// The commit times come from the engine's hook: every executed
		// request has one, and nothing arrives before its commit.
		if n := tier.Latency.CommitToUpstream.N; n != tier.Latency.SentToUpstream.N || n == 0 {
			t.Errorf("%dx: %d commit times for %d executions", tier.Scale, n, tier.Latency.SentToUpstream.N)
		}
		stalled := 0
		for _, f := range tier.Fanout {
			if f.Missing > 0 || f.Negative > 0 || f.Records == 0 || f.Delivery.N != f.Subs*f.Records {
				t.Errorf("%dx: fan-out to %d: %d of %d deliveries missing, %d before their commit", tier.Scale, f.Subs, f.Missing, f.Delivery.N, f.Negative)
			}
			if f.Stalled {
				stalled++
				if f.Ballast < 64<<10 {
					t.Errorf("%dx: only %d bytes queued to the stalled subscriber", tier.Scale, f.Ballast)
				}
			}
		}
		if stalled != 1 {
			t.Errorf("%dx: %d fan-out runs with a stalled subscriber, want 1", tier.Scale, stalled)
		}
	}
	t.Log("\n" + md)
}

// TestMissedCountsAsSlowest: a delivery that never came sits above every
// real one in the distribution instead of leaving it.
func TestMissedCountsAsSlowest(t *testing.T) {
	ds := []time.Duration{time.Millisecond, 2 * time.Millisecond, missed}
	d := summarize(ds)
	if d.Max != missed || d.P99 != missed || d.P50 != 2*time.Millisecond {
		t.Fatalf("summary %+v", d)
	}
	if ms(d.P99) != "missing" {
		t.Fatalf("a missed delivery prints as %q", ms(d.P99))
	}
}

// TestRunBounds: a scale beyond the limit is refused before anything
// starts, and a run that passes its time limit stops and says which flag
// to change.
func TestRunBounds(t *testing.T) {
	if _, err := Run(context.Background(), Config{Scales: []int{MaxScale + 1}, Quick: true, TempDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "from 1 to 10") {
		t.Fatalf("scale %d: err %v", MaxScale+1, err)
	}
	start := time.Now()
	r, err := Run(context.Background(), Config{Scales: []int{1}, Quick: true, TempDir: t.TempDir(), Timeout: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("1 ms limit: report %v, err %v", r, err)
	}
	if r != nil {
		t.Fatalf("no tier can finish in 1 ms, yet the report holds %d", len(r.Tiers))
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("a run limited to 1 ms took %s", took)
	}
}
