package server

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
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

// CloseTokenExpired is the close code (private use, RFC 6455 7.4.2) of a
// WebSocket whose bearer token has expired; the close frame's reason says
// to open a new session and reconnect.
const CloseTokenExpired = 4001

const closeTokenExpiredText = "session token expired: open a new session (POST /v1/sessions) and reconnect"

// wsHub owns every live WebSocket so that shutdown can close each with a
// close frame (http.Server.Shutdown does not touch hijacked connections).
type wsHub struct {
	eng      *engine.Engine
	log      *slog.Logger
	upgrader websocket.Upgrader

	frames frameCache

	// The caps on sockets per session token and per key (Limits); < 0
	// is no cap.
	perToken, perMember int

	mu       sync.Mutex
	conns    map[*wsConn]struct{}
	byToken  map[[32]byte]int // sockets open per token, by its SHA-256
	byMember map[string]int   // sockets open per key id
	shut     bool
}

func newWSHub(eng *engine.Engine, log *slog.Logger) *wsHub {
	return &wsHub{eng: eng, log: log, conns: map[*wsConn]struct{}{}, frames: newFrameCache(wsFrameCacheBytes),
		perToken: DefaultWebSocketsPerToken, perMember: DefaultWebSocketsPerMember,
		byToken: map[[32]byte]int{}, byMember: map[string]int{},
		upgrader: websocket.Upgrader{
			ReadBufferSize: 1024, WriteBufferSize: 1024, WriteBufferPool: &sync.Pool{},
			// Tokens, not cookies, authenticate: a cross-origin page has no token.
			CheckOrigin: func(*http.Request) bool { return true },
		}}
}

type wsConn struct {
	hub  *wsHub
	ws   *websocket.Conn
	key  string
	tok  [32]byte // the SHA-256 of its token, for the per-token cap
	wake chan struct{}
	ctrl chan *api.ServerFrame // pointers: a full queue of 64 costs 512 bytes, not 5 KiB
	done chan struct{}
	once sync.Once

	mu     sync.Mutex
	subs   map[string]*wsSub
	expiry func() bool // stops the token-expiry timer
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
	key, until, err := h.eng.CheckTokenUntil(tok)
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	th := sha256.Sum256([]byte(tok))
	h.mu.Lock()
	if h.shut {
		h.mu.Unlock()
		writeError(w, h.log, twokey.Errorf(twokey.EUnavailable, "the server is shutting down"))
		return
	}
	// The socket's place under its token's and key's caps is taken before
	// the upgrade and given back when it closes.
	if err := h.reserve(th, key); err != nil {
		h.mu.Unlock()
		h.log.Debug("websocket refused", engine.AttrCode, twokey.ErrorCode(err), engine.AttrError, err.Error())
		writeError(w, h.log, err)
		return
	}
	h.mu.Unlock()
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.mu.Lock()
		h.unreserve(th, key)
		h.mu.Unlock()
		return // the upgrader has answered
	}
	c := &wsConn{hub: h, ws: ws, key: key, tok: th, wake: make(chan struct{}, 1), ctrl: make(chan *api.ServerFrame, 64),
		done: make(chan struct{}), subs: map[string]*wsSub{}}
	h.mu.Lock()
	if h.shut {
		h.unreserve(th, key)
		h.mu.Unlock()
		ws.Close()
		return
	}
	h.conns[c] = struct{}{}
	h.mu.Unlock()
	// Authenticated: the connection leaves its address's count.
	releaseAddress(ws.NetConn())
	// The socket lives as long as its token, on the engine's clock: then it
	// closes with CloseTokenExpired, and the client reconnects with a new
	// session.
	clk := h.eng.Clock()
	stop := clk.AfterFunc(until.Sub(clk.Now()), func() { c.closeWith(CloseTokenExpired, closeTokenExpiredText) })
	c.mu.Lock()
	c.expiry = stop
	c.mu.Unlock()
	ws.SetReadLimit(twokey.MaxEnvelopeBytes + 4096)
	go c.writeLoop()
	// The reader gets its own goroutine and the handler returns, so that
	// net/http lets go of the request's buffers and state (about 13 KiB)
	// for the life of an idle socket.
	go c.readLoop()
}

// reserve counts a socket of token th and key in, or refuses it with
// rate_limited when either is at its cap. h.mu is held.
func (h *wsHub) reserve(th [32]byte, key string) error {
	if h.perToken > 0 && h.byToken[th] >= h.perToken {
		return twokey.Errorf(twokey.ERateLimited, "this session token already has %d WebSockets open, the most one token may have (limits.websockets_per_token); close one, or subscribe to several conversations on one socket", h.perToken)
	}
	if h.perMember > 0 && h.byMember[key] >= h.perMember {
		return twokey.Errorf(twokey.ERateLimited, "key %s already has %d WebSockets open, the most one key may have over all its sessions (limits.websockets_per_member); close some of them", key, h.perMember)
	}
	h.byToken[th]++
	h.byMember[key]++
	return nil
}

// unreserve gives back what reserve took. h.mu is held.
func (h *wsHub) unreserve(th [32]byte, key string) {
	if h.byToken[th]--; h.byToken[th] <= 0 {
		delete(h.byToken, th)
	}
	if h.byMember[key]--; h.byMember[key] <= 0 {
		delete(h.byMember, key)
	}
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
		if c.expiry != nil {
			c.expiry()
		}
		c.mu.Unlock()
		c.hub.mu.Lock()
		delete(c.hub.conns, c)
		c.hub.unreserve(c.tok, c.key)
		c.hub.mu.Unlock()
	})
}

