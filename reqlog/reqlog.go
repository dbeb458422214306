// Package reqlog keeps the durable request log and the usage it adds up
// to: one entry for every request submitted and one for every request
// closed (executed, failed, expired, rejected, cancelled), with time,
// conversation, template, service, method, URL (query values masked),
// status, duration, approvers and the submitter (a signer's key id, or a
// program's name and key prefix).
//
// It hears about requests as the engine's Observer. The engine calls the
// observer under a conversation's lock, so Log never writes there: it
// queues the entry and a writer commits queued entries in batches, through
// the store's group commit. Queries flush the queue first, so they see
// every entry observed before them. Entries older than the retention are
// pruned in the background. The conversation's own log stays the record of
// truth; this one is for operators (twokey logs, twokey usage).
package reqlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

// Events of an entry.
const (
	EventSubmitted = "submitted"
	EventExecuted  = "executed"
	EventFailed    = "failed"
	EventExpired   = "expired"
	EventRejected  = "rejected"
	EventCancelled = "cancelled"
)

// Entry is one line of the request log.
type Entry struct {
	Time         time.Time `json:"time"`
	Event        string    `json:"event"`
	Conversation string    `json:"conversation"`
	RequestID    string    `json:"request_id"`
	Template     string    `json:"template,omitempty"`
	Service      string    `json:"service"`
	Method       string    `json:"method"`
	URL          string    `json:"url"` // query values masked
	Status       int       `json:"status,omitempty"`
	DurationMS   float64   `json:"duration_ms,omitempty"`
	Approvers    []string  `json:"approvers,omitempty"`
	Submitter    string    `json:"submitter"` // a signer's key id, or the gateway's for a program
	Program      string    `json:"program,omitempty"`
	KeyPrefix    string    `json:"key_prefix,omitempty"` // the display prefix of the program key the request came with
	Reason       string    `json:"reason,omitempty"`
}

// Key is who a usage row counts: "program:NAME" or the signer's key id.
func (e *Entry) Key() string {
	if e.Program != "" {
		return "program:" + e.Program
	}
	return e.Submitter
}

// Config assembles a Log.
type Config struct {
	Store     *store.Store
	Clock     clock.Clock
	Logger    *slog.Logger
	Retention time.Duration // default 90 days
}

// Log is the durable request log. It implements engine.Observer.
type Log struct {
	cfg   Config
	queue chan any // *Entry, or a chan struct{} to close once flushed
	done  chan struct{}
	wg    sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	stopPrune func() bool
}

var _ engine.Observer = (*Log)(nil)

// New starts the log's writer and its pruner.
func New(cfg Config) *Log {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 90 * 24 * time.Hour
	}
	l := &Log{cfg: cfg, queue: make(chan any, 4096), done: make(chan struct{})}
	l.wg.Add(1)
	go l.writer()
	l.schedulePrune(time.Minute)
	return l
}

// PruneEvery is how often old entries are pruned.
const PruneEvery = time.Hour

func (l *Log) schedulePrune(after time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.stopPrune = l.cfg.Clock.AfterFunc(after, func() {
		if n, err := l.Prune(); err != nil {
			l.cfg.Logger.Warn("cannot prune the request log", "error", err.Error())
		} else if n > 0 {
			l.cfg.Logger.Info("pruned the request log", "entries", n, "retention", l.cfg.Retention.String())
		}
		l.schedulePrune(PruneEvery)
	})
}

// Close writes what is queued and stops. Entries observed afterwards are
// dropped (the engine is closed first).
func (l *Log) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	if l.stopPrune != nil {
		l.stopPrune()
	}
	l.mu.Unlock()
	close(l.done)
	l.wg.Wait()
}

func (l *Log) enqueue(v any) bool {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return false
	}
	select {
	case l.queue <- v:
		return true
	case <-l.done:
		return false
	}
}

// Flush returns once every entry observed before it is durable.
func (l *Log) Flush() {
	ch := make(chan struct{})
	if !l.enqueue(ch) {
		return
	}
	select {
	case <-ch:
	case <-l.done:
	}
}

