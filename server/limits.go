package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/engine"
)

// Limits bound what one client can hold open, so that no client can take
// the file descriptors, memory or goroutines the others need
// (docs/operations.md, Limits). A zero field takes its default; a
// negative one turns its cap off.
type Limits struct {
	// WebSocketsPerToken caps the WebSockets open with one session token
	// (default 8): more are answered 429 rate_limited.
	WebSocketsPerToken int
	// WebSocketsPerMember caps the WebSockets open for one key, over all
	// its tokens (default 32): more are answered 429 rate_limited.
	WebSocketsPerMember int
	// MaxConnections caps the connections open at once, over every
	// listener, WebSockets included: more are answered 503 unavailable.
	// Zero derives it from the file descriptor limit: 80% of it less 32.
	MaxConnections int
	// ConnectionsPerAddress caps the connections open at once from one
	// IP address, but for WebSockets once their token is checked (those
	// count against the two caps above): more are answered 429
	// rate_limited (default 128).
	ConnectionsPerAddress int
	// BodyTimeout bounds the read of one request body, from the moment
	// its handler starts reading (default 10 s; the headers have their
	// own 10 s).
	BodyTimeout time.Duration
}

// Defaults of Limits.
const (
	DefaultWebSocketsPerToken    = 8
	DefaultWebSocketsPerMember   = 32
	DefaultConnectionsPerAddress = 128
	DefaultBodyTimeout           = 10 * time.Second
	// fdReserve is what the derived MaxConnections leaves, besides a fifth
	// of the limit, for the database, upstream calls, logs and the rest.
	fdReserve = 32
	// minMaxConnections is the least the derived MaxConnections allows.
	minMaxConnections = 16
	// maxRefusing bounds the refused connections answered at once; beyond
	// it a refused connection is closed without an answer.
	maxRefusing = 32
	// refuseLinger is how long a refused connection may take to read its
	// answer before it is closed.
	refuseLinger = time.Second
)

// Log attribute keys of the limits.
const (
	attrFDSoft     = "fd_soft"
	attrFDHard     = "fd_hard"
	attrFDWas      = "fd_soft_was"
	attrMaxConns   = "max_connections"
	attrSetting    = "setting"
	attrCap        = "cap"
	attrRefused    = "refused"
	attrFailed     = "failed_accepts"
	attrListenAddr = "addr"
)

