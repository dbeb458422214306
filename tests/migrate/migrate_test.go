// Package migrate holds twokey's file-layout migration tests, as tests
// only: a data directory written by an older twokey (testdata/v1, made by
// testdata/make-fixture.sh with a binary of the commit its README names:
// conversations, a gate with a secret, executed, rejected and pending
// requests) is copied to a temp dir and opened by the current code, a real
// server in process, and everything in it is read back through the client:
// the conversations and their members, every record of the logs as the old
// server wrote them, the offline audit, the requests' states; a pending
// request approved now executes with the sealed key, new records follow
// the old ones, and a second start on the migrated directory still shows
// it all.
package migrate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/server"
)

// fixtureDir is the data directory of the first file layout and what was
// recorded about it.
const fixtureDir = "testdata/v1"

// fixture is testdata/v1 as a test uses it: a fresh copy of its data
// directory, its identities, its README's facts and the old server's
// export of ops.
type fixture struct {
	dir   string            // the copy of data/, mode 0700, files 0600
	facts map[string]string // the README's "key: value" lines
	ids   map[string]*conversation.Identity
	clk   *clock.Fake     // set to the README's clock
	old   *audit.Export   // ops-export.json
	up    *upstream       // at the README's upstream address
	opts  testutil.Option // the services pointed at up
}

func (fx *fixture) fact(t *testing.T, key string) string {
	t.Helper()
	v, ok := fx.facts[key]
	if !ok || v == "" {
		t.Fatalf("%s/README has no %q line", fixtureDir, key)
	}
	return v
}

func (fx *fixture) num(t *testing.T, key string) int {
	t.Helper()
	n, err := strconv.Atoi(fx.fact(t, key))
	if err != nil {
		t.Fatalf("%s/README: %s: %v", fixtureDir, key, err)
	}
	return n
}

func (fx *fixture) client(srv *testutil.Server, who string) *client.Client {
	c := testutil.Client(srv.URL(), fx.ids[who], fx.clk)
	c.HTTP.Timeout = 30 * time.Second
	return c
}

var factRE = regexp.MustCompile(`^([a-z0-9_]+): (.+)$`)

