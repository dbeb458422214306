// Package reqlog keeps the durable request log and the usage it adds up
// to: one entry for every request submitted and one for every request
// closed (executed, failed, expired, rejected, cancelled), with time,
// conversation, template, service, method, URL (query values masked),
// status, duration, approvers and the submitter (a signer's key id, or a
// program's name and key prefix).
//
// Writing. Log is the engine's Recorder: for each event it returns the
// entry and an add to the day's usage counters as store puts, and the
// engine writes them in the commit that makes the event happen. An entry
// is durable exactly when the record that causes it is: after a crash the
// request log and the conversations agree. Every text field of an entry
// is cut at MaxFieldBytes.
//
// Reading. Query reads one page, newest first, from the key range its time
// bounds give, applying the other filters as it goes; it stops at the
// page's limit (at most MaxLimit) or after examining ScanBudget entries,
// and hands back a cursor for the next page. Its cost depends on the page,
// never on the size of the log. Usage sums the per-day counters (counts,
// and a histogram of upstream latency for the percentiles) and reads no
// entry. Entries and counters older than the retention are pruned in the
// background. The conversation's own log stays the record of truth; this
// one is for operators (twokey calls, twokey usage).
package reqlog

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
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

// Limits of the log.
const (
	// MaxFieldBytes bounds every text field of an entry (the URL, the
	// template, names, reasons): a longer one is cut, at a character
	// boundary, and ends with a marker saying how much was cut.
	MaxFieldBytes = 2 << 10
	// DefaultLimit is a page's size when the query names none.
	DefaultLimit = 100
	// MaxLimit is the most entries one page holds.
	MaxLimit = api.MaxLogPage
	// ScanBudget is the most entries one page examines: a page whose
	// filters match little ends early, with a cursor to go on from.
	ScanBudget = 10000
)

// An entry is an api.LogEntry: the log stores it as the management API
// answers it.

// keyOf is who a usage row counts: "program:NAME" or the signer's key id.
func keyOf(e *api.LogEntry) string {
	if e.Program != "" {
		return "program:" + e.Program
	}
	return e.Submitter
}

// Config assembles a Log.
type Config struct {
	Store     store.Store
	Clock     clock.Clock
	Logger    *slog.Logger
	Retention time.Duration // default 90 days
}

// Log is the durable request log. It is the engine's Recorder (and an
// Observer that does nothing after the commit: the entries are already in
// it).
type Log struct {
	cfg Config

	mu        sync.Mutex
	closed    bool
	stopPrune func() bool
}

var (
	_ engine.Observer = (*Log)(nil)
	_ engine.Recorder = (*Log)(nil)
)

// New opens the log on its store and starts its pruner. A log written
// before usage had counters gets them first, from its entries (once, a
// chunk per commit, resumed after a crash).
func New(cfg Config) (*Log, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 90 * 24 * time.Hour
	}
	l := &Log{cfg: cfg}
	if err := l.countOldEntries(); err != nil {
		return nil, fmt.Errorf("request log: cannot add up the usage of its entries: %w", err)
	}
	l.schedulePrune(time.Minute)
	return l, nil
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

// Close stops the pruner. Nothing is queued: every entry was written with
// its commit.
func (l *Log) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	if l.stopPrune != nil {
		l.stopPrune()
	}
}

// Submitted does nothing: the entry was written by Puts.
func (l *Log) Submitted(string, *gate.Request) {}

// Voted does nothing: votes are in the conversation's log.
func (l *Log) Voted(string, *gate.Request, bool) {}

// Closed does nothing: the entry was written by Puts.
func (l *Log) Closed(string, *gate.Request, string, string) {}

// Executed does nothing: the entry was written by Puts.
func (l *Log) Executed(engine.Execution) {}

var closedEvents = map[string]string{gate.StateExpired: EventExpired, gate.StateRejected: EventRejected,
	gate.StateCancelled: EventCancelled, gate.StateFailed: EventFailed}

// Puts returns the entry of ev and its add to the day's usage counters,
// for the engine to write in the commit that makes ev happen.
func (l *Log) Puts(ev engine.Event) []store.Put {
	e := entryOf(ev)
	if e == nil {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil
	}
	return []store.Put{
		{Bucket: store.ReqLog, Key: entryKey(e), Value: b},
		{Bucket: store.Usage, Key: counterKey(e), Add: countsOf(e)},
	}
}

