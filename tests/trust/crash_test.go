package trust_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// ack is a message the server acknowledged (answered 201): it must be in
// the log, at its seq, with its signature, after any crash.
type ack struct {
	conv string
	seq  uint64
	sig  string
}

// crashWorld is what survives across the server's deaths: the data dir,
// the upstream that counts calls, the identities, and what was acked.
type crashWorld struct {
	t     *testing.T
	dir   string
	up    *testutil.Upstream
	alice *conversation.Identity
	bob   *conversation.Identity
	carol *conversation.Identity
	duo   string // alice, bob, carol; M = 2
	solo  string // alice alone; M = 1 (executes at submission)
	gw    string

	mu      sync.Mutex
	acks    []ack
	refused []string                      // protocol refusals the clients did not expect
	kept    map[string][]audit.Checkpoint // checkpoints seen after earlier restarts
	stats   struct {
		executed, interrupted, failed, expired, rounds, acked, recoveryKills int
	}
	final bool // the last check, whose figures are the totals
}

// roundOver reports whether err means the server is gone (the kill), which
// ends a worker's round. Any other error is the server refusing a message
// these clients only send when it is valid: it is recorded, and fails the
// test, unless it is one a slow machine can cause (a vote arriving after a
// request's 10 s TTL).
func (w *crashWorld) roundOver(round int, worker string, err error) bool {
	if err == nil {
		return false
	}
	var e *twokey.Error
	if !errors.As(err, &e) {
		return true // not an answer of the server: an answer cut short
	}
	switch e.Code {
	case twokey.EUnavailable:
		// The client's transport errors: connection refused or reset,
		// the round's context over.
		return true
	case twokey.ERequestExpired:
		return false
	}
	w.mu.Lock()
	w.refused = append(w.refused, fmt.Sprintf("round %d, %s worker: %v", round, worker, err))
	w.mu.Unlock()
	return true
}

func (w *crashWorld) ack(conv string, rec conversation.Record) {
	w.mu.Lock()
	w.acks = append(w.acks, ack{conv: conv, seq: rec.Seq, sig: rec.Envelope.Signatures[0].Sig})
	w.mu.Unlock()
}

func (w *crashWorld) client(url string, id *conversation.Identity) *client.Client {
	c := client.New(url, id)
	c.HTTP.Timeout = 15 * time.Second
	return c
}

