package conversation

import (
	"sync"
)

// Hub fans committed records out to live subscribers.
//
// Delivery semantics, which every transport relies on:
//   - A subscriber is a cursor (the last seq it has), not a queue. Publish
//     never blocks and never copies records per subscriber: it stores the
//     records in a per-conversation window of recent records and pokes each
//     subscriber's one-slot notify channel.
//   - A reader catches up with Since, falling back to the store when its
//     cursor is older than the window. Reading by cursor means records
//     arrive in seq order, none missed and none twice, however notifications
//     coalesce.
//   - A slow reader only falls behind; it never slows the engine or other
//     readers. Transports drop a reader whose socket will not take writes,
//     and the client resumes from its last seq.
//
// Publish must be called in seq order per conversation (the engine does so
// under the conversation's lock).
type Hub struct {
	window int

	mu     sync.Mutex
	topics map[string]*topic
}

type topic struct {
	mu     sync.RWMutex
	recent []Record // the last records, ascending seq, at most window
	last   uint64
	subs   map[*Sub]struct{}
}

// Sub is one subscription's wake-up signal.
type Sub struct {
	C    chan struct{} // receives when records past the last published may exist
	conv string
}

// NewHub returns a hub that keeps the last window records of each
// conversation in memory.
func NewHub(window int) *Hub {
	if window < 1 {
		window = 256
	}
	return &Hub{window: window, topics: map[string]*topic{}}
}

func (h *Hub) topic(conv string) *topic {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[conv]
	if t == nil {
		t = &topic{subs: map[*Sub]struct{}{}}
		h.topics[conv] = t
	}
	return t
}

// Publish records committed records (ascending seq) and wakes subscribers.
func (h *Hub) Publish(conv string, recs ...Record) {
	if len(recs) == 0 {
		return
	}
	t := h.topic(conv)
	t.mu.Lock()
	for _, r := range recs {
		if r.Seq <= t.last {
			continue
		}
		t.recent = append(t.recent, r)
		t.last = r.Seq
	}
	if len(t.recent) >= 2*h.window {
		// Keep the last window records. Trimming only when the slice has
		// doubled makes the copy cost amortized O(1) per record, and the
		// copy lets the dropped prefix be collected.
		t.recent = append(make([]Record, 0, 2*h.window), t.recent[len(t.recent)-h.window:]...)
	}
	subs := make([]*Sub, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, s := range subs {
		select {
		case s.C <- struct{}{}:
		default:
		}
	}
}

// Init tells the hub where conv's log stands (at start-up, from the store),
// so that readers behind it fall back to the store.
func (h *Hub) Init(conv string, last uint64) {
	t := h.topic(conv)
	t.mu.Lock()
	if last > t.last {
		t.last = last
		t.recent = nil
	}
	t.mu.Unlock()
}

// Subscribe registers a wake-up for conv on wake (a channel of capacity
// one, which several subscriptions of one reader may share; nil makes a new
// one). The channel is poked once now, so a reader always makes a first pass.
func (h *Hub) Subscribe(conv string, wake chan struct{}) *Sub {
	if wake == nil {
		wake = make(chan struct{}, 1)
	}
	s := &Sub{C: wake, conv: conv}
	t := h.topic(conv)
	t.mu.Lock()
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	select {
	case s.C <- struct{}{}:
	default:
	}
	return s
}

// Unsubscribe removes a subscription.
func (h *Hub) Unsubscribe(s *Sub) {
	t := h.topic(s.conv)
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}

// Since returns up to limit records after seq from the window. ok is false
// when records after seq have left the window (the caller reads the store);
// an empty result with ok true means the reader is caught up.
func (h *Hub) Since(conv string, after uint64, limit int) (recs []Record, ok bool) {
	t := h.topic(conv)
	t.mu.RLock()
	defer t.mu.RUnlock()
	if after >= t.last {
		return nil, true
	}
	if len(t.recent) == 0 || t.recent[0].Seq > after+1 {
		return nil, false
	}
	i := int(after + 1 - t.recent[0].Seq)
	j := min(len(t.recent), i+limit)
	return append([]Record(nil), t.recent[i:j]...), true
}

// Last returns the last published seq of conv.
func (h *Hub) Last(conv string) uint64 {
	t := h.topic(conv)
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.last
}

// Subscribers returns how many subscriptions conv has.
func (h *Hub) Subscribers(conv string) int {
	t := h.topic(conv)
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.subs)
}
