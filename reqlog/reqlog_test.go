package reqlog

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

func openStore(t testing.TB, dir string) store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, "twokey.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newLog(t testing.TB, cfg Config) *Log {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func req(id, service, program string) *gate.Request {
	return &gate.Request{ID: id, Conversation: "c1", Submitter: "alice-key", Program: program,
		Payload: gate.RequestPayload{Service: service, Method: "GET", Template: service + ".t",
			URL: "http://up/" + service + "?token=s3cr3t&q=dogs"}, Approvals: []string{"alice-key", "bob-key"}}
}

// commitEvents writes the puts of evs in one commit, as the engine does.
func commitEvents(t testing.TB, st store.Store, l *Log, evs ...engine.Event) {
	t.Helper()
	var puts []store.Put
	for _, ev := range evs {
		if ev.Conversation == "" {
			ev.Conversation = "c1"
		}
		puts = append(puts, l.Puts(ev)...)
	}
	if err := st.Commit(&store.Write{Puts: puts}); err != nil {
		t.Fatal(err)
	}
}

func submitted(at time.Time, r *gate.Request) engine.Event {
	return engine.Event{Kind: engine.EventSubmitted, Time: at, Request: r}
}

func executed(at time.Time, r *gate.Request, status int, d time.Duration, reason string) engine.Event {
	return engine.Event{Kind: engine.EventExecuted, Time: at, Request: r, Status: status, Duration: d, Reason: reason}
}

func query(t testing.TB, l *Log, f Filter) []api.LogEntry {
	t.Helper()
	p, err := l.Query(f)
	if err != nil {
		t.Fatal(err)
	}
	return p.Entries
}