// TestCrashRounds kills the real server with SIGKILL at a random moment
// while clients post messages and approvals and requests execute against a
// loopback upstream that counts calls; it restarts the server on the same
// data directory and checks, every round, that every acknowledged message
// is in the log, that the whole log passes the offline audit (signatures,
// chain from record 1, every earlier checkpoint, M approvals behind every
// execution, nothing executed twice), that every call the upstream got was
// durably marked executing first and reached it once, and that nothing is
// left executing after the restart. Some rounds also kill the restarted
// server 0-50 ms after it was started, while it opens the database and
// fails the interrupted requests, before it serves again. 20 rounds in
// 'make test', 200 with TWOKEY_LONG=1. The random choices come from a seed
// the test logs; TWOKEY_CRASH_SEED=N replays them (the timing of a kill
// against the server's work can still differ).
func TestCrashRounds(t *testing.T) {
	t.Parallel()
	rounds, budget := 20, 150*time.Second
	if long() {
		rounds, budget = 200, 40*time.Minute
	}
	needBinary(t) // the budget is for the rounds, not the build
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TWOKEY_CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TWOKEY_CRASH_SEED=%q is not a number", s)
		}
		seed = n
	}
	t.Logf("crash seed %d (replay with TWOKEY_CRASH_SEED=%d)", seed, seed)
	deadline := time.Now().Add(budget)
	w := &crashWorld{t: t, dir: t.TempDir(), up: testutil.NewUpstream(t), kept: map[string][]audit.Checkpoint{}}
	w.alice, w.bob, w.carol = testutil.Identity(t, "alice"), testutil.Identity(t, "bob"), testutil.Identity(t, "carol")
	// The management API is on, for the request log's check.
	if err := os.WriteFile(filepath.Join(w.dir, "twokey.yaml"), []byte("management: {key: "+crashMgmtKey+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, w.dir, w.up)
	w.setup(t, p.url)
	rng := rand.New(rand.NewPCG(seed, 7))
	for round := 1; round <= rounds; round++ {
		if time.Now().After(deadline) {
			t.Errorf("time budget %s spent after %d of %d rounds", budget, round-1, rounds)
			break
		}
		delay := time.Duration(10+rng.IntN(250)) * time.Millisecond
		w.load(t, p, round, delay)
		if rng.IntN(3) == 0 {
			// Killed again during start-up: opening the file, loading,
			// failing what the first kill interrupted.
			early := spawnProc(t, w.dir, w.up)
			time.Sleep(time.Duration(rng.IntN(51)) * time.Millisecond)
			early.kill()
			w.stats.recoveryKills++
		}
		p = startProc(t, w.dir, w.up)
		w.verify(t, p.url, round)
		w.stats.rounds = round
		if len(w.refused) > 0 {
			t.Fatalf("the server refused messages the clients sent in good faith (seed %d):\n%s", seed, strings.Join(w.refused, "\n"))
		}
	}
	p.kill()
	// A last start in process, whose stop checks the bbolt file's
	// consistency page by page.
	srv := testutil.StartServer(t, w.up, testutil.WithDataDir(w.dir), func(o *testutil.Options) { o.Management.Key = crashMgmtKey })
	w.final = true
	w.verify(t, srv.URL(), rounds+1)
	srv.Stop(t)
	t.Logf("crash rounds survived: %d (%d also killed during start-up); acknowledged messages kept: %d; executions: %d executed, %d failed (%d interrupted by a kill); %d expired",
		w.stats.rounds, w.stats.recoveryKills, w.stats.acked, w.stats.executed, w.stats.failed, w.stats.interrupted, w.stats.expired)
	// The run must have tested something: messages acknowledged before
	// kills, calls that went through, and (almost always: a quarter of the
	// calls take a second at the upstream) a kill in the middle of one.
	if w.stats.acked == 0 || w.stats.executed == 0 {
		t.Fatalf("the run proved nothing: %d acknowledged messages, %d executions (seed %d)", w.stats.acked, w.stats.executed, seed)
	}
	if w.stats.interrupted == 0 {
		t.Logf("note: no kill landed while a call was at the upstream in this run (seed %d), so no request was interrupted; "+
			"TestCrashBetweenExecutingMarkAndCall covers that case deterministically", seed)
	}
}