// entryOf is the entry of ev, or nil for an event the log does not keep.
func entryOf(ev engine.Event) *api.LogEntry {
	r := ev.Request
	if r == nil {
		return nil
	}
	var event string
	switch ev.Kind {
	case engine.EventSubmitted:
		event = EventSubmitted
	case engine.EventClosed:
		event = closedEvents[ev.State]
	case engine.EventExecuted:
		event = EventExecuted
		if ev.Reason != "" {
			event = EventFailed
		}
	}
	if event == "" {
		return nil
	}
	e := &api.LogEntry{Time: ev.Time.UTC(), Event: event, Conversation: ev.Conversation, RequestID: r.ID,
		Template: r.Payload.Template, Service: r.Payload.Service, Method: r.Payload.Method,
		URL: MaskURL(r.Payload.URL), Submitter: r.Submitter, Program: r.Program, KeyPrefix: r.KeyPrefix, Reason: ev.Reason}
	if ev.Kind == engine.EventExecuted {
		e.Status = ev.Status
		e.DurationMS = float64(ev.Duration.Microseconds()) / 1000
		e.Approvers = slices.Clone(r.Approvals)
	}
	cutFields(e)
	return e
}

// cutFields cuts every text field at MaxFieldBytes.
func cutFields(e *api.LogEntry) {
	for _, s := range []*string{&e.Event, &e.Conversation, &e.RequestID, &e.Template, &e.Service, &e.Method,
		&e.URL, &e.Submitter, &e.Program, &e.KeyPrefix, &e.Reason} {
		*s = Cut(*s)
	}
	for i := range e.Approvers {
		e.Approvers[i] = Cut(e.Approvers[i])
	}
}

// Cut returns s if it fits in MaxFieldBytes, else its first MaxFieldBytes
// at most (cut at a character boundary) and a marker "[... N bytes cut]".
func Cut(s string) string {
	if len(s) <= MaxFieldBytes {
		return s
	}
	n := MaxFieldBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s[... %d bytes cut]", s[:n], len(s)-n)
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

// Time bounds.

// Epoch is the earliest instant the log can name: entry keys count
// nanoseconds from it. A bound before it counts as it.
var Epoch = time.Unix(0, 0).UTC()

// lastKeyTime is the latest instant a key's nanoseconds can hold (2262);
// a bound after it is past every entry.
var lastKeyTime = time.Unix(0, math.MaxInt64).UTC()

// MaxBound is the latest time bound a query may give.
var MaxBound = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)

// Bound checks a time given as a query bound: a time before Epoch counts
// as Epoch, and one after year 9999 is refused (bad_payload).
func Bound(name string, t time.Time) (time.Time, error) {
	if t.After(MaxBound) {
		return time.Time{}, twokey.Errorf(twokey.EBadPayload, "%s=%s is after year 9999; give a time up to 9999-12-31T23:59:59Z", name, t.UTC().Format(time.RFC3339))
	}
	if t.Before(Epoch) {
		return Epoch, nil
	}
	return t.UTC(), nil
}

// timeKey is the fixed-width hex nanoseconds since Epoch that entry keys
// start with, clamped to what the key can hold.
func timeKey(t time.Time) string {
	switch {
	case t.Before(Epoch):
		return fmt.Sprintf("%016x", 0)
	case t.After(lastKeyTime):
		return "ffffffffffffffff"
	}
	return fmt.Sprintf("%016x", uint64(t.UnixNano()))
}

// entryKey orders entries by time: nanoseconds in fixed-width hex, then
// the request and the event (so two events never share a key).
func entryKey(e *api.LogEntry) string {
	return timeKey(e.Time) + "/" + e.RequestID + "/" + e.Event
}

// Queries.

// Filter selects entries.
type Filter struct {
	// Since and Until bound the time: Since is inclusive, Until exclusive;
	// zero is unbounded (so a bound that was given must come through
	// Bound, which never returns zero).
	Since, Until time.Time
	Service      string
	Conversation string
	Key          string   // a usage key: "program:NAME" or a key id
	Program      string   // a program's name
	Events       []string // empty: all
	// Limit is the most entries of the page: 1 to MaxLimit, 0 for
	// DefaultLimit. Usage ignores it.
	Limit int
	// Cursor is a page's Next: the page goes on from there. Usage
	// ignores it.
	Cursor string
}

func (f *Filter) match(e *api.LogEntry) bool {
	switch {
	case !f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	case f.Service != "" && e.Service != f.Service:
		return false
	case f.Conversation != "" && e.Conversation != f.Conversation:
		return false
	case f.Key != "" && keyOf(e) != f.Key:
		return false
	case f.Program != "" && e.Program != f.Program:
		return false
	case len(f.Events) > 0 && !slices.Contains(f.Events, e.Event):
		return false
	}
	return true
}