// withDefaults fills the zero fields of l; maxConns is the derived
// MaxConnections.
func (l Limits) withDefaults(maxConns int) Limits {
	if l.WebSocketsPerToken == 0 {
		l.WebSocketsPerToken = DefaultWebSocketsPerToken
	}
	if l.WebSocketsPerMember == 0 {
		l.WebSocketsPerMember = DefaultWebSocketsPerMember
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = maxConns
	}
	if l.ConnectionsPerAddress == 0 {
		l.ConnectionsPerAddress = DefaultConnectionsPerAddress
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	return l
}

// deriveMaxConnections is the default of Limits.MaxConnections for a file
// descriptor limit: 80% of it less a reserve of 32, at least 16.
func deriveMaxConnections(fdLimit uint64) int {
	const ceiling = 1 << 24 // an "unlimited" limit is not a count
	n := int(min(fdLimit, ceiling))*4/5 - fdReserve
	return max(n, minMaxConnections)
}

// connLimiter counts the connections of every listener of one server and
// refuses those over a cap when they are accepted, before they cost more
// than their file descriptor.
type connLimiter struct {
	max     int // < 0: no cap
	perAddr int // < 0: no cap
	log     *slog.Logger

	unavailable []byte // the canned answers, built once
	tooMany     []byte
	refusing    chan struct{}
	lastLog     [2]atomic.Int64 // unix nanoseconds of the last refusal logged, per cap
	refused     [2]atomic.Int64 // refusals since then

	mu     sync.Mutex
	open   int
	byAddr map[netip.Addr]int
}

// newConnLimiter raises the file descriptor limit as far as it goes, logs
// it, and returns the limits with their defaults filled in and the
// limiter that enforces the connection caps.
func newConnLimiter(l Limits, log *slog.Logger) (Limits, *connLimiter) {
	soft, hard, was, err := raiseFileLimit()
	switch {
	case err != nil:
		log.Warn("cannot read or raise the file descriptor limit; limits.max_connections has no default to derive", attrFDSoft, soft, attrFDHard, hard, engine.AttrError, err.Error())
		if l.MaxConnections == 0 {
			l.MaxConnections = -1
		}
	case was != soft:
		log.Info("raised the file descriptor limit", attrFDWas, was, attrFDSoft, soft, attrFDHard, hard)
	}
	derived := -1
	if err == nil {
		derived = deriveMaxConnections(soft)
	}
	l = l.withDefaults(derived)
	if err == nil {
		log.Info("file descriptor limit", attrFDSoft, soft, attrFDHard, hard, attrMaxConns, l.MaxConnections)
		if l.MaxConnections > 0 && uint64(l.MaxConnections) >= soft {
			log.Warn("limits.max_connections is not below the file descriptor limit: the server may run out of descriptors before it refuses a connection; lower it, or raise the limit (ulimit -n)",
				attrMaxConns, l.MaxConnections, attrFDSoft, soft)
		}
	}
	// A refusal being answered holds its descriptor for up to refuseLinger:
	// at most half of what the cap leaves free are answered at once.
	refusers := maxRefusing
	if err == nil && l.MaxConnections > 0 {
		refusers = 0
		if free := int(min(soft, 1<<24)) - l.MaxConnections; free > 0 {
			refusers = min(maxRefusing, free/2)
		}
	}
	c := &connLimiter{max: l.MaxConnections, perAddr: l.ConnectionsPerAddress, log: log,
		refusing: make(chan struct{}, refusers), byAddr: map[netip.Addr]int{}}
	c.unavailable = cannedError(twokey.Errorf(twokey.EUnavailable,
		"the server has %d connections open, the most it takes (limits.max_connections); retry in a moment", l.MaxConnections))
	c.tooMany = cannedError(twokey.Errorf(twokey.ERateLimited,
		"your address has %d connections open, the most one address may have (limits.connections_per_address); close some, or wait for them to finish", l.ConnectionsPerAddress))
	return l, c
}

// cannedError is a whole HTTP/1.1 answer carrying e in the protocol's
// error shape, written to a refused connection before its request is read.
func cannedError(e *twokey.Error) []byte {
	var b api.ErrorBody
	b.Error.Code, b.Error.Message = e.Code, e.Message
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(b)
	status := twokey.HTTPStatus(e.Code)
	var out bytes.Buffer
	fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\nContent-Type: application/json\r\nRetry-After: 1\r\nX-Content-Type-Options: nosniff\r\n\r\n",
		status, http.StatusText(status), body.Len())
	out.Write(body.Bytes())
	return out.Bytes()
}

// count returns the connections open.
func (c *connLimiter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// admit counts conn in, or says which cap refuses it (0: the server's,
// 1: the address's).
func (c *connLimiter) admit(conn net.Conn) (*limitedConn, int) {
	ip := addrKey(addrIP(conn.RemoteAddr()))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.open >= c.max {
		return nil, 0
	}
	if c.perAddr > 0 && ip.IsValid() && c.byAddr[ip] >= c.perAddr {
		return nil, 1
	}
	c.open++
	if ip.IsValid() {
		c.byAddr[ip]++
	}
	return &limitedConn{Conn: conn, lim: c, ip: ip}, -1
}

// leaveAddress takes conn out of its address's count (once).
func (c *connLimiter) leaveAddress(conn *limitedConn) {
	if conn.released || !conn.ip.IsValid() {
		return
	}
	conn.released = true
	if c.byAddr[conn.ip]--; c.byAddr[conn.ip] <= 0 {
		delete(c.byAddr, conn.ip)
	}
}

func (c *connLimiter) closed(conn *limitedConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn.closed {
		return
	}
	conn.closed = true
	c.open--
	c.leaveAddress(conn)
}

// released says a connection became an authenticated WebSocket: from now
// on it counts against its token's and key's caps, not its address's.
func (c *connLimiter) released(conn *limitedConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !conn.closed {
		c.leaveAddress(conn)
	}
}

// addrKey is what the per-address cap counts: an IPv4 address, or an
// IPv6 address's /64 (what a host is usually given, as the management
// API's bans count it), so rotating addresses inside it gains nothing.
func addrKey(ip netip.Addr) netip.Addr {
	if ip.Is6() && !ip.IsLoopback() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// limitedConn is an accepted connection the limiter counts until it is
// closed. Its flags are guarded by the limiter's mutex.
type limitedConn struct {
	net.Conn
	lim      *connLimiter
	ip       netip.Addr
	closed   bool
	released bool
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.lim.closed(c)
	return err
}

// CloseWrite lets net/http half-close before it closes (its lingering
// close after an error answer), as it does on a bare TCP connection.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// releaseAddress takes the connection under an authenticated WebSocket
// out of its address's count.
func releaseAddress(conn net.Conn) {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if lc, ok := conn.(*limitedConn); ok {
		lc.lim.released(lc)
	}
}

// limitListener counts and caps the connections it accepts and backs off
// when the process is out of file descriptors.
type limitListener struct {
	net.Listener
	lim    *connLimiter
	answer bool // plain HTTP: a refused connection gets the canned answer
	done   chan struct{}
	once   sync.Once
}

// listen wraps ln. answer says whether a refused connection is answered
// in plain HTTP (not below TLS, where it is only closed).
func (c *connLimiter) listen(ln net.Listener, answer bool) net.Listener {
	return &limitListener{Listener: ln, lim: c, answer: answer, done: make(chan struct{})}
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// fdExhausted says whether err is the process (EMFILE) or the system
// (ENFILE) out of file descriptors.
func fdExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// Accept returns the next connection under the caps. Out of file
// descriptors it does not return the error (net/http would log every
// retry): it logs once, sleeps 5 ms, doubling up to 1 s, and tries again
// until a descriptor is free or the listener is closed.
func (l *limitListener) Accept() (net.Conn, error) {
	var delay time.Duration
	failed := 0
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			if !fdExhausted(err) {
				return nil, err
			}
			if failed == 0 {
				l.lim.log.Error("out of file descriptors: not accepting connections until some close; lower limits.max_connections or raise the limit (ulimit -n)",
					attrListenAddr, l.Addr().String(), engine.AttrError, err.Error())
			}
			failed++
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop() // the next Accept returns the closed listener's error
			}
			continue
		}
		if failed > 0 {
			l.lim.log.Warn("accepting connections again", attrListenAddr, l.Addr().String(), attrFailed, failed)
			delay, failed = 0, 0
		}
		lc, refusedBy := l.lim.admit(conn)
		if lc == nil {
			l.refuse(conn, refusedBy)
			continue
		}
		return lc, nil
	}
}