// send queues a control frame; a client that does not read them is dropped.
func (c *wsConn) send(f api.ServerFrame) {
	select {
	case c.ctrl <- &f:
	case <-c.done:
	default:
		c.closeWith(websocket.ClosePolicyViolation, "not reading")
	}
}

// fail sends an error frame. ref is the client's frame's ref, if it had
// one; conv is the conversation the error is about, when one is known
// (a refused subscribe, a membership lost while subscribed).
func (c *wsConn) fail(ref json.RawMessage, conv string, err error) {
	c.send(api.ServerFrame{Op: "error", Ref: ref, Conversation: conv, Error: &api.ErrorDetail{Code: twokey.ErrorCode(err), Message: twokey.ErrorMessage(err)}})
}

// Client frame ops.
const (
	opSubscribe   = "subscribe"
	opUnsubscribe = "unsubscribe"
	opPost        = "post"
	opPing        = "ping"
)

// parseClientFrame decodes one client frame and checks what every frame of
// its op needs. An error is bad_envelope; the frame it returns with one
// still carries whatever ref and conversation could be read, for the error
// frame.
func parseClientFrame(data []byte) (api.ClientFrame, error) {
	var f api.ClientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(data) {
			return api.ClientFrame{}, twokey.Errorf(twokey.EBadEnvelope, "frame is not JSON (at byte %d); send one JSON object per text frame", errOffset(err))
		}
		// Valid JSON of the wrong shape: Unmarshal has filled the fields it
		// could, so the error frame keeps the ref.
		return f, twokey.Errorf(twokey.EBadEnvelope, "frame is not a client frame: %s; send {\"op\": \"subscribe\", \"conversation\": ID, \"after\": N} or {\"op\": \"post\", \"ref\": ..., \"envelope\": {...}}", typeProblem(err))
	}
	switch f.Op {
	case opSubscribe, opUnsubscribe:
		if f.Conversation == "" {
			return f, twokey.Errorf(twokey.EBadEnvelope, "%s needs a conversation", f.Op)
		}
	case opPost:
		if len(f.Envelope) == 0 || string(f.Envelope) == "null" {
			return f, twokey.Errorf(twokey.EBadEnvelope, "post needs an envelope")
		}
	case opPing:
	default:
		op := f.Op
		if len(op) > 32 {
			op = op[:32] + "..."
		}
		return f, twokey.Errorf(twokey.EBadEnvelope, "unknown op %q; use subscribe, unsubscribe, post or ping", op)
	}
	return f, nil
}

// errOffset is where a JSON syntax error was found, or 0.
func errOffset(err error) int64 {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return syn.Offset
	}
	return 0
}

// typeProblem says which field of a frame has the wrong type, without
// echoing the value.
func typeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		want := "a string"
		switch te.Type.Kind() {
		case reflect.Uint64:
			want = "a non-negative integer"
		case reflect.Slice:
			want = "a JSON value" // ref and envelope take any
		}
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, want, te.Value)
	}
	if errors.As(err, &te) {
		return fmt.Sprintf("it must be a JSON object, not %s", te.Value)
	}
	return "it does not decode"
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
		f, err := parseClientFrame(data)
		if err != nil {
			c.fail(f.Ref, f.Conversation, err)
			continue
		}
		switch f.Op {
		case opSubscribe:
			if err := c.hub.eng.CheckMember(f.Conversation, c.key); err != nil {
				c.fail(f.Ref, f.Conversation, err)
				continue
			}
			c.mu.Lock()
			if old := c.subs[f.Conversation]; old != nil {
				c.hub.eng.Hub().Unsubscribe(old.sub)
			}
			c.subs[f.Conversation] = &wsSub{conv: f.Conversation, cursor: f.After, sub: c.hub.eng.Hub().Subscribe(f.Conversation, c.wake)}
			c.mu.Unlock()
		case opUnsubscribe:
			c.mu.Lock()
			if old := c.subs[f.Conversation]; old != nil {
				c.hub.eng.Hub().Unsubscribe(old.sub)
				delete(c.subs, f.Conversation)
			}
			c.mu.Unlock()
		case opPost:
			c.post(f)
		case opPing:
			c.send(api.ServerFrame{Op: "pong", Ref: f.Ref})
		}
	}
}

func (c *wsConn) post(f api.ClientFrame) {
	m, err := conversation.Open(f.Envelope)
	if err != nil {
		c.fail(f.Ref, "", err)
		return
	}
	var rec conversation.Record
	if m.Kind == conversation.KindConversationCreate {
		rec, err = c.hub.eng.Create(f.Envelope)
	} else {
		rec, err = c.hub.eng.PostMessage(m.Header.Conversation, m)
	}
	if err != nil {
		c.fail(f.Ref, m.Header.Conversation, err)
		return
	}
	c.send(api.ServerFrame{Op: "ack", Ref: f.Ref, Seq: rec.Seq, Conversation: m.Header.Conversation})
}

func (c *wsConn) write(f api.ServerFrame) bool {
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
		c.fail(nil, conv, err)
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
		f.data, f.err = json.Marshal(api.ServerFrame{Op: "record", Conversation: conv, Record: r})
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
			c.fail(nil, s.conv, err)
			continue
		}
		recs, err := c.hub.eng.ReadRecords(s.conv, s.cursor, wsBatch)
		if err != nil {
			c.fail(nil, s.conv, err)
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
