package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/engine"
)

// WebSocket timing.
const (
	wsWriteWait  = 10 * time.Second // a write that takes longer drops the socket
	wsPongWait   = 60 * time.Second
	wsPingPeriod = 25 * time.Second
	wsBatch      = 256 // records read per pass per subscription
)

// wsHub owns every live WebSocket so that shutdown can close each with a
// close frame (http.Server.Shutdown does not touch hijacked connections).
type wsHub struct {
	eng      *engine.Engine
	log      *slog.Logger
	upgrader websocket.Upgrader

	frames frameCache

	mu    sync.Mutex
	conns map[*wsConn]struct{}
	shut  bool
}

func newWSHub(eng *engine.Engine, log *slog.Logger) *wsHub {
	return &wsHub{eng: eng, log: log, conns: map[*wsConn]struct{}{}, frames: newFrameCache(wsFrameCacheBytes),
		upgrader: websocket.Upgrader{
			ReadBufferSize: 1024, WriteBufferSize: 1024, WriteBufferPool: &sync.Pool{},
			// Tokens, not cookies, authenticate: a cross-origin page has no token.
			CheckOrigin: func(*http.Request) bool { return true },
		}}
}

// Frames (PROTOCOL 7).
type clientFrame struct {
	Op           string          `json:"op"`
	Conversation string          `json:"conversation"`
	After        uint64          `json:"after"`
	Ref          json.RawMessage `json:"ref"`
	Envelope     json.RawMessage `json:"envelope"`
}

type serverFrame struct {
	Op           string               `json:"op"`
	Conversation string               `json:"conversation,omitempty"`
	Record       *conversation.Record `json:"record,omitempty"`
	Ref          json.RawMessage      `json:"ref,omitempty"`
	Seq          uint64               `json:"seq,omitempty"`
	Error        *frameError          `json:"error,omitempty"`
}

type frameError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type wsConn struct {
	hub  *wsHub
	ws   *websocket.Conn
	key  string
	wake chan struct{}
	ctrl chan *serverFrame // pointers: a full queue of 64 costs 512 bytes, not 5 KiB
	done chan struct{}
	once sync.Once

	mu   sync.Mutex
	subs map[string]*wsSub
}

type wsSub struct {
	conv   string
	cursor uint64
	sub    *conversation.Sub
}

func (h *wsHub) serve(w http.ResponseWriter, r *http.Request) {
	tok := bearer(r)
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	key, err := h.eng.CheckToken(tok)
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	h.mu.Lock()
	if h.shut {
		h.mu.Unlock()
		writeError(w, h.log, twokey.Errorf(twokey.EUnavailable, "the server is shutting down"))
		return
	}
	h.mu.Unlock()
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &wsConn{hub: h, ws: ws, key: key, wake: make(chan struct{}, 1), ctrl: make(chan *serverFrame, 64),
		done: make(chan struct{}), subs: map[string]*wsSub{}}
	h.mu.Lock()
	if h.shut {
		h.mu.Unlock()
		ws.Close()
		return
	}
	h.conns[c] = struct{}{}
	h.mu.Unlock()
	ws.SetReadLimit(twokey.MaxEnvelopeBytes + 4096)
	go c.writeLoop()
	// The reader gets its own goroutine and the handler returns, so that
	// net/http lets go of the request's buffers and state (about 13 KiB)
	// for the life of an idle socket.
	go c.readLoop()
}

