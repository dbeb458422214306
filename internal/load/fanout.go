package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/twokey/twokey/conversation"
)

// fanoutResult is how long records took from their commit to each of
// subs live WebSocket subscribers.
type fanoutResult struct {
	Subs     int
	Stalled  bool // one more subscriber whose socket the server could not write to
	Records  int
	Delivery dist // commit -> arrival, over every (record, subscriber); a missing one counts as slower than any
	Last     dist // commit -> arrival at the last subscriber, over records
	Missing  int  // deliveries that did not arrive within the wait
	Negative int  // arrivals timed before their commit (none, unless the clock is wrong)

	// With a stalled subscriber: the record frames queued to it before
	// the measured records (more than the kernel's socket buffers hold,
	// so the server's write to it blocks), and whether and when the
	// server dropped it (its write deadline), counted from the end of
	// that queueing.
	Ballast      int64
	Dropped      bool
	DroppedAfter time.Duration
	DropChecked  bool // false in the quick run, which does not wait for it
}

// fanoutWait bounds the wait for one record to reach every subscriber;
// fanoutBudget bounds one run's posting.
const (
	fanoutWait   = 5 * time.Second
	fanoutBudget = 30 * time.Second
	// dropWait is how long a stalled subscriber is given to be dropped:
	// the server's write deadline (10 s) and a margin. The quick run
	// does not wait.
	defaultDropWait = 16 * time.Second
)

// fanoutConvs creates the conversation the fan-out is measured on (every
// signer of the pool is a member) and the ballast conversation, where
// only the stalled subscriber listens.
func (e *env) fanoutConvs(ctx context.Context) (conv, ballast string, err error) {
	var members []conversation.Member
	for _, id := range e.pool[1:] {
		members = append(members, conversation.Member{Key: id.KeyID(), Name: id.Name})
	}
	if conv, err = e.createConv(ctx, "fanout", members); err != nil {
		return "", "", err
	}
	ballast, err = e.createConv(ctx, "ballast", nil)
	return conv, ballast, err
}

func (e *env) createConv(ctx context.Context, name string, members []conversation.Member) (string, error) {
	rec, err := e.clients[0].CreateConversation(ctx, name, members)
	if err != nil {
		return "", err
	}
	var p conversation.CreatePayload
	err = json.Unmarshal(rec.Body, &p)
	return p.Conversation, err
}

// ballastTarget is how many bytes of record frames are queued to a
// stalled subscriber: more than the largest TCP send buffer the kernel
// grows to (tcp_wmem's maximum; the stalled client's receive buffer is
// shrunk to almost nothing), so the server's write to it must block.
func ballastTarget() int64 {
	wmax := int64(4 << 20)
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			if n, err := strconv.ParseInt(f[2], 10, 64); err == nil && n > 0 {
				wmax = n
			}
		}
	}
	return wmax + 2<<20
}

// fanout opens subs subscribers (and, with stalled, one more that never
// reads and that the server has been made to block on), posts records
// chat messages one at a time, each once the previous one has reached
// every subscriber, and measures from each record's durable commit (the
// engine's hook, before the publish) to its arrival at each subscriber.
func (e *env) fanout(ctx context.Context, conv, ballast string, subs int, stalled bool, records int, ballastBytes int64, dropWait time.Duration) (fanoutResult, error) {
	res := fanoutResult{Subs: subs, Stalled: stalled}
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
	var raw net.Conn
	defer func() {
		for _, ws := range socks {
			ws.Close()
		}
		if raw != nil {
			raw.Close()
		}
	}()
	var readers sync.WaitGroup
	for i := range subs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
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
	want := subs
	if stalled {
		// The stalled subscriber follows the ballast conversation first,
		// then the measured one; it never reads a byte.
		tok, err := e.clients[0].Token(ctx)
		if err != nil {
			return res, err
		}
		if raw, err = rawSocket(strings.TrimPrefix(e.base, "http://"), tok, ballast, hub.Last(ballast), 1024); err != nil {
			return res, err
		}
		if err := rawSubscribe(raw, conv, base); err != nil {
			return res, err
		}
		want++
	}
	// Wait until the server has every subscription.
	for deadline := time.Now().Add(10 * time.Second); hub.Subscribers(conv) < want || (stalled && hub.Subscribers(ballast) < 1); {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("fan-out: only %d of %d subscriptions registered", hub.Subscribers(conv), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var ballastEnd time.Time
	if stalled {
		if ballastBytes == 0 {
			ballastBytes = ballastTarget()
		}
		n, err := e.postBallast(ctx, ballast, ballastBytes)
		res.Ballast = n
		if err != nil {
			return res, err
		}
		ballastEnd = time.Now()
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
		deadline := time.Now().Add(fanoutBudget)
		for k := range records {
			if err = ctx.Err(); err != nil || time.Now().After(deadline) {
				return
			}
			var seq uint64
			if seq, err = e.post(conv, bodies[k]); err != nil {
				return
			}
			res.Records++
			if seq != base+uint64(k)+1 {
				err = fmt.Errorf("fan-out: record landed at seq %d, want %d (is someone else posting?)", seq, base+uint64(k)+1)
				return
			}
			select {
			case <-signal[k]:
			case <-time.After(fanoutWait):
			case <-ctx.Done():
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
	if stalled && dropWait > 0 {
		// The server must drop the subscriber it cannot write to, and
		// only that one: it alone follows the ballast conversation.
		res.DropChecked = true
		for deadline := ballastEnd.Add(dropWait); ; time.Sleep(10 * time.Millisecond) {
			if hub.Subscribers(ballast) == 0 {
				res.Dropped, res.DroppedAfter = true, time.Since(ballastEnd)
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
		}
	}
	var all, last []time.Duration
	for k := range res.Records {
		ct, ok := e.times.get(conv, base+uint64(k)+1)
		if !ok {
			return res, fmt.Errorf("fan-out: no commit time for seq %d: the engine's OnCommitted hook did not run", base+uint64(k)+1)
		}
		var worst time.Duration
		for i := range subs {
			d := missed
			if at := arrivals[i][k]; at.IsZero() {
				res.Missing++
			} else if d = at.Sub(ct); d < 0 {
				res.Negative++
			}
			all = append(all, d)
			worst = max(worst, d)
		}
		last = append(last, worst)
	}
	res.Delivery, res.Last = summarize(all), summarize(last)
	return res, nil
}

// postBallast posts large chat messages to conv until at least target
// bytes of record frames are queued for its subscribers, and returns how
// many.
func (e *env) postBallast(ctx context.Context, conv string, target int64) (int64, error) {
	text := strings.Repeat("ballast ", 15000/8)
	var n int64
	for i := 0; n < target; i++ {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		body, _ := signed(e.pool[0], conversation.KindChatMessage, conversation.ChatPayload{
			Header: conversation.Header{Conversation: conv, CreatedAt: conversation.FormatTime(time.Now())},
			Text:   fmt.Sprintf("%d %s", i, text)})
		rec, err := e.postRaw(conv, body)
		if err != nil {
			return n, fmt.Errorf("fan-out ballast: %w", err)
		}
		// The frame is the record with a few bytes around it.
		n += int64(len(rec)) + int64(len(conv)) + 40
	}
	return n, nil
}
