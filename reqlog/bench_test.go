package reqlog

import (
	"fmt"
	"testing"
	"time"

	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/store"
)

// benchLog builds a log of n entries (a submitted and an executed entry
// per request, one request a second) in a temp dir, in big commits through
// the store, once per size.
func benchLog(b *testing.B, n int) *Log {
	b.Helper()
	st := openStore(b, b.TempDir())
	b.Cleanup(func() { st.Close() })
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLog(b, Config{Store: st, Clock: clock.NewFake(start)})
	b.Cleanup(l.Close)
	puts := make([]store.Put, 0, 100000)
	for i := 0; i < n; i += 2 {
		at := start.Add(time.Duration(i) * time.Second)
		r := req(fmt.Sprintf("%08x-0000-4000-8000-000000000000", i), "httpbin", "")
		if i%1000 == 0 {
			r.Payload.Service = "rare"
		}
		puts = append(puts, l.Puts(engine.Event{Kind: engine.EventSubmitted, Time: at, Conversation: "c1", Request: r})...)
		puts = append(puts, l.Puts(engine.Event{Kind: engine.EventExecuted, Time: at.Add(time.Second), Conversation: "c1", Request: r,
			Status: 200, Duration: time.Duration(1+i%500) * time.Millisecond})...)
		if len(puts) >= cap(puts)-4 || i+2 >= n {
			if err := st.Commit(&store.Write{Puts: puts}); err != nil {
				b.Fatal(err)
			}
			puts = puts[:0]
		}
	}
	return l
}

// BenchmarkQuery: a page costs the same whatever the size of the log:
// compare entries=10000 with entries=1000000 at each limit. "filtered"
// asks for a service one request in 500 uses, so each page examines up to
// ScanBudget entries. "usage" adds up the per-day counters.
func BenchmarkQuery(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		l := benchLog(b, n)
		for _, limit := range []int{1, 100} {
			b.Run(fmt.Sprintf("entries=%d/limit=%d", n, limit), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if p, err := l.Query(Filter{Limit: limit}); err != nil || len(p.Entries) != limit {
						b.Fatalf("%d entries, %v", len(p.Entries), err)
					}
				}
			})
		}
		b.Run(fmt.Sprintf("entries=%d/filtered", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Query(Filter{Service: "rare", Limit: 100}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("entries=%d/usage", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if rows, err := l.Usage(ByService, Filter{}); err != nil || len(rows) != 2 {
					b.Fatalf("%+v %v", rows, err)
				}
			}
		})
	}
}
