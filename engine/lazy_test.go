package engine

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

// Pending requests come back from a restart undecoded (conv.lazy), and
// every reader still sees them: the conversation's count, the listing,
// a vote, a cancel and the expiry, each on a request only its mark loaded.
func TestPendingRequestsLoadedLazilyAreSeenByEveryReader(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "t.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clk := clock.NewFake(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	cfg := testConfig(t, st, clk)
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]*conversation.Identity, 3)
	members := make([]conversation.Member, 3)
	for i := range ids {
		if ids[i], err = conversation.NewIdentity("m"); err != nil {
			t.Fatal(err)
		}
		members[i] = conversation.Member{Key: ids[i].KeyID(), Name: []string{"alice", "bob", "carol"}[i]}
	}
	convID := uuid.NewString()
	h := func() conversation.Header {
		return conversation.Header{Conversation: convID, CreatedAt: conversation.FormatTime(clk.Now()), Gateway: e.GatewayKey()}
	}
	sign := func(id *conversation.Identity, kind string, p any) ([]byte, string) { return signed(t, id, kind, p) }
	post := func(id *conversation.Identity, kind string, p any) string {
		t.Helper()
		raw, digest := sign(id, kind, p)
		if _, err := e.Post(convID, raw); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		return digest
	}
	raw, _ := sign(ids[0], conversation.KindConversationCreate, conversation.CreatePayload{Header: h(), Name: "lazy", Members: members})
	if _, err := e.Create(raw); err != nil {
		t.Fatal(err)
	}
	post(ids[0], conversation.KindGateEnable, gate.EnablePayload{Header: h(), RequiredApprovals: 3})
	svc, _ := e.Catalog().Service("fun")
	reqs := make([]string, 4)
	digests := make([]string, 4)
	for i := range reqs {
		reqs[i] = uuid.NewString()
		exp := time.Hour
		if i == 3 {
			exp = 10 * time.Minute
		}
		digests[i] = post(ids[0], conversation.KindGateRequest, gate.RequestPayload{Header: h(), RequestID: reqs[i], Service: "fun",
			Method: "POST", URL: svc.BaseURL + "/b/" + reqs[i], ExpiresAt: conversation.FormatTime(clk.Now().Add(exp))})
	}
	restart := func() *conv {
		t.Helper()
		e.Close()
		if e, err = New(cfg); err != nil {
			t.Fatal(err)
		}
		c, err := e.lookup(convID)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.lazy) != 4-countClosed(t, e, convID, reqs) || len(c.requests) != 0 {
			t.Fatalf("after a restart %d requests are lazy and %d decoded", len(c.lazy), len(c.requests))
		}
		return c
	}

	c := restart()
	if got := c.summary().Pending; got != 4 {
		t.Fatalf("the conversation counts %d pending, want 4", got)
	}
	list, err := e.Requests(convID, ids[1].KeyID(), gate.StatePending, 0)
	if err != nil || len(list) != 4 {
		t.Fatalf("listing pending after a restart: %d, %v", len(list), err)
	}

	c = restart()
	// A vote on a request only its mark loaded: bob's rejection leaves
	// 2 signers for an M of 3, so it is rejected.
	post(ids[1], conversation.KindGateReject, gate.VotePayload{Header: h(), RequestID: reqs[0], RequestDigest: digests[0]})
	if s, err := e.requestState(c, convID, reqs[0]); err != nil || s.State != gate.StateRejected {
		t.Fatalf("request 0 after a rejection: %+v, %v", s, err)
	}

	c = restart()
	post(ids[0], conversation.KindGateCancel, gate.CancelPayload{Header: h(), RequestID: reqs[1]})
	if s, err := e.requestState(c, convID, reqs[1]); err != nil || s.State != gate.StateCancelled {
		t.Fatalf("request 1 after its cancel: %+v, %v", s, err)
	}

	c = restart()
	clk.Advance(11 * time.Minute)
	if s, err := e.requestState(c, convID, reqs[3]); err != nil || s.State != gate.StateExpired {
		t.Fatalf("request 3 after its expiry: %+v, %v", s, err)
	}
	if s, err := e.requestState(c, convID, reqs[2]); err != nil || s.State != gate.StatePending {
		t.Fatalf("request 2, still in its hour: %+v, %v", s, err)
	}
	e.Close()
}

func countClosed(t *testing.T, e *Engine, convID string, reqs []string) int {
	t.Helper()
	n := 0
	for _, id := range reqs {
		raw, err := e.st.Get(store.Requests, id)
		if err != nil || raw == nil {
			t.Fatalf("request %s: %v", id, err)
		}
		r, err := decodeRequest(raw)
		if err != nil {
			t.Fatal(err)
		}
		if r.Terminal() {
			n++
		}
	}
	return n
}