func (w *crashWorld) setup(t *testing.T, url string) {
	ctx := testutil.Ctx(t)
	ca := w.client(url, w.alice)
	w.duo = mustConv(t, ca, "duo", []conversation.Member{{Key: w.bob.KeyID(), Name: "bob"}, {Key: w.carol.KeyID(), Name: "carol"}})
	w.solo = mustConv(t, ca, "solo", nil)
	for conv, m := range map[string]int{w.duo: 2, w.solo: 1} {
		if _, err := ca.EnableGate(ctx, conv, m, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ca.AddSecret(ctx, conv, "httpbin", "", "", 0, []byte("sk_crash_"+conv[:8])); err != nil {
			t.Fatal(err)
		}
	}
	gw, err := ca.Gateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.gw = gw.SigningKey
}

// load runs the clients against p and kills p after delay.
func (w *crashWorld) load(t *testing.T, p *proc, round int, delay time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	worker := func(name string, step func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if w.roundOver(round, name, step(i)) {
					return
				}
			}
		}()
	}
	bob := w.client(p.url, w.bob)
	alice := w.client(p.url, w.alice)
	carol := w.client(p.url, w.carol)
	gwHeader := func(conv string) conversation.Header {
		return conversation.Header{Conversation: conv, CreatedAt: conversation.FormatTime(time.Now()), Gateway: w.gw}
	}
	post := func(c *client.Client, id *conversation.Identity, conv, kind string, payload any) (conversation.Record, []byte, error) {
		env, err := conversation.SignJSON(id, kind, payload)
		if err != nil {
			return conversation.Record{}, nil, err
		}
		raw, _ := payloadOf(env)
		rec, err := c.PostEnvelope(ctx, conv, env)
		if err == nil {
			w.ack(conv, rec)
		}
		return rec, raw, err
	}
	worker("chat", func(i int) error {
		_, _, err := post(bob, w.bob, w.duo, conversation.KindChatMessage, conversation.ChatPayload{
			Header: conversation.Header{Conversation: w.duo, CreatedAt: conversation.FormatTime(time.Now())},
			Text:   fmt.Sprintf("round %d message %d", round, i)})
		return err
	})
	// In duo: alice asks, carol approves (the M-th approval executes it);
	// every third request is left to expire, every fifth is rejected.
	worker("duo", func(i int) error {
		rid := client.NewID()
		// Short enough that requests a kill left pending expire before
		// they pile up to the per-submitter cap in the long run.
		ttl := 10 * time.Second
		if i%3 == 2 {
			ttl = 1500 * time.Millisecond
		}
		req := gate.RequestPayload{Header: gwHeader(w.duo), RequestID: rid, Service: "httpbin", Method: "GET",
			URL: w.up.URL + "/httpbin/anything/" + rid, ExpiresAt: conversation.FormatTime(time.Now().Add(ttl))}
		_, raw, err := post(alice, w.alice, w.duo, conversation.KindGateRequest, req)
		if err != nil || i%3 == 2 {
			return err
		}
		kind := conversation.KindGateApprove
		if i%5 == 4 {
			kind = conversation.KindGateReject
		}
		_, _, err = post(carol, w.carol, w.duo, kind, gate.VotePayload{Header: gwHeader(w.duo), RequestID: rid, RequestDigest: conversation.Digest(raw)})
		if err != nil || kind == conversation.KindGateApprove {
			return err
		}
		_, _, err = post(bob, w.bob, w.duo, kind, gate.VotePayload{Header: gwHeader(w.duo), RequestID: rid, RequestDigest: conversation.Digest(raw)})
		return err
	})
	// In solo, M = 1: every request executes at submission. Every fourth
	// takes a second at the upstream (/slow), so kills land mid-call.
	worker("solo", func(i int) error {
		rid := client.NewID()
		path := "/httpbin/anything/" + rid
		if i%4 == 3 {
			path += "/slow"
		}
		req := gate.RequestPayload{Header: gwHeader(w.solo), RequestID: rid, Service: "httpbin", Method: "POST",
			URL: w.up.URL + path, Body: json.RawMessage(`{"round":` + fmt.Sprint(round) + `}`),
			ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))}
		_, _, err := post(alice, w.alice, w.solo, conversation.KindGateRequest, req)
		return err
	})
	time.Sleep(delay)
	p.kill()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("round %d: clients still busy 20 s after the server was killed", round)
	}
}

