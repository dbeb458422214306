package engine

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey/clock"
)

func TestExpiryFiresInOrderWithOneTimer(t *testing.T) {
	start := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	var mu sync.Mutex
	var fired []string
	x := newExpiry(clk, func(due []expItem) {
		mu.Lock()
		defer mu.Unlock()
		for _, it := range due {
			if clk.Now().Before(it.at) {
				t.Errorf("%s fired at %s, before its time %s", it.id, clk.Now(), it.at)
			}
			fired = append(fired, it.id)
		}
	})
	// Add in scrambled order; the heap keeps them by time.
	for _, i := range []int{5, 1, 9, 3, 7, 2, 8, 4, 6, 0} {
		x.add(start.Add(time.Duration(i+1)*time.Minute), "c", fmt.Sprint(i))
	}
	if n := clk.Pending(); n != 1 {
		t.Fatalf("%d timers armed for 10 items, want 1", n)
	}
	clk.Advance(3*time.Minute - time.Nanosecond)
	mu.Lock()
	if len(fired) != 2 {
		t.Fatalf("fired %v before 3 minutes", fired)
	}
	mu.Unlock()
	// An item earlier than the armed timer re-arms it.
	x.add(start.Add(3*time.Minute-time.Millisecond), "c", "early")
	clk.Advance(time.Nanosecond)
	clk.Advance(10 * time.Minute)
	mu.Lock()
	defer mu.Unlock()
	want := "[0 1 early 2 3 4 5 6 7 8 9]"
	if fmt.Sprint(fired) != want {
		t.Fatalf("fired %v, want %s", fired, want)
	}
	if clk.Pending() != 0 {
		t.Fatalf("%d timers left", clk.Pending())
	}
}

func TestExpiryStops(t *testing.T) {
	clk := clock.NewFake(time.Now())
	n := 0
	x := newExpiry(clk, func(due []expItem) { n += len(due) })
	x.add(clk.Now().Add(time.Second), "c", "a")
	x.stop()
	x.add(clk.Now().Add(time.Second), "c", "b")
	clk.Advance(time.Minute)
	if n != 0 {
		t.Fatalf("%d fired after stop", n)
	}
}
