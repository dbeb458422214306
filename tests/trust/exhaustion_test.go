package trust_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/internal/testutil"
)

// Resource exhaustion by one client (issue 15): each attack holds open
// what one client can, against a real server on loopback, and checks that
// the extra is refused with the right answer and that the other members
// keep working meanwhile.
func init() { attackSets = append(attackSets, exhaustionAttacks) }

func exhaustionAttacks() []attack {
	return []attack{
		{"a socket flood from one token", "docs/operations.md (limits): at most 8 WebSockets per session token and 32 per key; more are 429 rate_limited",
			"server/ws.go wsHub.reserve", socketFloodFromOneToken},
		{"a connection flood past the file limit", "docs/operations.md (limits): at most limits.max_connections connections (80% of the descriptor limit less 32); more are 503 unavailable",
			"server/limits.go limitListener.Accept, connLimiter.admit", connectionFloodPastTheFileLimit},
		{"a slow body", "docs/operations.md (limits): a body must arrive within limits.body_timeout (10 s) of its headers; a slower one is cut",
			"server/http.go readBody (SetReadDeadline)", slowBody},
		{"a connection flood from one address", "docs/operations.md (limits): at most 128 connections per address but for authenticated WebSockets; more are 429 rate_limited",
			"server/limits.go connLimiter.admit, releaseAddress", connectionFloodFromOneAddress},
		{"running out of file descriptors", "docs/operations.md (limits): the soft descriptor limit is raised to the hard one; out of descriptors, accepting backs off (5 ms to 1 s) and logs once",
			"server/fdlimit_unix.go raiseFileLimit; server/limits.go limitListener.Accept", outOfFileDescriptors},
	}
}

// withLimits runs the server with the default limits as set changes them.
func withLimits(set func(*config.Limits)) testutil.Option {
	return func(o *testutil.Options) { set(&o.Limits) }
}

func wsURL(fx *fixture) string { return "ws" + strings.TrimPrefix(fx.srv.URL(), "http") + "/v1/ws" }

func hostOf(fx *fixture) string { return strings.TrimPrefix(fx.srv.URL(), "http://") }

// refusal is the protocol's error body.
type refusal struct {
	Error struct{ Code, Message string }
}

// dialWS opens a WebSocket with tok; a refused handshake returns its
// status and error body.
func dialWS(ctx context.Context, t *testing.T, url, tok string) (*websocket.Conn, int, refusal) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
	ws, resp, err := d.DialContext(ctx, url, http.Header{"Authorization": {"Bearer " + tok}})
	if err == nil {
		t.Cleanup(func() { ws.Close() })
		return ws, 101, refusal{}
	}
	if resp == nil {
		t.Fatalf("websocket dial: %v", err)
	}
	var r refusal
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return nil, resp.StatusCode, r
}

// wantRefused checks a refusal's status, code and that its message names
// the setting.
func wantRefused(t *testing.T, what string, status int, r refusal, wantStatus int, code, setting string) {
	t.Helper()
	if status != wantStatus || r.Error.Code != code || !strings.Contains(r.Error.Message, setting) {
		t.Fatalf("%s: got %d %q %q, want %d %s naming %s", what, status, r.Error.Code, r.Error.Message, wantStatus, code, setting)
	}
}

// awaitRecord reads frames from ws until the record seq of conv.
func awaitRecord(t *testing.T, ws *websocket.Conn, conv string, seq uint64) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var f struct {
			Op           string
			Conversation string
			Record       *conversation.Record
			Error        *struct{ Code, Message string }
		}
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("waiting for record %d: %v", seq, err)
		}
		if f.Op == "error" {
			t.Fatalf("error frame: %+v", f.Error)
		}
		if f.Op == "record" && f.Conversation == conv && f.Record != nil && f.Record.Seq >= seq {
			return
		}
	}
}

// subscribe subscribes ws to conv from its start.
func subscribe(t *testing.T, ws *websocket.Conn, conv string) {
	t.Helper()
	if err := ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": conv, "after": 0}); err != nil {
		t.Fatal(err)
	}
}

// othersStillWork: member i posts over HTTP and reads it back, and a
// WebSocket of theirs (when not nil) receives it.
func othersStillWork(t *testing.T, fx *fixture, i int, ws *websocket.Conn, text string) {
	t.Helper()
	ctx := testutil.Ctx(t)
	rec, err := fx.cs[i].Say(ctx, fx.conv, text)
	if err != nil {
		t.Fatalf("another member cannot post during the attack: %v", err)
	}
	recs, err := fx.cs[i].Records(ctx, fx.conv, rec.Seq-1, 10)
	if err != nil || len(recs) == 0 || recs[0].Seq != rec.Seq {
		t.Fatalf("another member cannot read during the attack: %v %v", recs, err)
	}
	if ws != nil {
		awaitRecord(t, ws, fx.conv, rec.Seq)
	}
}

