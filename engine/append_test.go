package engine

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
)

// received_at never decreases along a log, even when the clock steps back
// (the audit refuses a log where it does).
func TestReceivedAtNeverGoesBack(t *testing.T) {
	id, err := conversation.NewIdentity("alice")
	if err != nil {
		t.Fatal(err)
	}
	ch := &change{st: &conversation.State{ID: "c"}}
	msg := func(text string) *conversation.Message {
		env := conversation.Sign(id, conversation.KindChatMessage, []byte(`{"conversation":"c","created_at":"2026-12-02T12:00:00Z","text":"`+text+`"}`))
		m, err := conversation.Open(mustJSON(t, env))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	r1 := ch.append(msg("a"), t0)
	r2 := ch.append(msg("b"), t0.Add(-time.Hour)) // the clock stepped back
	r3 := ch.append(msg("c"), t0.Add(time.Second))
	if r1.ReceivedAt != "2026-12-02T12:00:00.000Z" || r2.ReceivedAt != r1.ReceivedAt || r3.ReceivedAt != "2026-12-02T12:00:01.000Z" {
		t.Fatalf("received_at %s, %s, %s", r1.ReceivedAt, r2.ReceivedAt, r3.ReceivedAt)
	}
	if r3.Seq != 3 || ch.st.Seq != 3 {
		t.Fatalf("seq %d, state %d", r3.Seq, ch.st.Seq)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