func (h *wsHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *wsHub) closeAll() {
	h.mu.Lock()
	h.shut = true
	conns := make([]*wsConn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
}

// closeWith sends a close frame (best effort) and ends the connection.
func (c *wsConn) closeWith(code int, text string) {
	c.once.Do(func() {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
		close(c.done)
		c.ws.Close()
		c.mu.Lock()
		for _, s := range c.subs {
			c.hub.eng.Hub().Unsubscribe(s.sub)
		}
		c.mu.Unlock()
		c.hub.mu.Lock()
		delete(c.hub.conns, c)
		c.hub.mu.Unlock()
	})
}

// send queues a control frame; a client that does not read them is dropped.
func (c *wsConn) send(f serverFrame) {
	select {
	case c.ctrl <- &f:
	case <-c.done:
	default:
		c.closeWith(websocket.ClosePolicyViolation, "not reading")
	}
}

func (c *wsConn) fail(ref json.RawMessage, err error) {
	c.send(serverFrame{Op: "error", Ref: ref, Error: &frameError{Code: twokey.ErrorCode(err), Message: twokey.ErrorMessage(err)}})
}

func (c *wsConn) readLoop() {
	defer c.closeWith(websocket.CloseNormalClosure, "")
	c.ws.SetReadDeadline(time.Now().Add(wsPongWait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(wsPongWait)) })
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(wsPongWait))
		var f clientFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.fail(nil, twokey.Errorf(twokey.EBadEnvelope, "frame is not JSON: %v", err))
			continue
		}
		switch f.Op {
		case "subscribe":
			if err := c.hub.eng.CheckMember(f.Conversation, c.key); err != nil {
				c.fail(f.Ref, err)
				continue
			}
			c.mu.Lock()
			if old := c.subs[f.Conversation]; old != nil {
				c.hub.eng.Hub().Unsubscribe(old.sub)
			}
			c.subs[f.Conversation] = &wsSub{conv: f.Conversation, cursor: f.After, sub: c.hub.eng.Hub().Subscribe(f.Conversation, c.wake)}
			c.mu.Unlock()
		case "unsubscribe":
			c.mu.Lock()
			if old := c.subs[f.Conversation]; old != nil {
				c.hub.eng.Hub().Unsubscribe(old.sub)
				delete(c.subs, f.Conversation)
			}
			c.mu.Unlock()
		case "post":
			c.post(f)
		case "ping":
			c.send(serverFrame{Op: "pong", Ref: f.Ref})
		default:
			c.fail(f.Ref, twokey.Errorf(twokey.EBadEnvelope, "unknown op %q; use subscribe, post or unsubscribe", f.Op))
		}
	}
}

func (c *wsConn) post(f clientFrame) {
	if len(f.Envelope) == 0 {
		c.fail(f.Ref, twokey.Errorf(twokey.EBadEnvelope, "post needs an envelope"))
		return
	}
	m, err := conversation.Open(f.Envelope)
	if err != nil {
		c.fail(f.Ref, err)
		return
	}
	var rec conversation.Record
	if m.Kind == conversation.KindConversationCreate {
		rec, err = c.hub.eng.Create(f.Envelope)
	} else {
		rec, err = c.hub.eng.PostMessage(m.Header.Conversation, m)
	}
	if err != nil {
		c.fail(f.Ref, err)
		return
	}
	c.send(serverFrame{Op: "ack", Ref: f.Ref, Seq: rec.Seq, Conversation: m.Header.Conversation})
}

func (c *wsConn) write(f serverFrame) bool {
	c.ws.SetWriteDeadline(time.Now().Add(wsWriteWait))
	if err := c.ws.WriteJSON(f); err != nil {
		c.closeWith(websocket.CloseGoingAway, "write failed")
		return false
	}
	return true
}

