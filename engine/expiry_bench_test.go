package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/twokey/twokey/clock"
)

// BenchmarkExpiry adds a pending request to, and expires one from, a
// scheduler already holding n: a heap and one timer, so the cost grows
// with log n and expiring never scans the pending requests.
func BenchmarkExpiry(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("pending=%d", n), func(b *testing.B) {
			start := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
			clk := clock.NewFake(start)
			fired := 0
			x := newExpiry(clk, func(due []expItem) { fired += len(due) })
			for i := range n {
				x.add(start.Add(time.Hour+time.Duration(i)*time.Millisecond), "c", fmt.Sprint(i))
			}
			b.ReportAllocs()
			i := n
			for b.Loop() {
				// One new request due after all the others, and the
				// earliest one comes due.
				x.add(start.Add(time.Hour+time.Duration(i)*time.Millisecond), "c", "r")
				i++
				x.mu.Lock()
				next := x.h[0].at
				x.mu.Unlock()
				clk.Set(next)
			}
			b.StopTimer()
			x.stop()
			if fired == 0 {
				b.Fatal("nothing expired")
			}
		})
	}
}
