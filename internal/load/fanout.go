package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/engine"
)

// fanoutResult is how long records took from their commit to each of
// subs live WebSocket subscribers.
type fanoutResult struct {
	Subs     int
	Stalled  int
	Records  int
	Delivery dist // commit -> arrival, over every (record, subscriber)
	Last     dist // commit -> arrival at the last subscriber, over records
	Missing  int  // deliveries that did not arrive within the wait
}

// fanoutConv creates the conversation the fan-out is measured on: every
// signer of the pool is a member.
func (e *env) fanoutConv(ctx context.Context) (string, error) {
	var members []conversation.Member
	for _, id := range e.pool[1:] {
		members = append(members, conversation.Member{Key: id.KeyID(), Name: id.Name})
	}
	rec, err := e.clients[0].CreateConversation(ctx, "fanout", members)
	if err != nil {
		return "", err
	}
	var p conversation.CreatePayload
	err = json.Unmarshal(rec.Body, &p)
	return p.Conversation, err
}

// fanout opens subs subscribers (and stalled ones that never read), posts
// records chat messages one at a time, each once the previous one has
// reached every subscriber, and measures from each record's commit (the
// engine's own log line) to its arrival at each subscriber.
func (e *env) fanout(ctx context.Context, conv string, subs, stalled, records int) (fanoutResult, error) {
	res := fanoutResult{Subs: subs, Stalled: stalled, Records: records}
	hub := e.d.Engine().Hub()
	base := hub.Last(conv)
	api := e.d.API()
	before := api.WebSockets()
	defer func() {
		// Leave once the server has let go of every socket of this run.
		for deadline := time.Now().Add(10 * time.Second); api.WebSockets() > before && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// arrivals[i][k] is when subscriber i read record base+1+k.
	arrivals := make([][]time.Time, subs)
	got := make([]atomic.Int32, records)
	signal := make([]chan struct{}, records)
	for k := range signal {
		signal[k] = make(chan struct{})
	}
	var socks []*websocket.Conn
	var raws []net.Conn
	defer func() {
		for _, ws := range socks {
			ws.Close()
		}
		for _, c := range raws {
			c.Close()
		}
	}()
	var readers sync.WaitGroup
	for i := range subs {
		ws, err := e.clients[i%len(e.clients)].Dial(ctx)
		if err != nil {
			return res, err
		}
		socks = append(socks, ws)
		if err := ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": conv, "after": base}); err != nil {
			return res, err
		}
		arrivals[i] = make([]time.Time, records)
		readers.Add(1)
		go loadSide(func() {
			defer readers.Done()
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				at := time.Now()
				seq := parseSeq(data)
				if seq <= base || seq > base+uint64(records) {
					continue
				}
				k := seq - base - 1
				arrivals[i][k] = at
				if int(got[k].Add(1)) == subs {
					close(signal[k])
				}
			}
		})
	}
	addr := strings.TrimPrefix(e.base, "http://")
	for i := range stalled {
		tok, err := e.clients[i%len(e.clients)].Token(ctx)
		if err != nil {
			return res, err
		}
		c, err := rawSocket(addr, tok, conv, base, 1024)
		if err != nil {
			return res, err
		}
		raws = append(raws, c)
	}
	// Wait until the server has every subscription.
	for deadline := time.Now().Add(10 * time.Second); hub.Subscribers(conv) < subs+stalled; {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("fan-out: only %d of %d subscriptions registered", hub.Subscribers(conv), subs+stalled)
		}
		time.Sleep(5 * time.Millisecond)
	}
	bodies := make([][]byte, records)
	for k := range bodies {
		bodies[k], _ = signed(e.pool[0], conversation.KindChatMessage, conversation.ChatPayload{
			Header: conversation.Header{Conversation: conv, CreatedAt: conversation.FormatTime(time.Now())},
			Text:   fmt.Sprintf("fan-out %d of %d: %s", k+1, records, strings.Repeat("x", 200))})
	}
	e.times.start()
	defer e.times.stop()
	var err error
	loadSide(func() {
		for k := range records {
			var seq uint64
			if seq, err = e.post(conv, bodies[k]); err != nil {
				return
			}
			if seq != base+uint64(k)+1 {
				err = fmt.Errorf("fan-out: record landed at seq %d, want %d (is someone else posting?)", seq, base+uint64(k)+1)
				return
			}
			select {
			case <-signal[k]:
			case <-time.After(5 * time.Second):
			}
		}
	})
	// Stop the readers before looking at what they wrote.
	for _, ws := range socks {
		ws.Close()
	}
	socks = nil
	readers.Wait()
	if err != nil {
		return res, err
	}
	var all, last []time.Duration
	for k := range records {
		ct, ok := e.times.get(conv, base+uint64(k)+1)
		if !ok {
			return res, fmt.Errorf("fan-out: no commit time for seq %d: the engine no longer logs %q with %s and %s after each commit", base+uint64(k)+1, acceptedMsg, engine.AttrConv, engine.AttrSeq)
		}
		var worst time.Duration
		for i := range subs {
			at := arrivals[i][k]
			if at.IsZero() {
				res.Missing++
				continue
			}
			d := at.Sub(ct)
			all = append(all, d)
			worst = max(worst, d)
		}
		last = append(last, worst)
	}
	res.Delivery, res.Last = summarize(all), summarize(last)
	return res, nil
}
