package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/reqlog"
	"github.com/twokey/twokey/store"
)

// TestCallsPages: twokey calls asks the server a page at a time. --all goes
// through every page; --limit fills its count across pages that a bounded
// scan left short; a --limit over a page's maximum is a usage error.
func TestCallsPages(t *testing.T) {
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
	var all []api.LogEntry
	if err := json.Unmarshal([]byte(mustRun(t, fx.env, "calls", "--all", "--json")), &all); err != nil || len(all) != n {
		t.Fatalf("calls --all: %d entries, %v", len(all), err)
	}
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.RequestID] {
			t.Fatalf("%s twice", e.RequestID)
		}
		seen[e.RequestID] = true
	}
	out := mustRun(t, fx.env, "calls", "--service", "rare", "--limit", "5")
	if strings.Count(out, "submitted") != 1 || !strings.Contains(out, "r0000000") {
		t.Fatalf("calls --service rare (past the first page's scan):\n%s", out)
	}
	if out := mustRun(t, fx.env, "calls", "--limit", "3"); strings.Count(out, "submitted") != 3 {
		t.Fatalf("calls --limit 3:\n%s", out)
	}
	for _, args := range [][]string{{"calls", "--limit", "0"}, {"calls", "--limit", "1001"}, {"calls", "--all", "--limit", "5"}} {
		if code, _, errs := run(t, fx.env, args...); code != 2 {
			t.Errorf("twokey %s: exit %d, want 2 (usage)\n%s", strings.Join(args, " "), code, errs)
		}
	}
	if code, _, errs := run(t, fx.env, "calls", "--since", "-24h"); code != 1 || !strings.Contains(errs, "negative") {
		t.Errorf("calls --since -24h: exit %d %s", code, errs)
	}
	if out := mustRun(t, fx.env, "usage", "--by", "service", "--since", "1970-01-01T00:00:00Z"); !strings.Contains(out, "rare") || !strings.Contains(out, "days (UTC) 1970-01-01") {
		t.Fatalf("usage --since 1970:\n%s", out)
	}
}

// TestLogsIsCalls: the old name 'twokey logs' still works, hidden from
// the help, and says on standard error that it is now 'twokey calls'.
func TestLogsIsCalls(t *testing.T) {
	fx := newOperatorFixture(t)
	code, out, errs := run(t, fx.env, "logs", "--limit", "3")
	if code != 0 || !strings.Contains(errs, "'twokey logs' is now 'twokey calls'") {
		t.Fatalf("logs: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if want := mustRun(t, fx.env, "calls", "--limit", "3"); out != want {
		t.Fatalf("logs printed\n%s\ncalls printed\n%s", out, want)
	}
	if code, _, errs := run(t, fx.env, "logs", "--limit", "0"); code != 2 || !strings.Contains(errs, "--limit 0") {
		t.Fatalf("logs --limit 0: exit %d %s", code, errs)
	}
	help := mustRun(t, fx.env, "--help")
	if !strings.Contains(help, "calls") || strings.Contains(help, "  logs ") {
		t.Fatalf("help lists logs, or not calls:\n%s", help)
	}
}