// Query returns one page of the entries f selects, newest first.
func (l *Log) Query(f Filter) (api.LogPage, error) {
	limit := f.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 0 || limit > MaxLimit {
		return api.LogPage{}, twokey.Errorf(twokey.EBadPayload, "limit %d: a page holds 1 to %d entries; follow its next cursor for more", f.Limit, MaxLimit)
	}
	var lo, hi string
	if !f.Since.IsZero() {
		lo = timeKey(f.Since)
	}
	if !f.Until.IsZero() {
		hi = timeKey(f.Until)
	}
	if f.Cursor != "" {
		k, err := decodeCursor(f.Cursor)
		if err != nil {
			return api.LogPage{}, err
		}
		if hi == "" || k < hi {
			hi = k
		}
	}
	page := api.LogPage{Entries: []api.LogEntry{}}
	if hi != "" && hi <= lo {
		return page, nil
	}
	var last []byte
	examined := 0
	err := l.cfg.Store.Scan(store.ReqLog, lo, hi, true, func(k, v []byte) bool {
		if len(page.Entries) == limit || examined == ScanBudget {
			page.Next = base64.RawURLEncoding.EncodeToString(last)
			return false
		}
		examined++
		last = append(last[:0], k...)
		var e api.LogEntry
		if json.Unmarshal(v, &e) != nil {
			return true // a damaged entry is skipped, not fatal
		}
		if f.match(&e) {
			page.Entries = append(page.Entries, e)
		}
		return true
	})
	if err != nil {
		return api.LogPage{}, err
	}
	return page, nil
}

// decodeCursor returns the key a cursor stands for.
func decodeCursor(c string) (string, error) {
	k, err := base64.RawURLEncoding.DecodeString(c)
	bad := len(k) < 17 || k[16] != '/'
	for i := 0; !bad && i < 16; i++ {
		bad = !strings.ContainsRune("0123456789abcdef", rune(k[i]))
	}
	if err != nil || bad {
		return "", twokey.Errorf(twokey.EBadPayload, "cursor %q is not one this server gave; use the next of the page before", twokey.Clip(c))
	}
	return string(k), nil
}

// Retention.

// pruneBatch is how many keys one prune commit deletes.
const pruneBatch = 10000

// Prune deletes entries older than the retention, and the usage counters
// of the days wholly before it, and says how many entries went.
func (l *Log) Prune() (int, error) {
	cutoff := l.cfg.Clock.Now().Add(-l.cfg.Retention)
	n, err := l.deleteBelow(store.ReqLog, timeKey(cutoff))
	if err != nil {
		return n, err
	}
	_, err = l.deleteBelow(store.Usage, dayOf(cutoff))
	return n, err
}

// deleteBelow deletes the keys of bucket before hi, a batch per commit.
func (l *Log) deleteBelow(bucket, hi string) (int, error) {
	total := 0
	for {
		var old []store.Put
		err := l.cfg.Store.Scan(bucket, "", hi, false, func(k, _ []byte) bool {
			old = append(old, store.Put{Bucket: bucket, Key: string(k)})
			return len(old) < pruneBatch
		})
		if err != nil || len(old) == 0 {
			return total, err
		}
		if err := l.cfg.Store.Commit(&store.Write{Puts: old}); err != nil {
			return total, err
		}
		total += len(old)
		if len(old) < pruneBatch {
			return total, nil
		}
	}
}

// metaCounted is the Meta key that says how far the entries of a log
// written before the usage counters have been counted: "done", or the last
// entry key counted.
const metaCounted = "reqlog_counted"

// countChunk is how many old entries one commit counts.
const countChunk = 5000

// countOldEntries adds up, into the usage counters, the entries written
// before there were counters. Each chunk's counters commit with the mark of
// how far it got, so a crash resumes without counting an entry twice.
func (l *Log) countOldEntries() error {
	mark, err := l.cfg.Store.Get(store.Meta, metaCounted)
	if err != nil || string(mark) == "done" {
		return err
	}
	from := ""
	if mark != nil {
		from = string(mark) + "\x00" // the first key after it
	}
	total := 0
	for {
		adds := map[string][]uint64{}
		var lastKey string
		n := 0
		err := l.cfg.Store.Scan(store.ReqLog, from, "", false, func(k, v []byte) bool {
			if n == countChunk {
				return false
			}
			n++
			lastKey = string(k)
			var e api.LogEntry
			if json.Unmarshal(v, &e) != nil {
				return true
			}
			cutFields(&e)
			ck, add := counterKey(&e), countsOf(&e)
			row := adds[ck]
			if len(row) < len(add) {
				row = append(row, make([]uint64, len(add)-len(row))...)
			}
			for i, x := range add {
				row[i] += x
			}
			adds[ck] = row
			return true
		})
		if err != nil {
			return err
		}
		puts := make([]store.Put, 0, len(adds)+1)
		for k, add := range adds {
			puts = append(puts, store.Put{Bucket: store.Usage, Key: k, Add: add})
		}
		done := n < countChunk
		next := []byte(lastKey)
		if done {
			next = []byte("done")
		}
		puts = append(puts, store.Put{Bucket: store.Meta, Key: metaCounted, Value: next})
		if err := l.cfg.Store.Commit(&store.Write{Puts: puts}); err != nil {
			return err
		}
		total += n
		if done {
			if total > 0 {
				l.cfg.Logger.Info("request log: usage counters added up from existing entries", "entries", total)
			}
			return nil
		}
		from = lastKey + "\x00"
	}
}