// until polls cond (a real socket's state) every 10 ms for at most 20 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// getOn sends GET path on c and reads the answer (at most 20 s).
func getOn(t *testing.T, c net.Conn, path string) (int, refusal) {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: twokey\r\n\r\n", path); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return readAnswer(t, c)
}

// readAnswer reads one HTTP answer from c and its error body, if any.
func readAnswer(t *testing.T, c net.Conn) (int, refusal) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	var r refusal
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, &r)
	return resp.StatusCode, r
}

// slowHead is the start of an envelope POST that announces 60,000 bytes.
func slowHead(fx *fixture) string {
	return "POST /v1/conversations/" + fx.conv + "/messages HTTP/1.1\r\nHost: twokey\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"
}

// socketFloodFromOneToken: one member opens more WebSockets than the caps
// with one token, then over several sessions. The extra are refused 429
// naming the setting, the server holds no more than the caps, the other
// member still subscribes, posts and reads, and a closed socket gives its
// place back.
func socketFloodFromOneToken(t *testing.T) {
	// A token names its key and its expiry, to the second: sessions of
	// one key are distinct tokens once the (fake) clock has moved.
	fx := newFakeFixture(t, 2, 2) // the default caps
	ctx := testutil.Ctx(t)
	if l := fx.srv.Limits(); l.WebSocketsPerToken != 8 || l.WebSocketsPerMember != 32 {
		t.Fatalf("default caps %d per token, %d per member; want 8 and 32", l.WebSocketsPerToken, l.WebSocketsPerMember)
	}
	url := wsURL(fx)
	tok, err := fx.cs[1].Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var first []*websocket.Conn
	for i := range 12 {
		ws, status, r := dialWS(ctx, t, url, tok)
		if i < 8 {
			if ws == nil {
				t.Fatalf("socket %d of one token refused: %d %+v", i+1, status, r)
			}
			first = append(first, ws)
			continue
		}
		wantRefused(t, fmt.Sprintf("socket %d of one token", i+1), status, r, 429, twokey.ERateLimited, "limits.websockets_per_token")
	}
	// New sessions of the same key: 32 sockets in all, then the key's cap.
	newToken := func() string {
		t.Helper()
		fx.clk.Advance(time.Second)
		tok, err := testutil.Client(fx.srv.URL(), fx.ids[1], fx.clk).Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for s := 1; s < 4; s++ {
		tok := newToken()
		for i := range 8 {
			if ws, status, r := dialWS(ctx, t, url, tok); ws == nil {
				t.Fatalf("session %d, socket %d refused: %d %+v", s+1, i+1, status, r)
			}
		}
	}
	_, status, r := dialWS(ctx, t, url, newToken())
	wantRefused(t, "socket 33 of one key", status, r, 429, twokey.ERateLimited, "limits.websockets_per_member")
	if n := fx.srv.API().WebSockets(); n != 32 {
		t.Fatalf("the server holds %d WebSockets, want the key's 32", n)
	}
	// The other member is not affected: a socket, a post, a read.
	ws, err := fx.cs[0].Dial(ctx)
	if err != nil {
		t.Fatalf("the other member's socket: %v", err)
	}
	defer ws.Close()
	subscribe(t, ws, fx.conv)
	othersStillWork(t, fx, 0, ws, "the flood does not reach me")
	// A closed socket gives its place back, to its token and its key.
	first[0].Close()
	until(t, "the server to let go of a closed socket", func() bool { return fx.srv.API().WebSockets() == 32 })
	if ws, status, r := dialWS(ctx, t, url, tok); ws == nil {
		t.Fatalf("a socket after one closed: %d %+v", status, r)
	}
}

// connectionFloodPastTheFileLimit: raw connections (as many as one
// client can open) past limits.max_connections are answered 503 at once,
// in the protocol's error shape, without reading their request; the server
// holds no more than the cap; a member's WebSocket opened before keeps
// posting and receiving; and once some close, new connections are served.
func connectionFloodPastTheFileLimit(t *testing.T) {
	const limit = 24
	fx := newFixture(t, 2, 2, withLimits(func(l *config.Limits) { l.MaxConnections, l.ConnectionsPerAddress = limit, 0 }))
	ctx := testutil.Ctx(t)
	ws, err := fx.cs[0].Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	subscribe(t, ws, fx.conv)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	refused := 0
	for i := range 2 * limit {
		c, err := net.Dial("tcp", hostOf(fx))
		if err != nil {
			t.Fatal(err)
		}
		switch status, r := getOn(t, c, "/healthz"); status {
		case 200:
			held = append(held, c)
		case 503:
			wantRefused(t, fmt.Sprintf("connection %d", i+1), status, r, 503, twokey.EUnavailable, "limits.max_connections")
			refused++
			c.Close()
		default:
			t.Fatalf("connection %d: %d %+v", i+1, status, r)
		}
	}
	if len(held) >= limit || refused < limit {
		t.Fatalf("%d connections served and %d refused, with a cap of %d", len(held), refused, limit)
	}
	if n := fx.srv.Connections(); n > limit {
		t.Fatalf("the server holds %d connections, over its cap of %d", n, limit)
	}
	// The member's socket still posts and receives.
	env := fx.chatBy(t, fx.ids[0], "posted over my socket during the flood")
	if err := ws.WriteJSON(map[string]any{"op": "post", "ref": "during", "envelope": env}); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	var ack, seen uint64 // the record may come before its ack
	for ack == 0 || seen < ack {
		var f struct {
			Op     string
			Ref    string
			Seq    uint64
			Record *conversation.Record
			Error  *struct{ Code, Message string }
		}
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("the member's socket during the flood: %v", err)
		}
		if f.Op == "error" {
			t.Fatalf("the member's post during the flood: %+v", f.Error)
		}
		if f.Op == "ack" && f.Ref == "during" {
			ack = f.Seq
		}
		if f.Op == "record" && f.Record != nil {
			seen = max(seen, f.Record.Seq)
		}
	}
	// Some of the flood leaves: the server serves new connections again.
	before := fx.srv.Connections()
	for _, c := range held[:4] {
		c.Close()
	}
	held = held[4:]
	until(t, "the server to let go of closed connections", func() bool { return fx.srv.Connections() <= before-4 })
	c, err := net.Dial("tcp", hostOf(fx))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if status, r := getOn(t, c, "/healthz"); status != 200 {
		t.Fatalf("after the flood thinned: %d %+v", status, r)
	}
}