func (l *Log) writer() {
	defer l.wg.Done()
	for {
		var first any
		select {
		case first = <-l.queue:
		case <-l.done:
			for {
				select {
				case v := <-l.queue:
					l.write([]any{v})
				default:
					return
				}
			}
		}
		batch := []any{first}
	fill:
		for len(batch) < 512 {
			select {
			case v := <-l.queue:
				batch = append(batch, v)
			default:
				break fill
			}
		}
		l.write(batch)
	}
}

func (l *Log) write(batch []any) {
	var puts []store.Put
	var waiters []chan struct{}
	for _, v := range batch {
		switch x := v.(type) {
		case *Entry:
			b, err := json.Marshal(x)
			if err != nil {
				continue
			}
			puts = append(puts, store.Put{Bucket: store.ReqLog, Key: entryKey(x), Value: b})
		case chan struct{}:
			waiters = append(waiters, x)
		}
	}
	if len(puts) > 0 {
		if err := l.cfg.Store.Commit(&store.Write{Puts: puts}); err != nil {
			l.cfg.Logger.Error("cannot write the request log", "entries", len(puts), "error", err.Error())
		}
	}
	for _, w := range waiters {
		close(w)
	}
}

// entryKey orders entries by time: nanoseconds in fixed-width hex, then
// the request and the event (so two events never share a key).
func entryKey(e *Entry) string {
	return fmt.Sprintf("%016x/%s/%s", uint64(e.Time.UnixNano()), e.RequestID, e.Event)
}

// MaskURL replaces every query value with ***, keeping the names: a part
// with a value becomes name=***, a part without one (?sk_live_abc, a bare
// token) becomes ***, since it may be the secret itself. A #fragment is
// dropped.
func MaskURL(raw string) string {
	raw, _, _ = strings.Cut(raw, "#")
	base, query, ok := strings.Cut(raw, "?")
	if !ok {
		return raw
	}
	parts := strings.Split(query, "&")
	for i, p := range parts {
		if name, _, has := strings.Cut(p, "="); has {
			parts[i] = name + "=***"
		} else if p != "" {
			parts[i] = "***"
		}
	}
	return base + "?" + strings.Join(parts, "&")
}

func (l *Log) entry(event, conv string, r *gate.Request) *Entry {
	e := &Entry{Time: l.cfg.Clock.Now().UTC(), Event: event, Conversation: conv, RequestID: r.ID,
		Template: r.Payload.Template, Service: r.Payload.Service, Method: r.Payload.Method,
		URL: MaskURL(r.Payload.URL), Submitter: r.Submitter, Program: r.Program, KeyPrefix: r.KeyPrefix}
	return e
}

// Submitted logs a new request.
func (l *Log) Submitted(conv string, r *gate.Request) {
	l.enqueue(l.entry(EventSubmitted, conv, r))
}

// Voted is not logged: votes are in the conversation's log.
func (l *Log) Voted(string, *gate.Request, bool) {}

// Closed logs a request that ended without a call (or was interrupted).
func (l *Log) Closed(conv string, r *gate.Request, state, reason string) {
	event := map[string]string{gate.StateExpired: EventExpired, gate.StateRejected: EventRejected,
		gate.StateCancelled: EventCancelled, gate.StateFailed: EventFailed}[state]
	if event == "" {
		return
	}
	e := l.entry(event, conv, r)
	e.Reason = reason
	l.enqueue(e)
}

// Executed logs a finished upstream call.
func (l *Log) Executed(ex engine.Execution) {
	event := EventExecuted
	if ex.Reason != "" {
		event = EventFailed
	}
	e := l.entry(event, ex.Conversation, ex.Request)
	if !ex.Time.IsZero() {
		e.Time = ex.Time.UTC()
	}
	e.Status = ex.Status
	e.DurationMS = float64(ex.Duration.Microseconds()) / 1000
	e.Reason = ex.Reason
	e.Approvers = slices.Clone(ex.Request.Approvals)
	l.enqueue(e)
}

