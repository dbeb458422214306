package reqlog

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, "twokey.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func req(id, service, program string) *gate.Request {
	return &gate.Request{ID: id, Conversation: "c1", Submitter: "alice-key", Program: program,
		Payload: gate.RequestPayload{Service: service, Method: "GET", Template: service + ".t",
			URL: "http://up/" + service + "?token=s3cr3t&q=dogs"}, Approvals: []string{"alice-key", "bob-key"}}
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

// TestLogAndUsageSurviveRestart logs a day of activity, reopens the store
// and checks the entries and the usage computed from them.
func TestLogAndUsageSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	clk := clock.NewFake(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	l := New(Config{Store: st, Clock: clk})
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
		l.Submitted("c1", r)
		clk.Advance(time.Minute)
		switch i {
		case 8:
			l.Closed("c1", r, gate.StateExpired, gate.ReasonExpired)
		case 9:
			l.Executed(engine.Execution{Time: clk.Now(), Conversation: "c1", Request: r, Service: svc, Duration: 5 * time.Second, Reason: gate.ReasonTimeout})
		default:
			l.Executed(engine.Execution{Time: clk.Now(), Conversation: "c1", Request: r, Service: svc, Status: 200, Duration: time.Duration(i+1) * 10 * time.Millisecond})
		}
	}
	l.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, dir)
	defer st.Close()
	l = New(Config{Store: st, Clock: clk})
	defer l.Close()
	all, err := l.Entries(Filter{})
	if err != nil {
		t.Fatal(err)
	}
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
	ex, _ := l.Entries(Filter{Service: "httpbin", Events: []string{EventExecuted}})
	if len(ex) != 4 || ex[0].Status != 200 || len(ex[0].Approvers) != 2 || ex[0].DurationMS != 70 {
		t.Fatalf("httpbin executions: %+v", ex)
	}
	recent, _ := l.Entries(Filter{Since: clk.Now().Add(-150 * time.Second)})
	if len(recent) != 5 {
		t.Fatalf("since: %d", len(recent))
	}

	byKey, err := l.Usage(ByKey, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Usage{
		"alice-key":     {Submitted: 5, Executed: 4, Expired: 1, P50MS: 30, P95MS: 70},
		"program:agent": {Submitted: 5, Executed: 4, Failed: 1, P50MS: 60, P95MS: 5000},
	}
	if len(byKey) != 2 {
		t.Fatalf("by key: %+v", byKey)
	}
	for _, u := range byKey {
		w := want[u.Group]
		w.Group = u.Group
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
	if _, err := l.Usage("month", Filter{}); err == nil {
		t.Fatal("bad grouping accepted")
	}
}

// TestPrune: entries older than the retention go, in the background, on
// the injected clock.
func TestPrune(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := New(Config{Store: st, Clock: clk, Retention: 48 * time.Hour})
	defer l.Close()
	for d := 0; d < 5; d++ {
		l.Submitted("c1", req(fmt.Sprintf("day%d", d), "httpbin", ""))
		clk.Advance(24*time.Hour - time.Minute) // the pruner runs along the way
		l.Flush()
	}
	// Now 5 January 23:55; the last run (23:01) cut at 3 January 23:01.
	left, _ := l.Entries(Filter{})
	if len(left) != 2 || left[1].RequestID != "day3" {
		t.Fatalf("left after pruning: %+v", left)
	}
	if n, err := l.Prune(); err != nil || n != 0 {
		t.Fatalf("prune again: %d %v", n, err)
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if percentile(v, 50) != 5 || percentile(v, 95) != 10 || percentile(nil, 50) != 0 || percentile([]float64{7}, 95) != 7 {
		t.Fatal("percentile")
	}
}