// slowBody: envelope POSTs that announce 60,000 bytes and send a byte
// every 100 ms are cut once limits.body_timeout has passed, however they
// trickle; one that stops sending gets 400 bad_envelope naming the
// setting; another member posts and reads meanwhile.
func slowBody(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	const n = 20
	fx := newFixture(t, 2, 2, withLimits(func(l *config.Limits) { l.BodyTimeout = config.Duration(timeout) }))
	head := slowHead(fx)
	type slow struct {
		c    net.Conn
		sent time.Time
	}
	var conns []slow
	defer func() {
		for _, s := range conns {
			s.c.Close()
		}
	}()
	for range n + 1 {
		c, err := net.Dial("tcp", hostOf(fx))
		if err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, slow{c, sent})
	}
	// All but the last trickle a byte every 100 ms; the last sends no more.
	stop := make(chan struct{})
	var trickling sync.WaitGroup
	trickling.Add(1)
	go func() {
		defer trickling.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, s := range conns[:n] {
					s.c.SetWriteDeadline(time.Now().Add(time.Second))
					s.c.Write([]byte(" ")) // fails once cut
				}
			}
		}
	}()
	defer func() { close(stop); trickling.Wait() }()
	othersStillWork(t, fx, 1, nil, "posting while the slow bodies trickle")
	// Each is cut after the timeout, not before, and not much after.
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	for i, s := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.c.SetReadDeadline(s.sent.Add(timeout + 10*time.Second))
			data, err := io.ReadAll(s.c)
			took := time.Since(s.sent)
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				errs <- fmt.Errorf("slow body %d still open after %s (limits.body_timeout %s)", i, took.Round(time.Millisecond), timeout)
			case took < timeout:
				errs <- fmt.Errorf("slow body %d cut after %s, before limits.body_timeout %s", i, took, timeout)
			case i == n:
				// It had nothing in flight, so the answer reached it whole.
				if !strings.HasPrefix(string(data), "HTTP/1.1 400 ") || !strings.Contains(string(data), `"code":"`+twokey.EBadEnvelope+`"`) ||
					!strings.Contains(string(data), "limits.body_timeout") {
					errs <- fmt.Errorf("the body that stopped got %q, want 400 bad_envelope naming limits.body_timeout", data)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// dialFrom connects to fx from the loopback address ip (127.0.0.2, ...),
// so that a test can be two clients on two addresses.
func dialFrom(t *testing.T, fx *fixture, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 20 * time.Second}
	c, err := d.Dial("tcp", hostOf(fx))
	if err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Skipf("this system cannot connect from %s: %v", ip, err)
		}
		t.Fatal(err)
	}
	return c
}

