package tui

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata/")

// golden compares a screen with testdata/NAME.golden (rewritten by -update).
// Screens are drawn at 100x30 at a fixed time, colours stripped.
func golden(t *testing.T, name, got string) {
	t.Helper()
	// Trailing spaces are noise in a diff; every line is padded anyway.
	lines := strings.Split(got, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	got = strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./tui -run Golden -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("screen %s differs from %s (go test ./tui -run Golden -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, path, got, want)
	}
}

// TestGoldenCards draws the screen with each kind of card selected.
func TestGoldenCards(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)
	cards := []string{
		"create", "chat", "gate_enable", "gate_enabled", "secret_stored", "request_executed", "approve",
		"executed", "response", "request_rejected", "reject", "rejected", "expired", "secret_revoke",
		"secret_revoked", "failed", "cancel", "cancelled", "propose", "member_approve", "member_changed",
		"request_pending", "request_expired", "request_failed", "request_cancelled",
	}
	// The request cards of the requests that expired, failed and were
	// cancelled (the names above without "request_" are their outcomes).
	at["request_expired"], at["request_failed"], at["request_cancelled"] = at["expired"]-1, at["failed"]-2, at["cancel"]-1
	for _, name := range cards {
		t.Run(name, func(t *testing.T) {
			m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
			selectSeq(t, m, at[name])
			golden(t, "card_"+name, screen(m))
		})
	}
	x, xat := extraLog(t, ps)
	for _, name := range []string{"member_add", "member_remove", "request_executing", "request_program", "request_body"} {
		t.Run(name, func(t *testing.T) {
			m := newModel(t, &fakeBackend{}, ps, ps.bob, x)
			selectSeq(t, m, xat[name])
			golden(t, "card_"+name, screen(m))
		})
	}
	t.Run("request_body_expanded", func(t *testing.T) {
		m := newModel(t, &fakeBackend{}, ps, ps.bob, x)
		selectSeq(t, m, xat["request_body"])
		press(m, "enter")
		golden(t, "card_request_body_expanded", screen(m))
	})
	t.Run("response_expanded", func(t *testing.T) {
		m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
		selectSeq(t, m, at["response"])
		press(m, "enter")
		golden(t, "card_response_expanded", screen(m))
	})
}

// TestGoldenScreens draws the rest: a log that fails verification, the
// conversation list, the help and members overlays, the request preview
// and the hidden key field.
func TestGoldenScreens(t *testing.T) {
	ps := newPeople(t)
	l, _ := scenario(t, ps)
	d := forgedLog(t, ps)

	m := newModel(t, &fakeBackend{}, ps, ps.bob, d, l)
	selectSeq(t, m, 5)
	golden(t, "screen_unverified", screen(m))

	// ops gets two records after start: unread, as dev is selected.
	l2, _ := scenario(t, ps)
	m = newModel(t, &fakeBackend{}, ps, ps.bob, l2, d)
	m.Update(connMsg{convOps, "connected"})
	l2.chat(ps.alice, "one")
	l2.chat(ps.carol, "two")
	for _, r := range l2.recs[len(l2.recs)-2:] {
		m.Update(recordMsg{convOps, r})
	}
	press(m, "tab", "tab")
	golden(t, "screen_conversations", screen(m))

	m = newModel(t, &fakeBackend{}, ps, ps.bob, l)
	press(m, "?")
	golden(t, "screen_help", screen(m))

	m = newModel(t, &fakeBackend{}, ps, ps.bob, l)
	press(m, "/")
	typeText(m, "members")
	press(m, "enter")
	golden(t, "screen_members", screen(m))

	m = newModel(t, &fakeBackend{}, ps, ps.bob, l)
	press(m, "/")
	typeText(m, "request httpbin.echo data=hello")
	golden(t, "screen_request_preview", screen(m))

	m = newModel(t, &fakeBackend{}, ps, ps.bob, l)
	m.Update(connMsg{convOps, "reconnecting: connection lost: EOF"})
	press(m, "/")
	typeText(m, "secret add httpbin")
	press(m, "enter")
	typeText(m, "sk_test_51Hx")
	golden(t, "screen_secret", screen(m))
}
