package trust_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/server"
	"github.com/twokey/twokey/store"
)

// response returns the gate.response of an executed request.
func (fx *fixture) response(t *testing.T, id string) gate.ResponsePayload {
	t.Helper()
	ctx := testutil.Ctx(t)
	st, err := fx.cs[0].Request(ctx, fx.conv, id)
	if err != nil || st.Result == nil {
		t.Fatalf("no result for %s: %v", id, err)
	}
	recs, err := fx.cs[0].Records(ctx, fx.conv, st.Result.Seq, 1)
	if err != nil || len(recs) != 1 || recs[0].Kind != conversation.KindGateResponse {
		t.Fatalf("no gate.response after record %d: %v", st.Result.Seq, err)
	}
	var p gate.ResponsePayload
	if err := json.Unmarshal(recs[0].Body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// bigBody is what the upstream's /big answers for n bytes.
func bigBody(n int) []byte {
	return bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
}

// TestUpstreamFaults: a broken upstream gives a clear gate.failed (or a
// bounded gate.response), never a hang, and the server keeps serving
// everyone else meanwhile.
func TestUpstreamFaults(t *testing.T) {
	t.Parallel()
	// quick is only for the cases that must time out; the rest get a
	// timeout a slow, loaded machine never reaches.
	quick := newFixture(t, 1, 1, testutil.WithTimeout(700*time.Millisecond))
	patient := newFixture(t, 1, 1, testutil.WithTimeout(10*time.Second))
	cases := []struct {
		name   string
		fx     *fixture
		path   string
		state  string
		reason string
		check  func(t *testing.T, fx *fixture, id string)
	}{
		{"the upstream hangs", quick, "/hang", gate.StateFailed, gate.ReasonTimeout, nil},
		{"the upstream resets the connection", patient, "/reset", gate.StateFailed, gate.ReasonUpstreamError, nil},
		{"the upstream answers slowly, byte by byte, past the timeout", quick, "/slow", gate.StateFailed, gate.ReasonTimeout, nil},
		{"the upstream answers slowly, byte by byte, within the timeout", patient, "/slow", gate.StateExecuted, "", func(t *testing.T, fx *fixture, id string) {
			if r := fx.response(t, id); r.Body != "abcdefghijklmnopqrst" || r.Truncated {
				t.Fatalf("slow body %q truncated=%v", r.Body, r.Truncated)
			}
		}},
		{"the upstream answers 5 MB", patient, "/big", gate.StateExecuted, "", func(t *testing.T, fx *fixture, id string) {
			r := fx.response(t, id)
			if !r.Truncated || len(r.Body) != twokey.MaxResponseBody || r.BodyDigest != conversation.Digest(bigBody(5<<20)) {
				t.Fatalf("5 MB: truncated=%v body=%d, digest of the whole body expected", r.Truncated, len(r.Body))
			}
		}},
		{"the upstream answers 20 MB (read cap 10 MiB)", patient, "/big?n=20000000", gate.StateExecuted, "", func(t *testing.T, fx *fixture, id string) {
			if r := fx.response(t, id); r.BodyDigest != conversation.Digest(bigBody(10<<20)) {
				t.Fatal("20 MB: body_digest is not of the first 10 MiB read")
			}
		}},
		{"the upstream redirects to another host", patient, "/redirect-away", gate.StateExecuted, "", func(t *testing.T, fx *fixture, id string) {
			if r := fx.response(t, id); r.Status != http.StatusFound {
				t.Fatalf("redirect: status %d, want the 302 itself", r.Status)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := tc.fx
			id, _ := fx.submit(t, 0, tc.path)
			// The server answers others while the call is out.
			start := time.Now()
			if _, err := fx.cs[0].Say(testutil.Ctx(t), fx.conv, "still here?"); err != nil {
				t.Fatal(err)
			}
			// Generous for a loaded CI machine under -race, and still far
			// below the hang it would be if posting waited on the call.
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("a chat message took %s while the upstream misbehaved", d)
			}
			ctx := ctxFor(t, 20*time.Second)
			st, err := fx.cs[0].WaitRequest(ctx, fx.conv, id)
			if err != nil {
				t.Fatalf("no outcome in 20 s: %v", err)
			}
			if st.State != tc.state || (tc.reason != "" && st.Result.Reason != tc.reason) {
				t.Fatalf("%s: %s %+v, want %s %s", tc.path, st.State, st.Result, tc.state, tc.reason)
			}
			if tc.check != nil {
				tc.check(t, fx, id)
			}
		})
	}
	if n := len(quick.up.Requests()) + len(patient.up.Requests()); n != len(cases) {
		t.Fatalf("the upstreams got %d calls for %d requests", n, len(cases))
	}
}

var errDiskFull = fmt.Errorf("write twokey.db: %w", syscall.ENOSPC)

// rawPost posts an envelope and returns the status and error code.
func rawPost(t *testing.T, url string, env conversation.Envelope) (int, string) {
	t.Helper()
	body, _ := json.Marshal(env)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb struct {
		Error struct{ Code, Message string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Error.Code
}

// TestDiskFull injects a write error in every transaction (as a full disk
// would): each write is refused with 503 unavailable, nothing is half
// applied, and once the disk has room the server works again, the same
// envelopes included. An execution whose outcome cannot be recorded stays
// executing and becomes interrupted at the next start, never re-sent.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 2, 2)
	ctx := testutil.Ctx(t)
	url := fx.srv.URL() + "/v1/conversations/" + fx.conv + "/messages"
	pending, digest := fx.submit(t, 0, "/get")
	before, _ := fx.srv.Store().LastSeq(fx.conv)
	// A session is a durable write too (its nonce): open one first.
	if _, err := fx.cs[0].Token(ctx); err != nil {
		t.Fatal(err)
	}

	fx.srv.Store().SetWriteHook(func() error { return errDiskFull })
	chat, _ := conversation.SignJSON(fx.ids[1], conversation.KindChatMessage, conversation.ChatPayload{
		Header: conversation.Header{Conversation: fx.conv, CreatedAt: conversation.FormatTime(time.Now())}, Text: "disk full?"})
	req := fx.request("/anything/after-disk-full")
	reqEnv, _ := conversation.SignJSON(fx.ids[0], conversation.KindGateRequest, req)
	vote := fx.approval(t, 1, pending, digest)
	for name, env := range map[string]conversation.Envelope{"chat": chat, "request": reqEnv, "approval": vote} {
		if status, code := rawPost(t, url, env); status != 503 || code != twokey.EUnavailable {
			t.Fatalf("%s on a full disk: %d %s, want 503 unavailable", name, status, code)
		}
	}
	if after, _ := fx.srv.Store().LastSeq(fx.conv); after != before {
		t.Fatalf("the log moved from %d to %d on a full disk", before, after)
	}
	if st, _ := fx.cs[0].Request(ctx, fx.conv, pending); st.State != gate.StatePending || len(st.Approvals) != 1 {
		t.Fatalf("the refused approval half-applied: %s %v", st.State, st.Approvals)
	}
	if _, err := fx.cs[0].Request(ctx, fx.conv, req.RequestID); twokey.ErrorCode(err) != twokey.EUnknownRequest {
		t.Fatalf("the refused request exists: %v", err)
	}
	if !strings.Contains(fx.srv.Logs(), "no space left on device") {
		t.Error("the server log does not say why writes fail")
	}

	// Room again: the very same envelopes go through.
	fx.srv.Store().SetWriteHook(nil)
	for name, env := range map[string]conversation.Envelope{"chat": chat, "request": reqEnv, "approval": vote} {
		if status, code := rawPost(t, url, env); status != 201 {
			t.Fatalf("%s retried after the disk recovered: %d %s", name, status, code)
		}
	}
	if fx.wait(t, pending) != gate.StateExecuted {
		t.Fatal("the approved request did not execute after the disk recovered")
	}

	// The outcome of a call cannot be recorded: the call is out (1 s at a
	// slow upstream) when the disk fills.
	slow, d := fx.submit(t, 0, "/anything/outcome/slow")
	if err := fx.post(t, fx.approval(t, 1, slow, d)); err != nil {
		t.Fatal(err)
	}
	fx.srv.Store().SetWriteHook(func() error { return errDiskFull })
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(fx.srv.Logs(), "cannot record the outcome"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the engine never tried to record the outcome")
		}
	}
	fx.srv.Store().SetWriteHook(nil)
	if s := fx.state(t, slow); s != gate.StateExecuting {
		t.Fatalf("with its outcome unrecorded the request is %s, want executing", s)
	}
	srv := fx.srv.Restart(t)
	c := testutil.Client(srv.URL(), fx.ids[0], nil)
	st, err := c.Request(ctx, fx.conv, slow)
	if err != nil || st.State != gate.StateFailed || st.Result.Reason != gate.ReasonInterrupted {
		t.Fatalf("after the restart: %+v %v, want failed interrupted", st, err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := fx.up.Count("/httpbin/anything/outcome/slow"); n != 1 {
		t.Fatalf("the upstream got the call %d times, want 1", n)
	}
}

// TestDatabaseLockedAtStart: a second server on a data directory in use
// fails fast with a message naming the file, in process and from the CLI.
func TestDatabaseLockedAtStart(t *testing.T) {
	t.Parallel()
	srv := testutil.StartServer(t, nil)
	dbPath := filepath.Join(srv.DataDir, "twokey.db")
	start := time.Now()
	cfg := config.Default()
	cfg.Addr, cfg.DataDir = "127.0.0.1:0", srv.DataDir
	d, err := server.Start(cfg, server.Deps{LockTimeout: 500 * time.Millisecond, Out: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		d.Close()
		t.Fatal("a second server started on a locked database")
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("the second start took %s to fail", el)
	}
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), dbPath) {
		t.Fatalf("error %q does not say the database %s is locked", err, dbPath)
	}
	needBinary(t)
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", srv.DataDir)
	cmd.Env = cleanEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start = time.Now()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("twokey serve on a locked database: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("twokey serve hung on a locked database:\n%s", out.String())
	}
	if msg := out.String(); !strings.Contains(msg, "locked") || !strings.Contains(msg, dbPath) || strings.Contains(msg, "listening") {
		t.Fatalf("twokey serve's message does not name the locked file:\n%s", msg)
	}
	t.Logf("locked database: refused in %s with: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out.String()))
}

// TestWebSocketClientThatNeverReads: a subscriber that stops reading is
// dropped once a write to it stalls; everyone else keeps receiving every
// record in order, and posting never waits for it.
func TestWebSocketClientThatNeverReads(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 2, 2)
	ctx := ctxFor(t, 60*time.Second)
	// The stuck client: a tiny receive buffer, a subscription, no reads.
	tok, err := fx.cs[1].Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
		}
		return c, err
	}}
	wsURL := "ws" + strings.TrimPrefix(fx.srv.URL(), "http") + "/v1/ws"
	stuck, _, err := d.DialContext(ctx, wsURL, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	if err := stuck.WriteJSON(map[string]any{"op": "subscribe", "conversation": fx.conv, "after": 0}); err != nil {
		t.Fatal(err)
	}
	// The healthy follower.
	var last atomic.Uint64
	var gaps atomic.Int64
	go fx.cs[0].Follow(ctx, fx.conv, 0, client.FollowOptions{}, func(r conversation.Record) error {
		if r.Seq != last.Load()+1 {
			gaps.Add(1)
		}
		last.Store(r.Seq)
		return nil
	})
	for deadline := time.Now().Add(10 * time.Second); fx.srv.API().WebSockets() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the follower never connected")
		}
	}
	text := strings.Repeat("all work and no play makes jack a dull boy ", twokey.MaxTextBytes/44)
	var took []time.Duration
	var seq uint64
	for i := 0; i < 300; i++ {
		start := time.Now()
		rec, err := fx.cs[1].Say(ctx, fx.conv, fmt.Sprintf("%d %s", i, text))
		if err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
		seq = rec.Seq
	}
	slices.Sort(took)
	median, slowest := took[len(took)/2], took[len(took)-1]
	for deadline := time.Now().Add(10 * time.Second); last.Load() < seq; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the healthy follower has %d of %d records", last.Load(), seq)
		}
	}
	if gaps.Load() != 0 {
		t.Fatalf("the healthy follower saw %d gaps", gaps.Load())
	}
	// A post that waited on the stuck socket would take the 10 s write
	// stall timeout; one slow post on a loaded machine is not that.
	if median > time.Second || slowest > 8*time.Second {
		t.Fatalf("posts took %s (median) and %s (slowest): posting waited on a socket", median, slowest)
	}
	for deadline := time.Now().Add(25 * time.Second); fx.srv.API().WebSockets() > 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the client that never reads is still connected (%d sockets)", fx.srv.API().WebSockets())
		}
	}
	// The healthy one is still there and still served.
	rec, err := fx.cs[1].Say(ctx, fx.conv, "after the drop")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); last.Load() < rec.Seq; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the healthy follower stopped receiving after the drop")
		}
	}
}