func TestMaskURL(t *testing.T) {
	cases := map[string]string{
		"http://h/p":                    "http://h/p",
		"http://h/p?a=1&b=two&c":        "http://h/p?a=***&b=***&***",
		"http://h/p?api_key=s3cr3t%20x": "http://h/p?api_key=***",
		"http://h/p?":                   "http://h/p?",
		"http://h/p?sk_live_abc":        "http://h/p?***",
		"http://h/p?a=1&TOKEN":          "http://h/p?a=***&***",
		"http://h/p?a=1&&b=":            "http://h/p?a=***&&b=***",
		"http://h/p?a=1#frag=secret":    "http://h/p?a=***",
		"http://h/p#tok":                "http://h/p",
		"http://h/p#x?y=secret":         "http://h/p",
	}
	for in, want := range cases {
		if got := MaskURL(in); got != want {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"http://h/p?sk_live_abc", "http://h/p?a=1&TOKEN", "http://h/p#TOKEN"} {
		if got := MaskURL(in); strings.Contains(got, "sk_live_abc") || strings.Contains(got, "TOKEN") {
			t.Errorf("MaskURL(%q) = %q keeps the secret", in, got)
		}
	}
}

// near reports whether got is within 5% of want (the histogram's error).
func near(got, want float64) bool { return math.Abs(got-want) <= 0.05*want }

// TestLogAndUsageSurviveRestart logs a day of activity, reopens the store
// and checks the entries and the usage computed from them.
func TestLogAndUsageSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	clk := clock.NewFake(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	l := newLog(t, Config{Store: st, Clock: clk})
	for i := 0; i < 10; i++ {
		svc := "httpbin"
		prog := ""
		if i%2 == 1 {
			svc, prog = "dogceo", "agent"
		}
		r := req(fmt.Sprintf("r%02d", i), svc, prog)
		if prog != "" {
			r.KeyPrefix = "tk_age"
		}
		commitEvents(t, st, l, submitted(clk.Now(), r))
		clk.Advance(time.Minute)
		switch i {
		case 8:
			commitEvents(t, st, l, engine.Event{Kind: engine.EventClosed, Time: clk.Now(), Request: r, State: gate.StateExpired, Reason: gate.ReasonExpired})
		case 9:
			commitEvents(t, st, l, executed(clk.Now(), r, 0, 5*time.Second, gate.ReasonTimeout))
		default:
			commitEvents(t, st, l, executed(clk.Now(), r, 200, time.Duration(i+1)*10*time.Millisecond, ""))
		}
	}
	l.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, dir)
	defer st.Close()
	l = newLog(t, Config{Store: st, Clock: clk})
	defer l.Close()
	all := query(t, l, Filter{Limit: MaxLimit})
	if len(all) != 20 {
		t.Fatalf("%d entries after restart, want 20", len(all))
	}
	if all[0].RequestID != "r09" || all[0].Event != EventFailed || all[0].Reason != gate.ReasonTimeout {
		t.Fatalf("newest first: %+v", all[0])
	}
	for _, e := range all {
		if strings.Contains(e.URL, "s3cr3t") || strings.Contains(e.URL, "dogs") {
			t.Fatalf("query value in the log: %s", e.URL)
		}
		if e.Program == "agent" && e.KeyPrefix != "tk_age" {
			t.Fatalf("program entry without its key prefix: %+v", e)
		}
	}
	ex := query(t, l, Filter{Service: "httpbin", Events: []string{EventExecuted}})
	if len(ex) != 4 || ex[0].Status != 200 || len(ex[0].Approvers) != 2 || ex[0].DurationMS != 70 {
		t.Fatalf("httpbin executions: %+v", ex)
	}
	if recent := query(t, l, Filter{Since: clk.Now().Add(-150 * time.Second)}); len(recent) != 5 {
		t.Fatalf("since: %d", len(recent))
	}

	byKey, err := l.Usage(ByKey, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]api.UsageRow{
		"alice-key":     {Submitted: 5, Executed: 4, Expired: 1, P50MS: 30, P95MS: 70},
		"program:agent": {Submitted: 5, Executed: 4, Failed: 1, P50MS: 60, P95MS: 5000},
	}
	if len(byKey) != 2 {
		t.Fatalf("by key: %+v", byKey)
	}
	for _, u := range byKey {
		w := want[u.Group]
		w.Group = u.Group
		if !near(u.P50MS, w.P50MS) || !near(u.P95MS, w.P95MS) {
			t.Errorf("usage %s percentiles %v, %v, want within 5%% of %v, %v", u.Group, u.P50MS, u.P95MS, w.P50MS, w.P95MS)
		}
		u.P50MS, u.P95MS, w.P50MS, w.P95MS = 0, 0, 0, 0
		if u != w {
			t.Errorf("usage %s = %+v, want %+v", u.Group, u, w)
		}
	}
	bySvc, _ := l.Usage(ByService, Filter{})
	if len(bySvc) != 2 || bySvc[0].Group != "dogceo" || bySvc[1].Group != "httpbin" {
		t.Fatalf("by service: %+v", bySvc)
	}
	byDay, _ := l.Usage(ByDay, Filter{})
	if len(byDay) != 1 || byDay[0].Group != "2026-11-22" || byDay[0].Submitted != 10 {
		t.Fatalf("by day: %+v", byDay)
	}
	onlyExec, _ := l.Usage(ByKey, Filter{Program: "agent", Events: []string{EventExecuted}})
	if len(onlyExec) != 1 || onlyExec[0].Executed != 4 || onlyExec[0].Submitted != 0 {
		t.Fatalf("program agent, executed only: %+v", onlyExec)
	}
	if _, err := l.Usage("month", Filter{}); err == nil {
		t.Fatal("bad grouping accepted")
	}
}

// TestPrune: entries older than the retention go, in the background, on
// the injected clock, and so do the usage counters of the days wholly
// before it.
func TestPrune(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := newLog(t, Config{Store: st, Clock: clk, Retention: 48 * time.Hour})
	defer l.Close()
	for d := 0; d < 5; d++ {
		commitEvents(t, st, l, submitted(clk.Now(), req(fmt.Sprintf("day%d", d), "httpbin", "")))
		clk.Advance(24*time.Hour - time.Minute) // the pruner runs along the way
	}
	// Now 5 January 23:55; the last run (23:01) cut at 3 January 23:01.
	left := query(t, l, Filter{})
	if len(left) != 2 || left[1].RequestID != "day3" {
		t.Fatalf("left after pruning: %+v", left)
	}
	if n, err := l.Prune(); err != nil || n != 0 {
		t.Fatalf("prune again: %d %v", n, err)
	}
	// Counters go by whole days: 3 January is only partly before the cut.
	days, _ := l.Usage(ByDay, Filter{})
	if len(days) != 2 || days[0].Group != "2026-01-03" {
		t.Fatalf("usage days after pruning: %+v", days)
	}
}