// Prune deletes entries older than the retention and says how many.
func (l *Log) Prune() (int, error) {
	cutoff := entryKey(&Entry{Time: l.cfg.Clock.Now().Add(-l.cfg.Retention)})
	var old []store.Put
	errStop := errors.New("stop")
	err := l.cfg.Store.ForEach(store.ReqLog, func(k string, _ []byte) error {
		if k >= cutoff {
			return errStop
		}
		old = append(old, store.Put{Bucket: store.ReqLog, Key: k})
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, err
	}
	total := len(old)
	for len(old) > 0 {
		n := min(len(old), 10000)
		if err := l.cfg.Store.Commit(&store.Write{Puts: old[:n]}); err != nil {
			return total - len(old), err
		}
		old = old[n:]
	}
	return total, nil
}

// Filter selects entries.
type Filter struct {
	Since, Until time.Time // zero: unbounded
	Service      string
	Conversation string
	Key          string   // a usage key: "program:NAME" or a key id
	Program      string   // a program's name
	Events       []string // empty: all
	Limit        int      // newest first; 0: all
}

func (f *Filter) match(e *Entry) bool {
	switch {
	case !f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	case f.Service != "" && e.Service != f.Service:
		return false
	case f.Conversation != "" && e.Conversation != f.Conversation:
		return false
	case f.Key != "" && e.Key() != f.Key:
		return false
	case f.Program != "" && e.Program != f.Program:
		return false
	case len(f.Events) > 0 && !slices.Contains(f.Events, e.Event):
		return false
	}
	return true
}

// Entries returns the matching entries, newest first.
func (l *Log) Entries(f Filter) ([]Entry, error) {
	l.Flush()
	var from string
	if !f.Since.IsZero() {
		from = entryKey(&Entry{Time: f.Since})
	}
	var out []Entry
	err := l.cfg.Store.ForEach(store.ReqLog, func(k string, v []byte) error {
		if k < from {
			return nil
		}
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil // a damaged entry is skipped, not fatal
		}
		if f.match(&e) {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// Usage is one row of usage: counts and upstream latency of a group.
type Usage struct {
	Group     string  `json:"group"`
	Submitted int     `json:"submitted"`
	Executed  int     `json:"executed"`
	Failed    int     `json:"failed"`
	Expired   int     `json:"expired"`
	Rejected  int     `json:"rejected"`
	Cancelled int     `json:"cancelled"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
}

// Group names what Usage groups by.
const (
	ByKey     = "key"
	ByService = "service"
	ByDay     = "day"
)

// Usage adds up the entries f selects by key, service or day. Latency is
// that of upstream calls (executed, and failed ones that reached the
// network), in milliseconds.
func (l *Log) Usage(by string, f Filter) ([]Usage, error) {
	if by != ByKey && by != ByService && by != ByDay {
		return nil, fmt.Errorf("group by key, service or day, not %q", by)
	}
	f.Limit = 0
	entries, err := l.Entries(f)
	if err != nil {
		return nil, err
	}
	rows := map[string]*Usage{}
	lat := map[string][]float64{}
	for i := range entries {
		e := &entries[i]
		var g string
		switch by {
		case ByKey:
			g = e.Key()
		case ByService:
			g = e.Service
		case ByDay:
			g = e.Time.UTC().Format("2006-01-02")
		}
		u := rows[g]
		if u == nil {
			u = &Usage{Group: g}
			rows[g] = u
		}
		switch e.Event {
		case EventSubmitted:
			u.Submitted++
		case EventExecuted:
			u.Executed++
		case EventFailed:
			u.Failed++
		case EventExpired:
			u.Expired++
		case EventRejected:
			u.Rejected++
		case EventCancelled:
			u.Cancelled++
		}
		if (e.Event == EventExecuted || e.Event == EventFailed) && e.DurationMS > 0 {
			lat[g] = append(lat[g], e.DurationMS)
		}
	}
	out := make([]Usage, 0, len(rows))
	for _, u := range rows {
		l := lat[u.Group]
		sort.Float64s(l)
		u.P50MS, u.P95MS = percentile(l, 50), percentile(l, 95)
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

// percentile is the nearest-rank percentile of sorted values (0 if none).
func percentile(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}