// refuse answers a connection over a cap with the canned error (on plain
// HTTP) and closes it, without holding up the accept loop. The answer is
// written at once, the write side shut, and what the client sends read
// and dropped for at most refuseLinger, so that closing does not reset
// the connection before the client has read the answer.
func (l *limitListener) refuse(conn net.Conn, by int) {
	l.lim.noteRefusal(by)
	if !l.answer {
		conn.Close()
		return
	}
	select {
	case l.lim.refusing <- struct{}{}:
	default:
		conn.Close() // too many refusals at once: no answer
		return
	}
	msg := l.lim.unavailable
	if by == 1 {
		msg = l.lim.tooMany
	}
	go func() {
		defer func() { <-l.lim.refusing }()
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(refuseLinger))
		if _, err := conn.Write(msg); err != nil {
			return
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(conn, twokey.MaxEnvelopeBytes))
	}()
}

// noteRefusal logs refusals, at most one line a minute per cap.
func (c *connLimiter) noteRefusal(by int) {
	n := c.refused[by].Add(1)
	now := time.Now().UnixNano()
	last := c.lastLog[by].Load()
	if now-last < int64(time.Minute) || !c.lastLog[by].CompareAndSwap(last, now) {
		return
	}
	c.refused[by].Add(-n)
	if by == 0 {
		c.log.Warn("refusing connections: the server is at its cap", attrSetting, "limits.max_connections", attrMaxConns, c.max, attrRefused, n)
	} else {
		c.log.Warn("refusing connections from an address at its cap", attrSetting, "limits.connections_per_address", attrCap, c.perAddr, attrRefused, n)
	}
}

// bodyTimeoutKey carries Limits.BodyTimeout in a server's base context.
type bodyTimeoutKey struct{}

// baseContext returns the http.Server.BaseContext that hands d to
// readBody.
func baseContext(d time.Duration) func(net.Listener) context.Context {
	ctx := context.WithValue(context.Background(), bodyTimeoutKey{}, d)
	return func(net.Listener) context.Context { return ctx }
}

// bodyTimeout is how long readBody waits for r's body.
func bodyTimeout(r *http.Request) time.Duration {
	if d, ok := r.Context().Value(bodyTimeoutKey{}).(time.Duration); ok && d > 0 {
		return d
	}
	return DefaultBodyTimeout
}

// Connections returns the connections the server holds open, WebSockets
// included, over every listener.
func (d *Daemon) Connections() int { return d.limits.count() }

// Limits returns the limits in force, defaults filled in.
func (d *Daemon) Limits() Limits { return d.opts.Limits }

// setLimits applies l's WebSocket caps (before the API serves).
func (a *API) setLimits(l Limits) {
	a.ws.perToken, a.ws.perMember = l.WebSocketsPerToken, l.WebSocketsPerMember
}
