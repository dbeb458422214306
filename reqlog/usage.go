package reqlog

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/store"
)

// Usage: the per-day counters written with each entry, and the sums a
// query adds up from them.

// Group names what Usage groups by.
const (
	ByKey     = api.UsageByKey
	ByService = api.UsageByService
	ByDay     = api.UsageByDay
)

// The counters of a usage row (store.Put.Add), in this order, then the
// latency histogram's buckets.
const (
	cSubmitted = iota
	cExecuted
	cFailed
	cExpired
	cRejected
	cCancelled
	cLatency // the first bucket of the latency histogram
)

var eventCounter = map[string]int{EventSubmitted: cSubmitted, EventExecuted: cExecuted, EventFailed: cFailed,
	EventExpired: cExpired, EventRejected: cRejected, EventCancelled: cCancelled}

// The latency histogram: bucket 0 holds calls under 0.1 ms, bucket i ≥ 1
// those from 0.1 ms × 2^((i-1)/8) to 0.1 ms × 2^(i/8) (each 9% wider than
// the one before), the last one everything from 28 minutes on. A
// percentile is the geometric middle of its bucket: within 4.5% of the
// true value.
const (
	latPerDoubling = 8
	latBuckets     = latPerDoubling*24 + 2
	latFloorMS     = 0.1
)

func latBucket(ms float64) int {
	if ms < latFloorMS {
		return 0
	}
	i := int(math.Floor(latPerDoubling*math.Log2(ms/latFloorMS))) + 1
	return min(max(i, 1), latBuckets-1)
}

func latValue(i int) float64 {
	if i == 0 {
		return latFloorMS / 2
	}
	v := latFloorMS * math.Exp2((float64(i-1)+0.5)/latPerDoubling)
	return math.Round(v*100) / 100
}

// dayOf names t's UTC day.
func dayOf(t time.Time) string { return t.UTC().Format("2006-01-02") }

// counterKey is the usage row of e: its day, conversation, service and
// usage key, NUL-separated.
func counterKey(e *api.LogEntry) string {
	return dayOf(e.Time) + "\x00" + e.Conversation + "\x00" + e.Service + "\x00" + keyOf(e)
}

// countsOf is what e adds to its usage row.
func countsOf(e *api.LogEntry) []uint64 {
	i, ok := eventCounter[e.Event]
	if !ok {
		return []uint64{}
	}
	if (e.Event == EventExecuted || e.Event == EventFailed) && e.DurationMS > 0 {
		add := make([]uint64, cLatency+latBucket(e.DurationMS)+1)
		add[i] = 1
		add[len(add)-1] = 1
		return add
	}
	add := make([]uint64, i+1)
	add[i] = 1
	return add
}

// Days returns the UTC days Usage counts for f's time bounds, first and
// last ("" where unbounded; last before first when none): usage is kept
// per day, so a bound counts the whole day it falls in.
func Days(f Filter) (first, last string) {
	if !f.Since.IsZero() {
		first = dayOf(maxTime(f.Since, Epoch))
	}
	if !f.Until.IsZero() {
		if !f.Until.After(Epoch) {
			return first, "1969-12-31"
		}
		last = dayOf(f.Until.Add(-time.Nanosecond))
	}
	return first, last
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Usage adds up the usage counters f selects by key, service or day.
// Latency is that of upstream calls (executed, and failed ones that
// reached the network), in milliseconds, from the counters' histogram. The
// time bounds count whole UTC days (Days).
func (l *Log) Usage(by string, f Filter) ([]api.UsageRow, error) {
	if by != ByKey && by != ByService && by != ByDay {
		return nil, twokey.Errorf(twokey.EBadPayload, "group by key, service or day, not %q", twokey.Clip(by))
	}
	first, last := Days(f)
	out := []api.UsageRow{}
	if (first != "" && last != "" && last < first) || (!f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until)) {
		return out, nil // an empty range
	}
	lo, hi := first, ""
	if last != "" {
		hi = last + "\x01" // after every row of the last day
	}
	type acc struct {
		counts []uint64
	}
	rows := map[string]*acc{}
	var scanErr error
	err := l.cfg.Store.Scan(store.Usage, lo, hi, false, func(k, v []byte) bool {
		parts := bytes.Split(k, []byte{0})
		if len(parts) != 4 {
			return true
		}
		day, conv, svc, key := string(parts[0]), string(parts[1]), string(parts[2]), string(parts[3])
		switch {
		case f.Service != "" && svc != f.Service,
			f.Conversation != "" && conv != f.Conversation,
			f.Key != "" && key != f.Key,
			f.Program != "" && key != "program:"+f.Program:
			return true
		}
		counts, err := store.Counters(v)
		if err != nil {
			scanErr = fmt.Errorf("usage row %q: %w", k, err)
			return false
		}
		g := key
		switch by {
		case ByService:
			g = svc
		case ByDay:
			g = day
		}
		a := rows[g]
		if a == nil {
			a = &acc{}
			rows[g] = a
		}
		if len(a.counts) < len(counts) {
			a.counts = append(a.counts, make([]uint64, len(counts)-len(a.counts))...)
		}
		for i, n := range counts {
			a.counts[i] += n
		}
		return true
	})
	if err == nil {
		err = scanErr
	}
	if err != nil {
		return nil, err
	}
	shown := func(event string) bool { return len(f.Events) == 0 || slices.Contains(f.Events, event) }
	for g, a := range rows {
		c := append(a.counts, make([]uint64, max(0, cLatency-len(a.counts)))...)
		u := api.UsageRow{Group: g}
		for event, i := range eventCounter {
			if !shown(event) {
				continue
			}
			n := int(c[i])
			switch i {
			case cSubmitted:
				u.Submitted = n
			case cExecuted:
				u.Executed = n
			case cFailed:
				u.Failed = n
			case cExpired:
				u.Expired = n
			case cRejected:
				u.Rejected = n
			case cCancelled:
				u.Cancelled = n
			}
		}
		if shown(EventExecuted) || shown(EventFailed) {
			hist := c[cLatency:]
			u.P50MS, u.P95MS = percentile(hist, 50), percentile(hist, 95)
		}
		if u != (api.UsageRow{Group: g}) {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

// percentile is the nearest-rank percentile of a latency histogram: the
// middle of the bucket the rank falls in (0 if empty).
func percentile(hist []uint64, p int) float64 {
	var n uint64
	for _, c := range hist {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := max((uint64(p)*n+99)/100, 1) // ceil(p/100 * n)
	var cum uint64
	for i, c := range hist {
		if cum += c; cum >= rank {
			return latValue(i)
		}
	}
	return latValue(len(hist) - 1)
}