// connectionFloodFromOneAddress: one address holds slow requests up to
// limits.connections_per_address; its next connection is answered 429 at
// once, naming the setting; members on another address post and read; an
// address's authenticated WebSockets do not count against it; and a
// closed connection gives its place back.
func connectionFloodFromOneAddress(t *testing.T) {
	const perAddr = 6
	fx := newFixture(t, 2, 2, withLimits(func(l *config.Limits) {
		l.ConnectionsPerAddress, l.BodyTimeout = perAddr, config.Duration(5*time.Minute)
	}))
	ctx := testutil.Ctx(t)
	const attacker = "127.0.0.2"
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range perAddr {
		c := dialFrom(t, fx, attacker)
		held = append(held, c)
		if _, err := io.WriteString(c, slowHead(fx)); err != nil {
			t.Fatal(err)
		}
	}
	extra := dialFrom(t, fx, attacker)
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(20 * time.Second))
	status, r := readAnswer(t, extra) // answered before it says anything
	wantRefused(t, "a connection over the address's cap", status, r, 429, twokey.ERateLimited, "limits.connections_per_address")
	// Members on 127.0.0.1 are not affected, and their authenticated
	// WebSockets, more than the cap, do not count against their address.
	var socks []*websocket.Conn
	for i := range perAddr + 2 {
		ws, err := fx.cs[i%2].Dial(ctx)
		if err != nil {
			t.Fatalf("member socket %d: %v", i+1, err)
		}
		defer ws.Close()
		socks = append(socks, ws)
	}
	subscribe(t, socks[0], fx.conv)
	othersStillWork(t, fx, 1, socks[0], "the flood from another address does not reach me")
	// A closed connection gives the address its place back.
	before := fx.srv.Connections()
	held[0].Close()
	held = held[1:]
	until(t, "the server to let go of a closed connection", func() bool { return fx.srv.Connections() < before })
	c := dialFrom(t, fx, attacker)
	defer c.Close()
	if status, r := getOn(t, c, "/healthz"); status != 200 {
		t.Fatalf("after one closed: %d %+v", status, r)
	}
}

// outOfFileDescriptors runs 'twokey serve' under a descriptor limit of 40
// with limits.max_connections set above it, and holds twice that many
// connections: the server logs the limit it runs with and that the cap is
// not below it, logs running out once (net/http, left alone, logs every
// retry), neither spins nor dies, and serves again once connections close.
func outOfFileDescriptors(t *testing.T) {
	const fds = 40
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to set the descriptor limit with")
	}
	needBinary(t)
	dir := t.TempDir()
	p := &proc{out: &syncBuf{}, errs: &syncBuf{}, exited: make(chan struct{}), found: make(chan string, 1)}
	p.cmd = exec.Command(sh, "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, fds), bin,
		"serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--log-level", "debug",
		"--limits-max-connections", "1000")
	p.cmd.Env = cleanEnv("HOME=" + dir)
	p.cmd.Stderr = p.errs
	p.cmd.Stdout = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := listenRE.FindStringSubmatch(p.out.String()); m != nil {
			p.url = m[1]
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("twokey serve exited before listening:\n%s\n%s", p.out, p.errs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("twokey serve did not listen in 30 s:\n%s\n%s", p.out, p.errs)
		}
	}
	logged := func(re string) int { return len(regexp.MustCompile(re).FindAllStringIndex(p.errs.String(), -1)) }
	until(t, "the descriptor limit in the log", func() bool {
		return logged(fmt.Sprintf(`msg="file descriptor limit" fd_soft=%d fd_hard=%d max_connections=1000`, fds, fds)) == 1
	})
	if logged(`limits.max_connections is not below the file descriptor limit`) != 1 {
		t.Errorf("no warning that limits.max_connections is above the limit:\n%s", p.errs)
	}
	addr := strings.TrimPrefix(p.url, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 2 * fds {
		c, err := net.Dial("tcp", addr) // the kernel's queue takes what the server cannot
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	const outOf = `out of file descriptors`
	until(t, "the server to run out of descriptors", func() bool { return logged(outOf) > 0 })
	// Out of descriptors for a while (the held connections' headers are
	// due in 10 s): one line, no retry of net/http's, still running.
	probe := held[len(held)-1]
	probe.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = probe.Read(make([]byte, 1)) // at the back of the queue: nothing comes
	if n, again := logged(outOf), logged(`accepting connections again`); n > again+1 {
		t.Errorf("running out logged %d times in one episode:\n%s", n, p.errs)
	}
	if n := logged(`http: Accept error`); n != 0 {
		t.Errorf("net/http logged %d accept retries:\n%s", n, p.errs)
	}
	select {
	case <-p.exited:
		t.Fatalf("the server died out of descriptors:\n%s", p.errs)
	default:
	}
	// The connections close: the server serves again.
	for _, c := range held {
		c.Close()
	}
	held = nil
	hc := &http.Client{Timeout: 5 * time.Second}
	until(t, "/healthz after the descriptors came back", func() bool {
		resp, err := hc.Get(p.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if logged(`accepting connections again`) == 0 {
		t.Errorf("the server did not say it accepts again:\n%s", p.errs)
	}
}