// TestLatencyHistogram: every bucket's value is within 4.5% of the
// durations it holds, and the percentiles are nearest-rank.
func TestLatencyHistogram(t *testing.T) {
	for ms := 0.1; ms < 1.6e6; ms *= 1.013 {
		if v := latValue(latBucket(ms)); math.Abs(v-ms) > 0.045*ms+0.006 {
			t.Fatalf("%.3f ms is shown as %.3f", ms, v)
		}
	}
	if latBucket(0.01) != 0 || latBucket(1e12) != latBuckets-1 {
		t.Fatal("out-of-range durations")
	}
	hist := make([]uint64, latBuckets)
	for i := 1; i <= 10; i++ {
		hist[latBucket(float64(i))]++
	}
	if p := percentile(hist, 50); !near(p, 5) {
		t.Fatalf("p50 %v", p)
	}
	if p := percentile(hist, 95); !near(p, 10) {
		t.Fatalf("p95 %v", p)
	}
	if percentile(nil, 50) != 0 {
		t.Fatal("empty")
	}
}

// fill commits n submitted entries, one a second from start, oldest
// first; every every-th one is of service "rare", the others "httpbin".
func fill(t testing.TB, st store.Store, l *Log, start time.Time, n, every int) {
	t.Helper()
	var puts []store.Put
	for i := 0; i < n; i++ {
		svc := "httpbin"
		if every > 0 && i%every == 0 {
			svc = "rare"
		}
		puts = append(puts, l.Puts(engine.Event{Kind: engine.EventSubmitted, Time: start.Add(time.Duration(i) * time.Second),
			Conversation: "c1", Request: req(fmt.Sprintf("r%07d", i), svc, "")})...)
		if len(puts) >= 20000 || i == n-1 {
			if err := st.Commit(&store.Write{Puts: puts}); err != nil {
				t.Fatal(err)
			}
			puts = puts[:0]
		}
	}
}

// TestQueryPages: a query answers one bounded page, newest first, with a
// cursor that the next page follows, none missed and none twice; limit 0
// is the default page, and pages larger than MaxLimit or a forged cursor
// are refused.
func TestQueryPages(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	l := newLog(t, Config{Store: st, Clock: clock.NewFake(start)})
	defer l.Close()
	fill(t, st, l, start, 250, 0)

	seen := map[string]bool{}
	var pages []int
	f := Filter{Limit: 100}
	for {
		p, err := l.Query(f)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(p.Entries))
		for i, e := range p.Entries {
			if seen[e.RequestID] {
				t.Fatalf("%s twice", e.RequestID)
			}
			seen[e.RequestID] = true
			if i > 0 && e.Time.After(p.Entries[i-1].Time) {
				t.Fatal("not newest first")
			}
		}
		if p.Next == "" {
			break
		}
		f.Cursor = p.Next
	}
	if len(seen) != 250 || fmt.Sprint(pages) != "[100 100 50]" {
		t.Fatalf("pages %v, %d entries", pages, len(seen))
	}
	if p, _ := l.Query(Filter{}); len(p.Entries) != DefaultLimit || p.Entries[0].RequestID != "r0000249" || p.Next == "" {
		t.Fatalf("default page: %d entries, first %s", len(p.Entries), p.Entries[0].RequestID)
	}
	// A page that ends exactly at the last entry says there is no more.
	if p, _ := l.Query(Filter{Limit: 50, Until: start.Add(50 * time.Second)}); len(p.Entries) != 50 || p.Next != "" {
		t.Fatalf("last page: %d entries, next %q", len(p.Entries), p.Next)
	}
	for _, bad := range []Filter{{Limit: MaxLimit + 1}, {Limit: -1}, {Cursor: "not a cursor"}, {Cursor: "c2VjcmV0"}} {
		if _, err := l.Query(bad); twokey.ErrorCode(err) != twokey.EBadPayload {
			t.Errorf("%+v: %v, want bad_payload", bad, err)
		}
	}
}