// verify checks everything that must hold after a restart.
func (w *crashWorld) verify(t *testing.T, url string, round int) {
	ctx := testutil.Ctx(t)
	c := w.client(url, w.alice)
	received := map[string]int{} // upstream path -> calls
	for _, r := range w.up.Requests() {
		received[r.Path]++
	}
	for path, n := range received {
		if n > 1 {
			t.Fatalf("round %d: the upstream got %s %d times: a request executed twice", round, path, n)
		}
	}
	inLog := map[string]string{} // request id -> how it ended
	events := map[string]bool{}  // "request id event": what the request log must hold
	logBefore := w.requestLog(t, url, round)
	for _, conv := range []string{w.duo, w.solo} {
		x, err := audit.Fetch(ctx, c, conv)
		if err != nil {
			t.Fatalf("round %d: fetch %s: %v", round, conv, err)
		}
		// The whole audit re-checks every record from the first, so over
		// the long form's 200 rounds it runs every tenth round (and at the
		// end); each round still checks the acknowledged records, the
		// upstream's calls and the checkpoints kept so far.
		if !long() || round%10 == 0 || w.final {
			rep, err := audit.Verify(x, audit.Options{Gateway: w.gw, Checkpoints: w.kept[conv]})
			if err != nil {
				t.Fatalf("round %d: the log of %s does not verify after a crash: %v", round, conv, err)
			}
			if rep.Executing != 0 {
				t.Fatalf("round %d: %d requests still executing after the restart; they must be failed as interrupted", round, rep.Executing)
			}
			if w.final {
				w.stats.executed += rep.Executed
				w.stats.failed += rep.Failed
				w.stats.interrupted += rep.Interrupted
				w.stats.expired += rep.Expired
			}
		}
		w.kept[conv] = append(w.kept[conv], *x.Checkpoint)
		for _, r := range x.Records {
			var p struct {
				RequestID string `json:"request_id"`
				Reason    string `json:"reason"`
			}
			_ = json.Unmarshal(r.Body, &p)
			if ev, ok := logEvents[r.Kind]; ok {
				events[p.RequestID+" "+ev] = true
			}
			switch r.Kind {
			case conversation.KindGateRequest:
				if _, ok := inLog[p.RequestID]; !ok {
					inLog[p.RequestID] = "submitted"
				}
			case conversation.KindGateExecuted:
				inLog[p.RequestID] = "executed"
			case conversation.KindGateFailed:
				inLog[p.RequestID] = "failed " + p.Reason
			}
		}
		w.mu.Lock()
		for _, a := range w.acks {
			if a.conv != conv {
				continue
			}
			if a.seq > uint64(len(x.Records)) || x.Records[a.seq-1].Envelope.Signatures[0].Sig != a.sig {
				w.mu.Unlock()
				t.Fatalf("round %d: acknowledged record %d of %s is not in the log after a crash", round, a.seq, conv)
			}
		}
		w.stats.acked = len(w.acks)
		w.mu.Unlock()
	}
	checkRequestLog(t, round, logBefore, w.requestLog(t, url, round), events)
	for path := range received {
		rid, ok := strings.CutPrefix(path, "/httpbin/anything/")
		if !ok {
			continue
		}
		rid = strings.TrimSuffix(rid, "/slow")
		switch end := inLog[rid]; {
		case end == "executed", end == "failed "+gate.ReasonInterrupted, end == "failed "+gate.ReasonUpstreamError,
			end == "failed "+gate.ReasonTimeout:
		default:
			t.Fatalf("round %d: the upstream got request %s, which the log shows as %q: a call went out before its executing mark was durable", round, rid, end)
		}
	}
	for rid, end := range inLog {
		if n := received["/httpbin/anything/"+rid] + received["/httpbin/anything/"+rid+"/slow"]; end == "executed" && n != 1 {
			t.Fatalf("round %d: request %s is executed in the log but the upstream got it %d times", round, rid, n)
		}
	}
}

const crashMgmtKey = "crash-test-management-key-0c4f"

// logEvents is the request log's event for each record kind that makes
// one.
var logEvents = map[string]string{
	conversation.KindGateRequest: "submitted", conversation.KindGateExecuted: "executed", conversation.KindGateFailed: "failed",
	conversation.KindGateExpired: "expired", conversation.KindGateRejected: "rejected", conversation.KindGateCancelled: "cancelled",
}

