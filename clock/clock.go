// Package clock is time as a dependency: the real wall clock for the server
// and a fake one that tests move by hand, so that expiry and TTLs are tested
// at their exact boundaries without sleeping.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and schedules functions.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f in its own goroutine once d has passed. The returned
	// stop function cancels it and reports whether it was still pending.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// Real is the system clock.
type Real struct{}

// Now returns the current UTC time.
func (Real) Now() time.Time { return time.Now().UTC() }

// AfterFunc wraps time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Fake is a clock that moves only when told to. Functions scheduled on it run
// synchronously inside Advance or Set, in due order, so a test observes their
// effects as soon as the call returns. AfterFunc never runs f itself, even
// for d <= 0: the next Advance or Set does, so a caller may schedule while
// holding locks that f takes.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	nextID int
}

type fakeTimer struct {
	id   int
	at   time.Time
	f    func()
	done bool
}

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t.UTC()} }

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f at Now()+d.
func (c *Fake) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	c.nextID++
	t := &fakeTimer{id: c.nextID, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.done {
			return false
		}
		t.done = true
		return true
	}
}

// Advance moves the clock forward by d, running every function now due.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	c.Set(target)
}

// Set moves the clock to t (never backwards), running every function due.
func (c *Fake) Set(t time.Time) {
	for {
		c.mu.Lock()
		// Run due timers one at a time, in order, each at its own time.
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
		var due *fakeTimer
		for _, tm := range c.timers {
			if !tm.done && !tm.at.After(t) {
				due = tm
				break
			}
		}
		if due == nil {
			if t.After(c.now) {
				c.now = t.UTC()
			}
			c.compact()
			c.mu.Unlock()
			return
		}
		due.done = true
		if due.at.After(c.now) {
			c.now = due.at
		}
		c.mu.Unlock()
		due.f()
	}
}

func (c *Fake) compact() {
	live := c.timers[:0]
	for _, tm := range c.timers {
		if !tm.done {
			live = append(live, tm)
		}
	}
	c.timers = live
}

// Pending reports how many scheduled functions have not run or been stopped.
func (c *Fake) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, tm := range c.timers {
		if !tm.done {
			n++
		}
	}
	return n
}
