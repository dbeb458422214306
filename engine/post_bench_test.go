package engine

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

// BenchmarkPostApproval is one posted gate.approve, from the bytes the
// server reads to the change ready to commit: Open (parse, verify, strict
// JSON, header), the lock-free checks (admit), then under the
// conversation's lock the membership and signer checks, the record and its
// chain value, the vote decoded and counted, and the replay check's store
// read (decide). The commit, the store's part, is left out (BenchmarkAppend
// and the store's own benchmarks measure it), so the change is dropped and
// the same envelope can be posted again: the request stays pending and the
// vote is never counted twice.
func BenchmarkPostApproval(b *testing.B) {
	e, convID, raw := approvalEngine(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := conversation.Open(raw)
		if err != nil {
			b.Fatal(err)
		}
		c, err := e.admit(convID, m)
		if err != nil {
			b.Fatal(err)
		}
		c.mu.Lock()
		ch, err := e.decide(c, convID, m)
		if ch != nil {
			ch.drop()
		}
		c.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// approvalEngine starts an engine over a fresh store, founds a gated
// conversation of four signers (M = 3) through the engine's own API, and
// has the first submit a request. It returns the engine, the conversation
// and the second signer's approval of the request, as JSON.
func approvalEngine(b *testing.B) (*Engine, string, []byte) {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), "twokey.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	e, err := New(testConfig(b, st, clock.Real{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	ids := make([]*conversation.Identity, 4)
	members := make([]conversation.Member, 4)
	for i := range ids {
		if ids[i], err = conversation.NewIdentity(fmt.Sprintf("signer%d", i)); err != nil {
			b.Fatal(err)
		}
		members[i] = conversation.Member{Key: ids[i].KeyID(), Name: ids[i].Name}
	}
	convID := uuid.NewString()
	h := conversation.Header{Conversation: convID, CreatedAt: conversation.FormatTime(time.Now()), Gateway: e.GatewayKey()}
	sign := func(id *conversation.Identity, kind string, p any) ([]byte, string) { return signed(b, id, kind, p) }
	raw, _ := sign(ids[0], conversation.KindConversationCreate, conversation.CreatePayload{Header: h, Name: "bench", Members: members})
	if _, err := e.Create(raw); err != nil {
		b.Fatal(err)
	}
	raw, _ = sign(ids[0], conversation.KindGateEnable, gate.EnablePayload{Header: h, RequiredApprovals: 3})
	if _, err := e.Post(convID, raw); err != nil {
		b.Fatal(err)
	}
	svc, ok := e.Catalog().Service("fun")
	if !ok {
		b.Fatal("the starter catalog has no fun service")
	}
	reqID := uuid.NewString()
	raw, digest := sign(ids[0], conversation.KindGateRequest, gate.RequestPayload{Header: h, RequestID: reqID, Service: "fun",
		Method: "POST", URL: svc.BaseURL + "/b/" + reqID, Body: json.RawMessage(`{"text":"bench"}`),
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))})
	if _, err := e.Post(convID, raw); err != nil {
		b.Fatal(err)
	}
	raw, _ = sign(ids[1], conversation.KindGateApprove, gate.VotePayload{Header: h, RequestID: reqID, RequestDigest: digest})
	return e, convID, raw
}
