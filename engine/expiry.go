package engine

import (
	"container/heap"
	"sync"
	"time"

	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/gate"
)

// expiry keeps pending requests in a heap by expires_at, and approved ones
// by executable_at, with one timer set for the earliest, so expiring costs O(log n) per request and never scans
// all of them.
type expiry struct {
	clock clock.Clock
	fire  func(due []expItem)

	mu      sync.Mutex
	h       expHeap
	timerAt time.Time
	stopT   func() bool
	stopped bool
}

type expItem struct {
	at   time.Time
	conv string
	id   string
}

type expHeap []expItem

func (h expHeap) Len() int           { return len(h) }
func (h expHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expHeap) Push(x any)        { *h = append(*h, x.(expItem)) }
func (h *expHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newExpiry(c clock.Clock, fire func([]expItem)) *expiry {
	return &expiry{clock: c, fire: fire}
}

func (x *expiry) add(at time.Time, conv, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.stopped {
		return
	}
	heap.Push(&x.h, expItem{at: at, conv: conv, id: id})
	x.arm()
}

// arm sets the timer for the earliest item. Called with mu held.
func (x *expiry) arm() {
	if len(x.h) == 0 {
		return
	}
	next := x.h[0].at
	if x.stopT != nil && !x.timerAt.After(next) {
		return // an earlier or equal timer is already set
	}
	if x.stopT != nil {
		x.stopT()
	}
	x.timerAt = next
	x.stopT = x.clock.AfterFunc(next.Sub(x.clock.Now()), x.tick)
}

func (x *expiry) tick() {
	x.mu.Lock()
	if x.stopped {
		x.mu.Unlock()
		return
	}
	now := x.clock.Now()
	var due []expItem
	for len(x.h) > 0 && !x.h[0].at.After(now) {
		due = append(due, heap.Pop(&x.h).(expItem))
	}
	x.stopT = nil
	x.arm()
	x.mu.Unlock()
	if len(due) > 0 {
		x.fire(due)
	}
}

func (x *expiry) stop() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.stopped = true
	if x.stopT != nil {
		x.stopT()
	}
}

// expireDue writes gate.expired for each due request still pending.
func (e *Engine) expireDue(due []expItem) {
	if !e.Executing() {
		return // the executor fires them; a node that takes the lead arms them again
	}
	for _, it := range due {
		c, err := e.lookup(it.conv)
		if err != nil {
			continue
		}
		c.mu.Lock()
		r, err := e.req(c, it.id)
		if err != nil {
			e.log.Error("cannot read request to expire it; will retry", AttrConv, it.conv, AttrRequest, it.id, AttrError, err.Error())
			e.expiry.add(e.clock.Now().Add(time.Second), it.conv, it.id)
		}
		if r != nil && r.State == gate.StatePending && !e.clock.Now().Before(r.ExpiresAt) {
			if err := e.closeRequest(c, it.id, gate.StateExpired, gate.ReasonExpired, 0); err != nil {
				e.log.Error("cannot expire request; will retry", AttrConv, it.conv, AttrRequest, it.id, AttrError, err.Error())
				e.expiry.add(e.clock.Now().Add(time.Second), it.conv, it.id)
			}
		}
		if r != nil && r.Due(e.clock.Now()) {
			if err := e.executeDue(c, r); err != nil {
				e.log.Error("cannot start the execution of an approved request; will retry", AttrConv, it.conv, AttrRequest, it.id, AttrError, err.Error())
				e.expiry.add(e.clock.Now().Add(time.Second), it.conv, it.id)
			}
		}
		c.mu.Unlock()
	}
}

// executeDue starts the execution of an approved request whose cool-off is
// over: the executing mark is committed first, the call made after, once.
// Called with c.mu held.
func (e *Engine) executeDue(c *conv, r *gate.Request) error {
	id := r.ID
	return e.attempt(c, func() error {
		r, err := e.req(c, id)
		if err != nil || r == nil || !r.Due(e.clock.Now()) {
			return err
		}
		ch := e.begin(c)
		r = r.Clone()
		r.StartExecution()
		ch.putRequest(r)
		e.scheduleExecution(ch, r)
		return e.commit(ch)
	})
}