// TestQueryScanIsBounded: a filter that matches little examines at most
// ScanBudget entries a page and hands back a cursor; following it finds
// every match.
func TestQueryScanIsBounded(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	l := newLog(t, Config{Store: st, Clock: clock.NewFake(start)})
	defer l.Close()
	n := ScanBudget*2 + 10
	fill(t, st, l, start, n, ScanBudget+1) // rare at 0, ScanBudget+1, 2*ScanBudget+2
	f := Filter{Service: "rare", Limit: 10}
	var got []string
	calls := 0
	for {
		p, err := l.Query(f)
		if err != nil {
			t.Fatal(err)
		}
		calls++
		for _, e := range p.Entries {
			got = append(got, e.RequestID)
		}
		if p.Next == "" {
			break
		}
		f.Cursor = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprintf("[r%07d r%07d r%07d]", 2*ScanBudget+2, ScanBudget+1, 0) || calls != 3 {
		t.Fatalf("rare entries %v in %d pages", got, calls)
	}
}

// TestEntryFieldsAreBounded: a huge URL (or any client-chosen text) is cut
// at MaxFieldBytes with a marker, at a character boundary.
func TestEntryFieldsAreBounded(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	l := newLog(t, Config{Store: st})
	defer l.Close()
	r := req("big", "httpbin", "")
	r.Payload.URL = "http://up/httpbin/" + strings.Repeat("é", 15000) + "?token=s3cr3t"
	r.Payload.Template = strings.Repeat("t", 5000)
	commitEvents(t, st, l, submitted(time.Now(), r))
	var size int
	_ = st.ForEach(store.ReqLog, func(_ string, v []byte) error { size += len(v); return nil })
	e := query(t, l, Filter{})[0]
	for _, s := range []string{e.URL, e.Template} {
		if len(s) > MaxFieldBytes+32 || !strings.Contains(s, "bytes cut]") || !utf8.ValidString(s) {
			t.Fatalf("field of %d bytes kept: %.80q...", len(s), s)
		}
	}
	if strings.Contains(e.URL, "s3cr3t") || size > 3*MaxFieldBytes {
		t.Fatalf("entry of %d bytes: %.100s", size, e.URL)
	}
	if Cut("short") != "short" {
		t.Fatal("a short field was changed")
	}
}

// TestTimeBounds: bounds at and around the edges. A time before 1970
// counts as 1970 (it once wrapped around to the far future), only an
// absent bound is unbounded (the zero time, year 1, once meant "none"),
// a bound past 2262 (the end of int64 nanoseconds) is past every entry,
// and a bound after year 9999 is refused.
func TestTimeBounds(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := newLog(t, Config{Store: st, Clock: clock.NewFake(now)})
	defer l.Close()
	fill(t, st, l, now, 3, 0) // 12:00:00, :01, :02
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Bound("t", tm)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name         string
		since, until time.Time
		want         int
	}{
		{"unbounded", time.Time{}, time.Time{}, 3},
		{"since a second before the epoch", at("1969-12-31T23:59:59Z"), time.Time{}, 3},
		{"since the epoch", at("1970-01-01T00:00:00Z"), time.Time{}, 3},
		{"since year 1", at("0001-01-01T00:00:00Z"), time.Time{}, 3},
		{"since 1969, raw", time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), time.Time{}, 3},
		{"until year 1", time.Time{}, at("0001-01-01T00:00:00Z"), 0},
		{"until year 1 and a second", time.Time{}, at("0001-01-01T00:00:01Z"), 0},
		{"until the epoch", time.Time{}, at("1970-01-01T00:00:00Z"), 0},
		{"until the epoch and a nanosecond", time.Time{}, at("1970-01-01T00:00:00.000000001Z"), 0},
		{"until 2300", time.Time{}, at("2300-01-01T00:00:00Z"), 3},
		{"until 9999", time.Time{}, at("9999-12-31T23:59:59Z"), 3},
		{"since 2300", at("2300-01-01T00:00:00Z"), time.Time{}, 0},
		{"since the second entry", at("2026-03-01T12:00:01Z"), time.Time{}, 2},
		{"until the second entry", time.Time{}, at("2026-03-01T12:00:01Z"), 1},
		{"since after until", at("2026-03-01T12:00:02Z"), at("2026-03-01T12:00:01Z"), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := query(t, l, Filter{Since: c.since, Until: c.until}); len(got) != c.want {
				t.Fatalf("%d entries, want %d", len(got), c.want)
			}
			rows, err := l.Usage(ByDay, Filter{Since: c.since, Until: c.until})
			if err != nil {
				t.Fatal(err)
			}
			// Usage counts whole days: a bound inside 1 March counts it all.
			want := 0
			if c.want > 0 {
				want = 3
			}
			if got := 0; len(rows) > 0 {
				got = rows[0].Submitted
				if got != want {
					t.Fatalf("usage %+v, want %d submitted", rows, want)
				}
			} else if want != 0 {
				t.Fatalf("no usage, want %d submitted", want)
			}
		})
	}
	for _, s := range []string{"9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59.999999999-00:01"} {
		tm, _ := time.Parse(time.RFC3339Nano, s)
		if _, err := Bound("until", tm); twokey.ErrorCode(err) != twokey.EBadPayload || !strings.Contains(err.Error(), "9999") {
			t.Errorf("Bound(%s) = %v, want refused", s, err)
		}
	}
}

