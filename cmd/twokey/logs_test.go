package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/reqlog"
	"github.com/twokey/twokey/store"
)

// TestLogsPages: twokey logs asks the server a page at a time. --all goes
// through every page; --limit fills its count across pages that a bounded
// scan left short; a --limit over a page's maximum is a usage error.
func TestLogsPages(t *testing.T) {
	fx := newOperatorFixture(t)
	// More entries than a page holds and than one page's scan examines,
	// written as the engine writes them.
	n := reqlog.ScanBudget + 2500
	start := time.Now().UTC().Add(-time.Hour)
	var puts []store.Put
	for i := 0; i < n; i++ {
		svc := "httpbin"
		if i == 0 {
			svc = "rare"
		}
		r := &gate.Request{ID: fmt.Sprintf("r%07d", i), Submitter: "alice-key",
			Payload: gate.RequestPayload{Service: svc, Method: "GET", URL: "http://up/get"}}
		puts = append(puts, fx.srv.RequestLog().Puts(engine.Event{Kind: engine.EventSubmitted,
			Time: start.Add(time.Duration(i) * time.Millisecond), Conversation: fx.conv, Request: r})...)
	}
	if err := fx.srv.Store().Commit(&store.Write{Puts: puts}); err != nil {
		t.Fatal(err)
	}
	var all []reqlog.Entry
	if err := json.Unmarshal([]byte(mustRun(t, fx.env, "logs", "--all", "--json")), &all); err != nil || len(all) != n {
		t.Fatalf("logs --all: %d entries, %v", len(all), err)
	}
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.RequestID] {
			t.Fatalf("%s twice", e.RequestID)
		}
		seen[e.RequestID] = true
	}
	out := mustRun(t, fx.env, "logs", "--service", "rare", "--limit", "5")
	if strings.Count(out, "submitted") != 1 || !strings.Contains(out, "r0000000") {
		t.Fatalf("logs --service rare (past the first page's scan):\n%s", out)
	}
	if out := mustRun(t, fx.env, "logs", "--limit", "3"); strings.Count(out, "submitted") != 3 {
		t.Fatalf("logs --limit 3:\n%s", out)
	}
	for _, args := range [][]string{{"logs", "--limit", "0"}, {"logs", "--limit", "1001"}, {"logs", "--all", "--limit", "5"}} {
		if code, _, errs := run(t, fx.env, args...); code != 2 {
			t.Errorf("twokey %s: exit %d, want 2 (usage)\n%s", strings.Join(args, " "), code, errs)
		}
	}
	if code, _, errs := run(t, fx.env, "logs", "--since", "-24h"); code != 1 || !strings.Contains(errs, "negative") {
		t.Errorf("logs --since -24h: exit %d %s", code, errs)
	}
	if out := mustRun(t, fx.env, "usage", "--by", "service", "--since", "1970-01-01T00:00:00Z"); !strings.Contains(out, "rare") || !strings.Contains(out, "days (UTC) 1970-01-01") {
		t.Fatalf("usage --since 1970:\n%s", out)
	}
}
