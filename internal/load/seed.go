package load

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// seeded is the data set a tier loads: conversations of four signers with
// M = 3, each holding pending requests (the submitter's own approval
// counted, so each takes one more approval and stays pending).
type seeded struct {
	convs   []seedConv
	pending int
	took    time.Duration
}

type seedConv struct {
	id      string
	members [4]int // indexes into the signer pool; [0] is admin and submitter
	reqs    []seedReq
}

type seedReq struct {
	id     string
	digest string
}

const seedM = 3

// members returns the pool indexes of conversation i's four signers.
func seedMembers(i, pool int) [4]int {
	return [4]int{i % pool, (i + 1) % pool, (i + 2) % pool, (i + 3) % pool}
}

// seed loads nConvs conversations with perConv pending requests each
// through the engine's own code paths, in process: every message is a
// signed envelope that Engine.Create or Engine.Post verifies, decides and
// commits exactly as if it had come over HTTP. Only the HTTP hop is
// skipped, to load 100,000 requests within the time budget.
func (e *env) seed(ctx context.Context, nConvs, perConv, workers int) (*seeded, error) {
	s := &seeded{convs: make([]seedConv, nConvs)}
	exp := conversation.FormatTime(time.Now().Add(24 * time.Hour))
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go loadSide(func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= nConvs || firstErr.Load() != nil {
					return
				}
				if err := ctx.Err(); err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("loading the data set: %w", err))
					return
				}
				if err := e.seedOne(&s.convs[i], i, perConv, exp); err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("seed conversation %d: %w", i, err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	s.took = time.Since(start)
	s.pending = nConvs * perConv
	return s, nil
}

func (e *env) seedOne(sc *seedConv, i, perConv int, exp string) error {
	eng := e.d.Engine()
	sc.id = uuid.NewString()
	sc.members = seedMembers(i, len(e.pool))
	admin := e.pool[sc.members[0]]
	var members []conversation.Member
	for _, k := range sc.members {
		members = append(members, conversation.Member{Key: e.pool[k].KeyID(), Name: e.pool[k].Name})
	}
	now := conversation.FormatTime(time.Now())
	raw, _ := signed(admin, conversation.KindConversationCreate, conversation.CreatePayload{
		Header: conversation.Header{Conversation: sc.id, CreatedAt: now}, Name: fmt.Sprintf("seed-%d", i), Members: members})
	if _, err := eng.Create(raw); err != nil {
		return err
	}
	h := conversation.Header{Conversation: sc.id, CreatedAt: now, Gateway: e.gw}
	raw, _ = signed(admin, conversation.KindGateEnable, gate.EnablePayload{Header: h, RequiredApprovals: seedM})
	if _, err := eng.Post(sc.id, raw); err != nil {
		return err
	}
	sc.reqs = make([]seedReq, perConv)
	for j := range perConv {
		id := uuid.NewString()
		raw, digest := signed(admin, conversation.KindGateRequest, e.requestPayload(h, id, exp))
		if _, err := eng.Post(sc.id, raw); err != nil {
			return err
		}
		sc.reqs[j] = seedReq{id: id, digest: digest}
	}
	return nil
}

// requestPayload is a POST to the upstream whose path ends in the
// request's id, so the upstream can say when each call arrived.
func (e *env) requestPayload(h conversation.Header, id, exp string) gate.RequestPayload {
	return gate.RequestPayload{Header: h, RequestID: id, Service: "fun", Method: "POST",
		URL: e.up.url + "/b/" + id, Body: json.RawMessage(`{"text":"bench"}`), ExpiresAt: exp}
}

// approval returns the signed gate.approve of request r of conversation
// sc by its second signer.
func (e *env) approval(sc *seedConv, r seedReq) []byte {
	raw, _ := signed(e.pool[sc.members[1]], conversation.KindGateApprove, gate.VotePayload{
		Header:    conversation.Header{Conversation: sc.id, CreatedAt: conversation.FormatTime(time.Now()), Gateway: e.gw},
		RequestID: r.id, RequestDigest: r.digest})
	return raw
}
