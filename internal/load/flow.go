package load

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// flowResult is a run of the whole M = 2 flow: submit, one approval, the
// execution, the result records.
type flowResult struct {
	throughput
	SentToUpstream   dist // M-th approval sent -> upstream received the call
	AckToUpstream    dist // M-th approval acknowledged -> upstream (negative: the call arrived first)
	CommitToUpstream dist // durable executing mark -> upstream
	SentToResult     dist // M-th approval sent -> gate.response read from the WebSocket
	AckNegative      int  // how many calls reached the upstream before the approver read its ack
}

// flowConv is a conversation of two signers with M = 2: pool[sub]
// submits, pool[0] approves.
type flowConv struct {
	id  string
	sub int
}

// flowConvs creates n flow conversations over HTTP with the Go client.
func (e *env) flowConvs(ctx context.Context, n int) ([]flowConv, error) {
	convs := make([]flowConv, n)
	for i := range convs {
		k := 1 + i%(len(e.clients)-1)
		sub := e.clients[k]
		rec, err := sub.CreateConversation(ctx, fmt.Sprintf("flow-%d", i), []conversation.Member{{Key: e.pool[0].KeyID(), Name: e.pool[0].Name}})
		if err != nil {
			return nil, fmt.Errorf("create flow conversation: %w", err)
		}
		var p conversation.CreatePayload
		if err := json.Unmarshal(rec.Body, &p); err != nil {
			return nil, err
		}
		if _, err := sub.EnableGate(ctx, p.Conversation, 2, nil); err != nil {
			return nil, fmt.Errorf("enable gate: %w", err)
		}
		convs[i] = flowConv{p.Conversation, k}
	}
	return convs, nil
}

type flowOp struct {
	id      string
	submit  []byte
	approve []byte
}

type flowSample struct {
	conv        string
	id          string
	sent, acked time.Time
	ackSeq      uint64
	done        time.Time
	failed      bool
}

// flow runs conc clients, each on its own conversation and following it
// over its own WebSocket (as 'twokey request --wait' does), through up to
// budget operations or maxTime. Every envelope is signed before the clock
// starts.
func (e *env) flow(ctx context.Context, fcs []flowConv, conc, budget int, maxTime time.Duration) (flowResult, error) {
	convs := make([]string, conc)
	for w := range conc {
		convs[w] = fcs[w].id
	}
	per := (budget + conc - 1) / conc
	exp := conversation.FormatTime(time.Now().Add(time.Hour))
	ops := make([][]flowOp, conc)
	for w := range conc {
		conv := convs[w]
		sub := e.pool[fcs[w].sub]
		h := conversation.Header{Conversation: conv, CreatedAt: conversation.FormatTime(time.Now()), Gateway: e.gw}
		for range per {
			id := uuid.NewString()
			sb, digest := signed(sub, conversation.KindGateRequest, e.requestPayload(h, id, exp))
			ab, _ := signed(e.pool[0], conversation.KindGateApprove, gate.VotePayload{Header: h, RequestID: id, RequestDigest: digest})
			ops[w] = append(ops[w], flowOp{id, sb, ab})
		}
	}
	// One follower per client, subscribed before the clock starts.
	type follower struct {
		ws   *websocket.Conn
		done chan closed
	}
	fs := make([]follower, conc)
	for w := range conc {
		ws, err := e.clients[fcs[w].sub].Dial(ctx)
		if err != nil {
			return flowResult{}, err
		}
		defer ws.Close()
		if err := ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": convs[w], "after": e.d.Engine().Hub().Last(convs[w])}); err != nil {
			return flowResult{}, err
		}
		fs[w] = follower{ws, make(chan closed, per+8)}
		go loadSide(func() { readClosed(ws, fs[w].done) })
	}
	var done, errs atomic.Int64
	var firstErr atomic.Value
	var last atomic.Int64
	samples := make([][]flowSample, conc)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(maxTime)
	for w := range conc {
		wg.Add(1)
		go loadSide(func() {
			defer wg.Done()
			fail := func(err error) {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			for _, op := range ops[w] {
				if !time.Now().Before(deadline) || ctx.Err() != nil {
					return
				}
				if _, err := e.post(convs[w], op.submit); err != nil {
					fail(err)
					continue
				}
				s := flowSample{conv: convs[w], id: op.id, sent: time.Now()}
				seq, err := e.post(convs[w], op.approve)
				if err != nil {
					fail(err)
					continue
				}
				s.acked, s.ackSeq = time.Now(), seq
				timeout := time.NewTimer(10 * time.Second)
			wait:
				for {
					select {
					case c, ok := <-fs[w].done:
						if !ok {
							fail(fmt.Errorf("follower of %s closed", convs[w]))
							timeout.Stop()
							return
						}
						if c.id != op.id {
							continue
						}
						s.done, s.failed = c.at, c.failed
						break wait
					case <-timeout.C:
						fail(fmt.Errorf("request %s: no result within 10 s", op.id))
						return
					case <-ctx.Done():
						timeout.Stop()
						return
					}
				}
				timeout.Stop()
				if s.failed {
					fail(fmt.Errorf("request %s failed", op.id))
					continue
				}
				samples[w] = append(samples[w], s)
				done.Add(1)
				last.Store(int64(time.Since(start)))
			}
		})
	}
	wg.Wait()
	r := flowResult{throughput: throughput{Conc: conc, Done: int(done.Load()), Errors: int(errs.Load()), Elapsed: time.Duration(last.Load())}}
	r.FirstErr, _ = firstErr.Load().(string)
	var sentUp, ackUp, commitUp, sentRes []time.Duration
	for _, ss := range samples {
		for _, s := range ss {
			up, ok := e.up.at(s.id)
			if !ok {
				continue
			}
			sentUp = append(sentUp, up.Sub(s.sent))
			d := up.Sub(s.acked)
			if d < 0 {
				r.AckNegative++
			}
			ackUp = append(ackUp, d)
			if ct, ok := e.times.get(s.conv, s.ackSeq); ok {
				commitUp = append(commitUp, up.Sub(ct))
			}
			sentRes = append(sentRes, s.done.Sub(s.sent))
		}
	}
	r.SentToUpstream, r.AckToUpstream, r.CommitToUpstream, r.SentToResult = summarize(sentUp), summarize(ackUp), summarize(commitUp), summarize(sentRes)
	return r, nil
}

// closed is a request's result record as a follower saw it.
type closed struct {
	id     string
	at     time.Time
	failed bool
}

// readClosed reads record frames and reports each gate.response and
// gate.failed, until the socket closes.
func readClosed(ws *websocket.Conn, out chan<- closed) {
	defer close(out)
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		at := time.Now()
		var f struct {
			Op     string `json:"op"`
			Record *struct {
				Kind string          `json:"kind"`
				Body json.RawMessage `json:"body"`
			} `json:"record"`
		}
		if json.Unmarshal(data, &f) != nil || f.Op != "record" || f.Record == nil {
			continue
		}
		if f.Record.Kind != conversation.KindGateResponse && f.Record.Kind != conversation.KindGateFailed {
			continue
		}
		var p struct {
			RequestID string `json:"request_id"`
		}
		json.Unmarshal(f.Record.Body, &p)
		out <- closed{p.RequestID, at, f.Record.Kind == conversation.KindGateFailed}
	}
}