// TestUsageFromCounters: usage is the durable counters, not a scan of the
// entries: it holds with the entries gone, and counts written by many
// concurrent commits (the store's group commit) add up exactly.
func TestUsageFromCounters(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	now := time.Date(2026, 5, 5, 5, 5, 0, 0, time.UTC)
	l := newLog(t, Config{Store: st, Clock: clock.NewFake(now)})
	defer l.Close()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				r := req(fmt.Sprintf("w%d-%d", w, i), "httpbin", "")
				commitEvents(t, st, l, submitted(now, r), executed(now, r, 200, 20*time.Millisecond, ""))
			}
		})
	}
	wg.Wait()
	// The entries go; the counters stay.
	var del []store.Put
	_ = st.ForEach(store.ReqLog, func(k string, _ []byte) error {
		del = append(del, store.Put{Bucket: store.ReqLog, Key: k})
		return nil
	})
	if err := st.Commit(&store.Write{Puts: del}); err != nil {
		t.Fatal(err)
	}
	rows, err := l.Usage(ByService, Filter{Since: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Submitted != 400 || rows[0].Executed != 400 || !near(rows[0].P95MS, 20) {
		t.Fatalf("usage from the counters: %+v", rows)
	}
}

// TestCountOldEntries: a log written before usage had counters is counted
// once at start, and a start interrupted half-way resumes where it was.
func TestCountOldEntries(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	// Entries as the old log wrote them: no counters, no mark.
	var puts []store.Put
	for i := 0; i < countChunk+7; i++ {
		e := &api.LogEntry{Time: now.Add(time.Duration(i) * time.Millisecond), Event: EventSubmitted, Conversation: "c1",
			RequestID: fmt.Sprintf("old%05d", i), Service: "httpbin", Submitter: "alice-key"}
		b, _ := json.Marshal(e)
		puts = append(puts, store.Put{Bucket: store.ReqLog, Key: entryKey(e), Value: b})
	}
	if err := st.Commit(&store.Write{Puts: puts}); err != nil {
		t.Fatal(err)
	}
	// A start that counted the first chunk and died: its mark is there.
	if err := st.Commit(&store.Write{Puts: []store.Put{
		{Bucket: store.Meta, Key: metaCounted, Value: []byte(puts[countChunk-1].Key)},
		{Bucket: store.Usage, Key: dayOf(now) + "\x00c1\x00httpbin\x00alice-key", Add: []uint64{countChunk}},
	}}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second start counts nothing again
		l := newLog(t, Config{Store: st, Clock: clock.NewFake(now)})
		rows, err := l.Usage(ByKey, Filter{})
		l.Close()
		if err != nil || len(rows) != 1 || rows[0].Submitted != countChunk+7 {
			t.Fatalf("usage of the old entries: %+v %v", rows, err)
		}
	}
	st.Close()
}
