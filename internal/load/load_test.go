package load

import (
	"context"
	"strings"
	"testing"
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
	for _, want := range []string{"ceiling = min", "approvals accepted/s, c=64", "requests executed/s", "fan-out", "restart", "idle WebSocket", "2x / 1x"} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	for _, tier := range r.Tiers {
		if tier.Flow.Done == 0 || tier.Latency.Done == 0 {
			t.Errorf("%dx: no request executed", tier.Scale)
		}
		for _, f := range tier.Fanout {
			if f.Missing > 0 {
				t.Errorf("%dx: fan-out to %d: %d deliveries missing", tier.Scale, f.Subs, f.Missing)
			}
		}
	}
	t.Log("\n" + md)
}