// loadFixture copies testdata/v1 into a temp dir with the modes a server
// and the CLI demand (git keeps neither 0600 nor 0700), reads its README
// and identities, and starts the upstream at the address the fixture's
// requests were signed for.
func loadFixture(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{facts: map[string]string{}, ids: map[string]*conversation.Identity{}}
	readme, err := os.ReadFile(filepath.Join(fixtureDir, "README"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for sc.Scan() {
		if m := factRE.FindStringSubmatch(sc.Text()); m != nil {
			fx.facts[m[1]] = strings.TrimSpace(m[2])
		}
	}
	t.Logf("fixture %s: written by commit %s", fixtureDir, fx.fact(t, "commit"))

	tmp := t.TempDir()
	fx.dir = filepath.Join(tmp, "data")
	copyDir(t, filepath.Join(fixtureDir, "data"), fx.dir)
	if _, err := os.Stat(filepath.Join(fx.dir, "master.key")); err != nil {
		t.Fatalf("the fixture's master key: %v (the vault cannot be opened without it)", err)
	}
	for _, who := range []string{"alice", "bob", "carol"} {
		p := filepath.Join(tmp, who+".json")
		copyFile(t, filepath.Join(fixtureDir, who+".json"), p)
		id, err := conversation.LoadIdentity(p)
		if err != nil {
			t.Fatal(err)
		}
		if id.KeyID() != fx.fact(t, who) {
			t.Fatalf("%s.json holds key %s; the README says %s", who, id.KeyID(), fx.fact(t, who))
		}
		fx.ids[who] = id
	}

	at, err := time.Parse(time.RFC3339, fx.fact(t, "clock"))
	if err != nil {
		t.Fatalf("README clock: %v", err)
	}
	// The fixture's pending requests wait at most 168h (the protocol's
	// longest); on the wall clock they would expire a week after the
	// fixture was made, so server and clients run on a fake clock that
	// starts a minute after the fixture's last record.
	fx.clk = clock.NewFake(at.Add(time.Minute))

	raw, err := os.ReadFile(filepath.Join(fixtureDir, "ops-export.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fx.old, err = audit.Parse(raw); err != nil {
		t.Fatalf("ops-export.json: %v", err)
	}

	fx.up = startUpstream(t, fx.fact(t, "upstream"))
	fx.opts = func(o *testutil.Options) {
		o.Services["httpbin"] = fx.up.url + "/httpbin"
		o.Services["fun"] = fx.up.url
	}
	return fx
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			copyDir(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
			continue
		}
		copyFile(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, 0o600); err != nil {
		t.Fatal(err)
	}
}

// received is one request the upstream got.
type received struct {
	method, path string
	header       http.Header
	body         []byte
}

// upstream is httpbin under /httpbin, recording what it receives, on the
// fixed address the fixture's requests name in their signed URLs (a
// request's URL cannot be pointed elsewhere after it was signed).
type upstream struct {
	url  string
	mu   sync.Mutex
	reqs []received
}

func startUpstream(t *testing.T, rawURL string) *upstream {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		t.Fatalf("README upstream %q is not a URL", rawURL)
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Fatalf("the upstream must listen on %s, where the fixture's requests were signed to go: %v "+
			"(another process holds the port; stop it, or remake the fixture with UPSTREAM_ADDR set)", u.Host, err)
	}
	up := &upstream{url: "http://" + ln.Addr().String()}
	hb := httpbin.New().Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		up.mu.Lock()
		up.reqs = append(up.reqs, received{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
		up.mu.Unlock()
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/httpbin")
		hb.ServeHTTP(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return up
}

func (u *upstream) requests() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.reqs)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// allRecords reads conv's whole log, page by page.
func allRecords(t *testing.T, c *client.Client, conv string) []conversation.Record {
	t.Helper()
	var recs []conversation.Record
	for {
		var after uint64
		if len(recs) > 0 {
			after = recs[len(recs)-1].Seq
		}
		page, err := c.Records(testutil.Ctx(t), conv, after, twokey.MaxPageRecords)
		if err != nil {
			t.Fatalf("records of %s after %d: %v", conv, after, err)
		}
		recs = append(recs, page...)
		if len(page) < twokey.MaxPageRecords {
			return recs
		}
	}
}

// checkSeqs fails unless recs are seq 1..n, each once, in order.
func checkSeqs(t *testing.T, what string, recs []conversation.Record, n int) {
	t.Helper()
	if len(recs) != n {
		t.Errorf("%s: %d records, want %d", what, len(recs), n)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Errorf("%s: record %d has seq %d, want %d", what, i, r.Seq, i+1)
			return
		}
	}
}

// sameRecord fails unless got is want as the old server wrote it: seq,
// time, kind, author, envelope (payload and signatures), body and chain.
func sameRecord(t *testing.T, what string, got, want conversation.Record) {
	t.Helper()
	g, err1 := json.Marshal(got)
	w, err2 := json.Marshal(want)
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: marshal: %v %v", what, err1, err2)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s: record %d differs from the one the old server wrote:\n got  %s\n want %s", what, want.Seq, g, w)
	}
}

// memberNames is a conversation's members as name=key, sorted.
func memberNames(ms []conversation.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name+"="+m.Key)
	}
	slices.Sort(out)
	return out
}

func (fx *fixture) wantMembers(t *testing.T, key string) []string {
	var out []string
	for _, who := range strings.Fields(fx.fact(t, key)) {
		out = append(out, who+"="+fx.fact(t, who))
	}
	slices.Sort(out)
	return out
}

// state is what the test expects of the server at one point.
type state struct {
	opsRecords    int      // the length of ops's log
	pending1      string   // pending1's state
	pending1Votes []string // and its approvals
	executed      int      // requests of ops executed
	pending       int      // and still pending
	kept          []audit.Checkpoint
	approvedSeqs  []uint64 // records of ops the test posted, by seq: must still be there
}

