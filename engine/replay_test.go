package engine

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/store"
)

// An envelope accepted before the replay window's keys took their
// time-first form is still refused when posted again after an upgrade,
// for as long as its old key is kept; a new envelope is accepted.
func TestAReplayIsRefusedUnderTheOldAndTheNewKeyForm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	st, err := store.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	cfg := testConfig(t, st, clk)
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := conversation.NewIdentity("alice")
	if err != nil {
		t.Fatal(err)
	}
	convID := uuid.NewString()
	h := conversation.Header{Conversation: convID, CreatedAt: conversation.FormatTime(clk.Now()), Gateway: e.GatewayKey()}
	sign := func(kind string, p any) []byte {
		raw, _ := signed(t, alice, kind, p)
		return raw
	}
	chat := func(text string) []byte {
		return sign(conversation.KindChatMessage, map[string]string{"conversation": convID, "created_at": h.CreatedAt, "gateway": h.Gateway, "text": text})
	}
	if _, err := e.Create(sign(conversation.KindConversationCreate, conversation.CreatePayload{Header: h, Name: "replay",
		Members: []conversation.Member{{Key: alice.KeyID(), Name: "alice"}}})); err != nil {
		t.Fatal(err)
	}
	first := chat("first")
	if _, err := e.Post(convID, first); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Post(convID, first); twokey.ErrorCode(err) != twokey.EReplayed {
		t.Fatalf("the same envelope again: %v, want %s", err, twokey.EReplayed)
	}

	// An envelope accepted by the old code: its key in the old form.
	old := chat("accepted before the upgrade")
	m, err := conversation.Open(old)
	if err != nil {
		t.Fatal(err)
	}
	until := m.CreatedAt.Add(seenFor).UTC().Format(time.RFC3339)
	if err := st.Put(store.Seen, m.Author+"/"+m.PayloadDigest(), []byte(until)); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !e.legacySeen.Load() {
		t.Fatal("the engine did not notice keys of the old form")
	}
	if _, err := e.Post(convID, old); twokey.ErrorCode(err) != twokey.EReplayed {
		t.Fatalf("an envelope accepted under the old key form, posted again: %v, want %s", err, twokey.EReplayed)
	}
	if _, err := e.Post(convID, first); twokey.ErrorCode(err) != twokey.EReplayed {
		t.Fatalf("after a restart, the same envelope again: %v, want %s", err, twokey.EReplayed)
	}
	if _, err := e.Post(convID, chat("new")); err != nil {
		t.Fatalf("a new envelope after the restart: %v", err)
	}

	// Inside the window nothing goes; once it has passed, the prune the
	// engine runs every NoncePruneEvery has taken every key, of either
	// form: the create, "first", "new" and the old one.
	if n, err := e.PruneSeen(); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) inside the window", n, err)
	}
	clk.Advance(seenFor + time.Minute)
	if n, err := e.PruneSeen(); err != nil || n != 0 {
		t.Fatalf("pruned %d keys (%v) that the scheduled prune left", n, err)
	}
	if e.legacySeen.Load() {
		t.Fatal("keys of the old form are still noted after they were pruned")
	}
	left := 0
	if err := st.ForEach(store.Seen, func(string, []byte) error { left++; return nil }); err != nil || left != 0 {
		t.Fatalf("%d keys left in the window (%v)", left, err)
	}
}
