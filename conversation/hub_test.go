package conversation

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

func hubRecord(seq uint64) Record {
	return Record{Seq: seq, Kind: KindChatMessage, Body: json.RawMessage(fmt.Sprintf(`{"n":%d}`, seq))}
}

func seqs(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func TestHubSince(t *testing.T) {
	h := NewHub(4)
	for n := uint64(1); n <= 10; n++ {
		h.Publish("c", hubRecord(n))
	}
	h.Publish("c", hubRecord(5), hubRecord(10)) // already published: ignored
	h.Publish("d", hubRecord(1), hubRecord(2), hubRecord(3))
	h.Publish("d")
	tests := []struct {
		name  string
		conv  string
		after uint64
		limit int
		want  []uint64
		ok    bool
	}{
		{"caught up", "c", 10, 10, nil, true},
		{"ahead of the log", "c", 99, 10, nil, true},
		{"whole window", "c", 6, 10, []uint64{7, 8, 9, 10}, true},
		{"limited", "c", 6, 2, []uint64{7, 8}, true},
		{"middle", "c", 8, 1, []uint64{9}, true},
		{"older than the window", "c", 3, 10, nil, false},
		{"window keeps up to twice its size", "c", 4, 10, []uint64{5, 6, 7, 8, 9, 10}, true},
		{"from the start, window passed", "c", 0, 10, nil, false},
		{"several in one Publish", "d", 0, 10, []uint64{1, 2, 3}, true},
		{"unknown conversation", "zzz", 0, 10, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, ok := h.Since(tt.conv, tt.after, tt.limit)
			if ok != tt.ok || fmt.Sprint(seqs(recs)) != fmt.Sprint(tt.want) {
				t.Fatalf("Since(%s, %d, %d) = %v %v, want %v %v", tt.conv, tt.after, tt.limit, seqs(recs), ok, tt.want, tt.ok)
			}
			for _, r := range recs {
				if string(r.Body) != fmt.Sprintf(`{"n":%d}`, r.Seq) {
					t.Fatalf("record %d has body %s", r.Seq, r.Body)
				}
			}
		})
	}
	// Since returns a copy.
	recs, _ := h.Since("c", 6, 10)
	recs[0].Seq = 99
	if again, _ := h.Since("c", 6, 1); again[0].Seq != 7 {
		t.Fatal("Since shares its window with the caller")
	}
	if h.Last("c") != 10 || h.Last("d") != 3 {
		t.Fatalf("Last %d %d", h.Last("c"), h.Last("d"))
	}

	// Init moves the log ahead (from the store): readers behind it fall back.
	h.Init("c", 20)
	for _, after := range []uint64{0, 9, 10, 19} {
		if recs, ok := h.Since("c", after, 10); ok || recs != nil {
			t.Fatalf("after Init, Since(%d) = %v %v; want the store", after, seqs(recs), ok)
		}
	}
	if recs, ok := h.Since("c", 20, 10); !ok || recs != nil {
		t.Fatalf("Since(20) = %v %v", seqs(recs), ok)
	}
	h.Publish("c", hubRecord(21))
	if recs, ok := h.Since("c", 20, 10); !ok || fmt.Sprint(seqs(recs)) != "[21]" {
		t.Fatalf("Since(20) after 21 = %v %v", seqs(recs), ok)
	}
	if _, ok := h.Since("c", 19, 10); ok {
		t.Fatal("Since(19) after Init(20) served from the window")
	}
	h.Init("c", 5) // behind: no change
	if h.Last("c") != 21 {
		t.Fatalf("Init backwards moved Last to %d", h.Last("c"))
	}
	if NewHub(0).window != 256 {
		t.Fatal("default window")
	}
}

func TestHubSubscribe(t *testing.T) {
	h := NewHub(8)
	wake := make(chan struct{}, 1)
	a := h.Subscribe("a", wake)
	b := h.Subscribe("b", wake)
	if a.C != wake || b.C != wake {
		t.Fatal("Subscribe did not use the shared channel")
	}
	// One first poke, coalesced across both subscriptions.
	if len(wake) != 1 {
		t.Fatalf("%d pokes pending after Subscribe", len(wake))
	}
	<-wake
	h.Publish("b", hubRecord(1))
	h.Publish("a", hubRecord(1), hubRecord(2))
	if len(wake) != 1 {
		t.Fatal("Publish did not wake the shared channel once")
	}
	<-wake
	if h.Subscribers("a") != 1 || h.Subscribers("b") != 1 {
		t.Fatalf("subscribers %d %d", h.Subscribers("a"), h.Subscribers("b"))
	}
	h.Unsubscribe(a)
	h.Publish("a", hubRecord(3))
	if len(wake) != 0 || h.Subscribers("a") != 0 {
		t.Fatal("an unsubscribed reader was woken")
	}
	own := h.Subscribe("a", nil)
	if cap(own.C) != 1 || len(own.C) != 1 {
		t.Fatalf("Subscribe(nil) made a channel of cap %d holding %d", cap(own.C), len(own.C))
	}
}