// requestLog reads the whole request log, a page at a time: how many
// entries each "request id event" has.
func (w *crashWorld) requestLog(t *testing.T, base string, round int) map[string]int {
	got := map[string]int{}
	q := url.Values{"limit": {"1000"}}
	for {
		req, err := http.NewRequestWithContext(testutil.Ctx(t), "GET", base+"/v0/management/logs?"+q.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Management-Key", crashMgmtKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("round %d: request log: %v", round, err)
		}
		var page struct {
			Entries []struct {
				RequestID string `json:"request_id"`
				Event     string `json:"event"`
			} `json:"entries"`
			Next string `json:"next"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("round %d: request log answered %d (%v)", round, resp.StatusCode, err)
		}
		for _, e := range page.Entries {
			got[e.RequestID+" "+e.Event]++
		}
		if page.Next == "" {
			return got
		}
		q.Set("cursor", page.Next)
	}
}

// checkRequestLog checks that the request log and the conversations
// agree: every request submitted and every one closed in a conversation's
// log has its entry, and the request log has no entry more (none twice,
// none for what the conversations do not hold). The entries are written
// in the commits of the records, so a kill can lose neither without the
// other. The server keeps working while it is read (requests expire), so
// the log is read before the conversations (before) and after (after):
// what was in the log before must be in the conversations, and what is in
// the conversations must be in the log after.
func checkRequestLog(t *testing.T, round int, before, after map[string]int, want map[string]bool) {
	var missing, extra []string
	for k, n := range before {
		if n != 1 || !want[k] {
			extra = append(extra, fmt.Sprintf("%s (%d)", k, n))
		}
	}
	for k := range want {
		if after[k] != 1 {
			missing = append(missing, fmt.Sprintf("%s (%d)", k, after[k]))
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("round %d: the request log and the conversations disagree after a crash: %d of %d entries missing or twice %q, %d extra or twice %q",
			round, len(missing), len(want), missing[:min(5, len(missing))], len(extra), extra[:min(5, len(extra))])
	}
}

// TestCrashBetweenExecutingMarkAndCall kills the server while an approved
// call is at the upstream (after the durable executing mark, before the
// outcome could be recorded). After the restart the request is failed
// with reason interrupted, and the upstream got it exactly once: it is
// never re-sent.
func TestCrashBetweenExecutingMarkAndCall(t *testing.T) {
	t.Parallel()
	up := testutil.NewUpstream(t)
	dir := t.TempDir()
	p := startProc(t, dir, up)
	alice := testutil.Identity(t, "alice")
	c := client.New(p.url, alice)
	ctx := testutil.Ctx(t)
	conv := mustConv(t, c, "solo", nil)
	if _, err := c.EnableGate(ctx, conv, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddSecret(ctx, conv, "httpbin", "", "", 0, []byte("sk_hang_0001")); err != nil {
		t.Fatal(err)
	}
	rid := client.NewID()
	path := "/httpbin/anything/" + rid + "/hang"
	if _, err := c.Submit(ctx, conv, gate.RequestPayload{RequestID: rid, Service: "httpbin", Method: "GET", URL: up.URL + path,
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); up.Count(path) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the upstream never received the approved call")
		}
	}
	if st, err := c.Request(ctx, conv, rid); err != nil || st.State != gate.StateExecuting {
		t.Fatalf("while at the upstream the request is %v (%v), want executing", st, err)
	}
	p.kill()
	p = startProc(t, dir, up)
	c = client.New(p.url, alice)
	st, err := c.Request(ctx, conv, rid)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != gate.StateFailed || st.Result == nil || st.Result.Reason != gate.ReasonInterrupted {
		t.Fatalf("after the restart the request is %s %+v, want failed interrupted", st.State, st.Result)
	}
	time.Sleep(300 * time.Millisecond) // room for a (wrong) re-send to arrive
	if n := up.Count(path); n != 1 {
		t.Fatalf("the upstream got the call %d times, want exactly 1", n)
	}
	x, err := audit.Fetch(ctx, c, conv)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(x, audit.Options{})
	if err != nil || rep.Interrupted != 1 {
		t.Fatalf("audit after the crash: %v %+v", err, rep)
	}
	if !strings.Contains(p.errs.String(), "marked failed, not re-sent") {
		t.Errorf("the restart did not log the interrupted request:\n%s", p.errs)
	}
}