// writeRecord sends a record frame, encoded once for every socket that
// sends it (fan-out), in one write.
func (c *wsConn) writeRecord(conv string, r *conversation.Record) bool {
	data, err := c.hub.frames.get(conv, r)
	if err != nil {
		c.fail(nil, err)
		return true
	}
	c.ws.SetWriteDeadline(time.Now().Add(wsWriteWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		c.closeWith(websocket.CloseGoingAway, "write failed")
		return false
	}
	return true
}

// wsFrameCacheBytes bounds the record frames kept encoded.
const wsFrameCacheBytes = 8 << 20

// frameCache keeps the JSON of recent record frames, so that a record
// going to many subscribers is encoded once, not once per socket. A record
// never changes once committed, so (conversation, seq) names its frame.
// The oldest frames leave first once the cache holds more than max bytes.
type frameCache struct {
	max int

	mu    sync.Mutex
	m     map[frameKey]*cachedFrame
	order []frameKey // insertion order, oldest first
	bytes int
}

type frameKey struct {
	conv string
	seq  uint64
}

type cachedFrame struct {
	once sync.Once
	data []byte
	err  error
}

func newFrameCache(max int) frameCache {
	return frameCache{max: max, m: map[frameKey]*cachedFrame{}}
}

// get returns the frame of record r of conv; concurrent callers for the
// same record wait for one encoding.
func (fc *frameCache) get(conv string, r *conversation.Record) ([]byte, error) {
	k := frameKey{conv, r.Seq}
	fc.mu.Lock()
	f := fc.m[k]
	if f == nil {
		f = &cachedFrame{}
		fc.m[k] = f
		fc.order = append(fc.order, k)
	}
	fc.mu.Unlock()
	fresh := false
	f.once.Do(func() {
		fresh = true
		f.data, f.err = json.Marshal(serverFrame{Op: "record", Conversation: conv, Record: r})
	})
	if fresh {
		fc.mu.Lock()
		if fc.m[k] == f { // not evicted while it was being encoded
			fc.bytes += len(f.data)
		}
		for fc.bytes > fc.max && len(fc.order) > 1 {
			old := fc.order[0]
			fc.order = fc.order[1:]
			if of := fc.m[old]; of != nil {
				fc.bytes -= len(of.data)
				delete(fc.m, old)
			}
		}
		fc.mu.Unlock()
	}
	return f.data, f.err
}

// writeLoop is the one writer of the socket: control frames first, then
// each subscription's records after its cursor, in seq order.
func (c *wsConn) writeLoop() {
	ping := time.NewTicker(wsPingPeriod)
	defer ping.Stop()
	for {
		// Drain control frames.
		for drained := false; !drained; {
			select {
			case f := <-c.ctrl:
				if !c.write(*f) {
					return
				}
			default:
				drained = true
			}
		}
		progressed, ok := c.pushRecords()
		if !ok {
			return
		}
		if progressed {
			continue
		}
		select {
		case <-c.done:
			return
		case f := <-c.ctrl:
			if !c.write(*f) {
				return
			}
		case <-c.wake:
		case <-ping.C:
			c.ws.SetWriteDeadline(time.Now().Add(wsWriteWait))
			if err := c.ws.WriteMessage(websocket.PingMessage, nil); err != nil {
				c.closeWith(websocket.CloseGoingAway, "ping failed")
				return
			}
		}
	}
}

// pushRecords sends one batch per subscription; progressed says whether
// anything was sent.
func (c *wsConn) pushRecords() (progressed, ok bool) {
	c.mu.Lock()
	subs := make([]*wsSub, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		if s.cursor >= c.hub.eng.Hub().Last(s.conv) {
			continue // caught up
		}
		// Membership can change while subscribed: a removed member stops
		// receiving at once.
		if err := c.hub.eng.CheckMember(s.conv, c.key); err != nil {
			c.mu.Lock()
			if c.subs[s.conv] == s {
				c.hub.eng.Hub().Unsubscribe(s.sub)
				delete(c.subs, s.conv)
			}
			c.mu.Unlock()
			c.fail(nil, err)
			continue
		}
		recs, err := c.hub.eng.ReadRecords(s.conv, s.cursor, wsBatch)
		if err != nil {
			c.fail(nil, err)
			continue
		}
		for i := range recs {
			if !c.writeRecord(s.conv, &recs[i]) {
				return progressed, false
			}
			c.mu.Lock()
			s.cursor = recs[i].Seq
			c.mu.Unlock()
			progressed = true
		}
	}
	return progressed, true
}

func nonNilRecords(r []conversation.Record) []conversation.Record {
	if r == nil {
		return []conversation.Record{}
	}
	return r
}