// memStore stands for the store: the engine commits a record there before
// it publishes it.
type memStore struct {
	mu   sync.Mutex
	recs map[string][]Record
}

func (s *memStore) append(conv string, r Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[conv] = append(s.recs[conv], r)
}

func (s *memStore) since(conv string, after uint64, limit int) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.recs[conv] // seq n at index n-1
	if after >= uint64(len(all)) {
		return nil
	}
	return append([]Record(nil), all[after:min(len(all), int(after)+limit)]...)
}

// TestHubFanOut: 50 readers, each following two conversations by cursor
// with one shared wake channel, while one goroutine publishes 1,000 records
// to each. Every reader sees every seq of both exactly once, in order: from
// the store while its cursor is older than the window (the first 100 records
// predate the hub, announced by Init), from the hub after.
func TestHubFanOut(t *testing.T) {
	const (
		readers = 50
		pre     = 100  // in the store before the hub starts
		live    = 1000 // published while the readers read
		last    = pre + live
		batch   = 10
	)
	convs := []string{"a", "b"}
	h := NewHub(64)
	st := &memStore{recs: map[string][]Record{}}
	for _, c := range convs {
		for n := uint64(1); n <= pre; n++ {
			st.append(c, hubRecord(n))
		}
		h.Init(c, pre)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	type result struct {
		reader             int
		err                error
		fromHub, fromStore int
	}
	results := make(chan result, readers)
	var subscribed sync.WaitGroup
	subscribed.Add(readers)
	for i := range readers {
		go func() {
			res := result{reader: i}
			defer func() { results <- res }()
			wake := make(chan struct{}, 1)
			for _, c := range convs {
				defer h.Unsubscribe(h.Subscribe(c, wake))
			}
			subscribed.Done()
			cursor := map[string]uint64{}
			for cursor["a"] < last || cursor["b"] < last {
				select {
				case <-wake:
				case <-ctx.Done():
					res.err = fmt.Errorf("timed out at cursors %v", cursor)
					return
				}
				for _, c := range convs {
					for {
						recs, ok := h.Since(c, cursor[c], batch)
						if ok {
							res.fromHub += len(recs)
						} else {
							recs = st.since(c, cursor[c], batch)
							res.fromStore += len(recs)
						}
						if len(recs) == 0 {
							break
						}
						for _, r := range recs {
							if r.Seq != cursor[c]+1 || string(r.Body) != fmt.Sprintf(`{"n":%d}`, r.Seq) {
								res.err = fmt.Errorf("conversation %s: got seq %d (%s) after %d", c, r.Seq, r.Body, cursor[c])
								return
							}
							cursor[c] = r.Seq
						}
					}
				}
			}
		}()
	}
	subscribed.Wait()
	if n := h.Subscribers("a"); n != readers {
		t.Fatalf("%d subscribers", n)
	}
	for n := uint64(pre + 1); n <= last; n++ {
		for _, c := range convs {
			st.append(c, hubRecord(n))
			h.Publish(c, hubRecord(n))
		}
	}
	for range readers {
		r := <-results
		if r.err != nil {
			t.Errorf("reader %d: %v", r.reader, r.err)
			continue
		}
		if r.fromHub+r.fromStore != 2*last || r.fromStore < 2*pre || r.fromHub == 0 {
			t.Errorf("reader %d: %d records from the hub, %d from the store", r.reader, r.fromHub, r.fromStore)
		}
	}
	if n := h.Subscribers("a") + h.Subscribers("b"); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}
}

// TestHubIdleSubscriberDoesNotBlock: a reader that never reads slows no
// one: Publish returns for 10,000 records, the reader holds one pending
// poke, and the window stays bounded.
func TestHubIdleSubscriberDoesNotBlock(t *testing.T) {
	const n, window = 10000, 256
	h := NewHub(window)
	idle := h.Subscribe("c", nil)
	unbuffered := h.Subscribe("c", make(chan struct{})) // misuse, still never blocks
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := uint64(1); seq <= n; seq++ {
			h.Publish("c", hubRecord(seq))
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Publish blocked on an idle subscriber")
	}
	if len(idle.C) != 1 || len(unbuffered.C) != 0 {
		t.Fatalf("idle subscriber holds %d pokes", len(idle.C))
	}
	if h.Last("c") != n {
		t.Fatalf("Last %d", h.Last("c"))
	}
	if recs, ok := h.Since("c", n-window, n); !ok || len(recs) != window || recs[0].Seq != n-window+1 {
		t.Fatalf("window holds %d records from %v (ok %v)", len(recs), seqs(recs[:min(1, len(recs))]), ok)
	}
	if _, ok := h.Since("c", n-2*window, n); ok {
		t.Fatal("the window grew past twice its size")
	}
}