// check reads everything back through the client and compares it with the
// fixture and with what the test did since (st).
func (fx *fixture) check(t *testing.T, srv *testutil.Server, st *state, phase string) {
	t.Helper()
	ctx := testutil.Ctx(t)
	alice, bob, carol := fx.client(srv, "alice"), fx.client(srv, "bob"), fx.client(srv, "carol")
	ops, lunch := fx.fact(t, "ops"), fx.fact(t, "lunch")

	gw, err := alice.Gateway(ctx)
	if err != nil {
		t.Fatalf("%s: gateway: %v", phase, err)
	}
	if gw.SigningKey != fx.fact(t, "gateway") {
		t.Errorf("%s: the gateway's signing key is %s; the fixture's was %s (the keyring did not reopen the sealed keys)", phase, gw.SigningKey, fx.fact(t, "gateway"))
	}

	// Both conversations, with their names and members, for each member.
	for who, want := range map[string][]string{"alice": {ops, lunch}, "bob": {ops, lunch}, "carol": {ops}} {
		list, err := fx.client(srv, who).Conversations(ctx)
		if err != nil {
			t.Fatalf("%s: %s lists conversations: %v", phase, who, err)
		}
		var got []string
		for _, s := range list {
			got = append(got, s.ID)
			switch s.ID {
			case ops:
				if s.Name != "ops" || !s.GateEnabled || s.Admin != fx.fact(t, "alice") || s.Seq != uint64(st.opsRecords) || s.Pending != st.pending {
					t.Errorf("%s: %s sees ops as name %q, gate %v, admin %s, seq %d, pending %d; want ops, true, alice, %d, %d",
						phase, who, s.Name, s.GateEnabled, s.Admin, s.Seq, s.Pending, st.opsRecords, st.pending)
				}
				if got, want := memberNames(s.Members), fx.wantMembers(t, "ops_members"); !slices.Equal(got, want) {
					t.Errorf("%s: ops members %v, want %v", phase, got, want)
				}
			case lunch:
				if s.Name != "lunch" || s.GateEnabled || s.Seq != uint64(fx.num(t, "lunch_records")) {
					t.Errorf("%s: %s sees lunch as name %q, gate %v, seq %d; want lunch, false, %d", phase, who, s.Name, s.GateEnabled, s.Seq, fx.num(t, "lunch_records"))
				}
				if got, want := memberNames(s.Members), fx.wantMembers(t, "lunch_members"); !slices.Equal(got, want) {
					t.Errorf("%s: lunch members %v, want %v", phase, got, want)
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %s's conversations are %v, want %v", phase, who, got, want)
		}
	}
	// By name too, as the CLI resolves them.
	if s, err := carol.Conversation(ctx, "ops"); err != nil || s.ID != ops {
		t.Errorf("%s: carol resolves ops to %+v, %v; want %s", phase, s, err, ops)
	}

	// The logs: every old record as the old server wrote it, then the
	// test's own.
	n := fx.num(t, "ops_records")
	if len(fx.old.Records) != n {
		t.Fatalf("ops-export.json holds %d records; the README says %d", len(fx.old.Records), n)
	}
	recs := allRecords(t, carol, ops)
	checkSeqs(t, phase+": ops", recs, st.opsRecords)
	for i := 0; i < n && i < len(recs); i++ {
		sameRecord(t, phase+": ops", recs[i], fx.old.Records[i])
	}
	for _, seq := range st.approvedSeqs {
		if int(seq) > len(recs) || recs[seq-1].Seq != seq {
			t.Errorf("%s: record %d the test posted is gone", phase, seq)
		}
	}
	lrecs := allRecords(t, bob, lunch)
	checkSeqs(t, phase+": lunch", lrecs, fx.num(t, "lunch_records"))
	for i, r := range lrecs {
		want := conversation.KindChatMessage
		if i == 0 {
			want = conversation.KindConversationCreate
		}
		if r.Kind != want {
			t.Errorf("%s: lunch record %d is %s, want %s", phase, r.Seq, r.Kind, want)
		}
	}

	// The offline audit of ops: signatures, chain, every decision, and the
	// checkpoint the old server signed (and any kept since) still match.
	x, err := audit.Fetch(ctx, carol, ops)
	if err != nil {
		t.Fatalf("%s: audit export of ops: %v", phase, err)
	}
	kept := append([]audit.Checkpoint{*fx.old.Checkpoint}, st.kept...)
	rep, err := audit.Verify(x, audit.Options{Gateway: fx.fact(t, "gateway"), Checkpoints: kept})
	if err != nil {
		t.Fatalf("%s: audit of ops fails: %v", phase, err)
	}
	if rep.Records != uint64(st.opsRecords) || rep.Executed != st.executed || rep.Rejected != 1 || rep.Pending != st.pending ||
		rep.Required != fx.num(t, "ops_required") || rep.Signers != 3 {
		t.Errorf("%s: audit report: %d records, %d executed, %d rejected, %d pending, M %d of %d signers; want %d, %d, 1, %d, %d of 3\n%s",
			phase, rep.Records, rep.Executed, rep.Rejected, rep.Pending, rep.Required, rep.Signers,
			st.opsRecords, st.executed, st.pending, fx.num(t, "ops_required"), rep.Summary())
	}
	st.kept = append(st.kept, *x.Checkpoint)

	// The gate: M, and the secret (metadata only) still live.
	g, err := alice.Gate(ctx, ops)
	if err != nil {
		t.Fatalf("%s: gate of ops: %v", phase, err)
	}
	if !g.Enabled || g.RequiredApprovals != fx.num(t, "ops_required") || len(g.Signers) != 3 {
		t.Errorf("%s: gate of ops: enabled %v, M %d, signers %v", phase, g.Enabled, g.RequiredApprovals, g.Signers)
	}
	live := 0
	for _, s := range g.Secrets {
		if s.Service == "httpbin" && s.Live && s.ProvisionedBy == fx.fact(t, "alice") {
			live++
		}
	}
	if live != 1 {
		t.Errorf("%s: secrets of ops %+v; want one live for httpbin by alice", phase, g.Secrets)
	}

	// The requests.
	for _, r := range []struct {
		id, want, template string
		votes              []string // approvals, or for rejected the rejections
	}{
		{fx.fact(t, "executed"), gate.StateExecuted, "httpbin.headers", []string{"alice", "bob"}},
		{fx.fact(t, "rejected"), gate.StateRejected, "httpbin.echo", []string{"bob", "carol"}},
		{fx.fact(t, "pending1"), st.pending1, fx.fact(t, "pending1_template"), st.pending1Votes},
		{fx.fact(t, "pending2"), gate.StatePending, fx.fact(t, "pending2_template"), []string{"carol"}},
	} {
		rs, err := bob.Request(ctx, ops, r.id)
		if err != nil {
			t.Errorf("%s: request %s: %v", phase, r.id, err)
			continue
		}
		if rs.State != r.want {
			t.Errorf("%s: request %s is %s, want %s", phase, r.id, rs.State, r.want)
		}
		if rs.Request.Template != r.template || rs.Request.URL != fx.up.url+"/httpbin"+map[string]string{"httpbin.headers": "/headers", "httpbin.echo": "/post"}[r.template] {
			t.Errorf("%s: request %s is %s %s, want template %s", phase, r.id, rs.Request.Template, rs.Request.URL, r.template)
		}
		if rs.RequiredApprovals != fx.num(t, "ops_required") {
			t.Errorf("%s: request %s needs %d approvals, want %d", phase, r.id, rs.RequiredApprovals, fx.num(t, "ops_required"))
		}
		votes := rs.Approvals
		if r.want == gate.StateRejected {
			votes = rs.Rejections
		}
		if r.votes != nil {
			var want []string
			for _, who := range r.votes {
				want = append(want, fx.fact(t, who))
			}
			if got := slices.Sorted(slices.Values(votes)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
				t.Errorf("%s: request %s has votes %v, want %v (%v)", phase, r.id, votes, want, r.votes)
			}
		}
		if r.want == gate.StateExecuted && (rs.Result == nil || rs.Result.Status != http.StatusOK) {
			t.Errorf("%s: executed request %s has result %+v, want status 200", phase, r.id, rs.Result)
		}
	}
	pend, err := alice.Requests(ctx, ops, gate.StatePending)
	if err != nil {
		t.Fatalf("%s: pending requests: %v", phase, err)
	}
	if len(pend) != st.pending {
		t.Errorf("%s: %d pending requests, want %d", phase, len(pend), st.pending)
	}
}

// TestOpenV1 opens the v1 fixture with the current code, checks all of
// it, approves a pending request (which executes with the key sealed by
// the old server), posts a message after the old records, restarts on the
// migrated directory and checks everything again.
func TestOpenV1(t *testing.T) {
	fx := loadFixture(t)
	srv := testutil.StartServer(t, nil, testutil.WithDataDir(fx.dir), testutil.WithClock(fx.clk), fx.opts)
	ops := fx.fact(t, "ops")
	n := fx.num(t, "ops_records")
	st := &state{opsRecords: n, pending1: gate.StatePending, pending1Votes: []string{"alice"}, executed: 1, pending: 2}
	fx.check(t, srv, st, "first start")
	if t.Failed() {
		t.FailNow()
	}

	// A new message follows the old log: seq N+1.
	ctx := testutil.Ctx(t)
	carol := fx.client(srv, "carol")
	rec, err := carol.Say(ctx, ops, "Back after the upgrade.")
	if err != nil {
		t.Fatalf("post to ops: %v", err)
	}
	if rec.Seq != uint64(n+1) {
		t.Fatalf("the first new message of ops got seq %d, want %d", rec.Seq, n+1)
	}
	st.opsRecords = n + 1
	st.approvedSeqs = append(st.approvedSeqs, rec.Seq)

	// bob approves pending1: 2/2, so it executes, with the key the old
	// server sealed, against the upstream it was signed for.
	before := len(fx.up.requests())
	bob := fx.client(srv, "bob")
	p1 := fx.fact(t, "pending1")
	vote, p, err := bob.Vote(ctx, ops, p1, true, "")
	if err != nil {
		t.Fatalf("bob approves %s: %v", p1, err)
	}
	if vote.Seq != uint64(n+2) {
		t.Errorf("bob's approval got seq %d, want %d", vote.Seq, n+2)
	}
	if p.Template != fx.fact(t, "pending1_template") {
		t.Errorf("pending1 is %s, want %s", p.Template, fx.fact(t, "pending1_template"))
	}
	rs, err := bob.WaitRequest(ctxFor(t, 30*time.Second), ops, p1)
	if err != nil {
		t.Fatalf("wait for %s: %v", p1, err)
	}
	if rs.State != gate.StateExecuted || rs.Result == nil || rs.Result.Status != http.StatusOK {
		t.Fatalf("after bob's approval %s is %s with result %+v; want executed, 200", p1, rs.State, rs.Result)
	}
	got := fx.up.requests()[before:]
	if len(got) != 1 || got[0].method != http.MethodGet || got[0].path != "/httpbin/headers" {
		t.Fatalf("the upstream got %d requests since the approval (%+v); want one GET /httpbin/headers", len(got), got)
	}
	if auth, want := got[0].header.Get("Authorization"), "Bearer "+fx.fact(t, "secret"); auth != want {
		t.Fatalf("the upstream got Authorization %q; want the key the old server sealed, %q", auth, want)
	}
	// The approval, gate.executed and gate.response.
	st.opsRecords = n + 4
	st.pending1, st.pending1Votes, st.executed, st.pending = gate.StateExecuted, []string{"alice", "bob"}, 2, 1
	st.approvedSeqs = append(st.approvedSeqs, vote.Seq)
	fx.check(t, srv, st, "after the approval")

	// A second start on the migrated directory.
	srv = srv.Restart(t, fx.opts)
	fx.check(t, srv, st, "second start")
	rec, err = fx.client(srv, "alice").Say(testutil.Ctx(t), ops, "Still here after a restart.")
	if err != nil {
		t.Fatalf("post to ops after the restart: %v", err)
	}
	if rec.Seq != uint64(st.opsRecords+1) {
		t.Fatalf("the message after the restart got seq %d, want %d", rec.Seq, st.opsRecords+1)
	}
	if got := len(fx.up.requests()); got != before+1 {
		t.Errorf("the upstream got %d requests in all, want %d: nothing may execute twice across the restart", got, before+1)
	}
}

// A start refused for a wrong master key leaves a file of the old layout
// byte for byte as it was: the conversion waits until the vault opens.
func TestAWrongMasterKeyLeavesTheOldFileAsItWas(t *testing.T) {
	fx := loadFixture(t)
	db := filepath.Join(fx.dir, "twokey.db")
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	wrong := make([]byte, 32)
	for i := range wrong {
		wrong[i] = byte(i + 1)
	}
	cfg := config.Default()
	cfg.Addr, cfg.DataDir, cfg.MasterKey = "127.0.0.1:0", fx.dir, base64.StdEncoding.EncodeToString(wrong)
	d, err := server.Start(cfg, server.Deps{LockTimeout: 2 * time.Second, Clock: fx.clk, Out: io.Discard})
	if err == nil {
		d.Close()
		t.Fatal("a server started on the old file with a wrong master key")
	}
	t.Logf("refused as it should be: %v", err)
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the refused start changed the old file")
	}
}
