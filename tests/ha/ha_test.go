package ha_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/etcdtest"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/server"
)

const (
	fixtureKey = "sk_live_ha_0123456789abcdef"
	mgmtKey    = "mk_ha_test_0123456789abcdef0123456789"
)

// rounds is how many times a fault is repeated: more under make test-long.
func rounds(n int) int {
	if os.Getenv("TWOKEY_LONG") == "1" {
		return 4 * n
	}
	return n
}

// cluster is a 3-member etcd and twokey nodes on it, one gateway.
type cluster struct {
	etcd   *etcdtest.Cluster
	up     *testutil.Upstream
	prefix string
	master string
	nodes  []*testutil.Server
	names  []string
}

func newCluster(t *testing.T, nodes int) *cluster {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	c := &cluster{etcd: etcdtest.Start(t, 3), up: testutil.NewUpstream(t), prefix: "/ha/",
		master: base64.StdEncoding.EncodeToString(key)}
	for i := 0; i < nodes; i++ {
		c.names = append(c.names, fmt.Sprintf("node-%c", 'a'+i))
		c.nodes = append(c.nodes, c.start(t, i, ""))
	}
	return c
}

// start starts node i (on dir, or a new one when "").
func (c *cluster) start(t *testing.T, i int, dir string) *testutil.Server {
	t.Helper()
	opts := []testutil.Option{testutil.WithTimeout(3 * time.Second), func(o *testutil.Options) {
		o.Store = "etcd"
		o.Etcd = config.Etcd{Endpoints: c.etcd.Endpoints(), Prefix: c.prefix, Node: c.names[i], LeaseTTL: config.Duration(time.Second)}
		o.MasterKey = c.master
		o.Management.Key = mgmtKey
	}}
	if dir != "" {
		opts = append(opts, testutil.WithDataDir(dir))
	}
	return testutil.StartServer(t, c.up, opts...)
}

// executor returns the index of the node that executes, waiting for one.
func (c *cluster) executor(t *testing.T) int {
	t.Helper()
	for try := 0; try < 400; try++ {
		for i, n := range c.nodes {
			if n != nil && n.Daemon != nil && n.Engine().Executing() {
				return i
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("no node became the executor")
	return -1
}

// group is a conversation of n signers with a client on every node.
type group struct {
	conv string
	gw   string
	ids  []*conversation.Identity
	on   [][]*client.Client // on[node][signer]
}

func (c *cluster) group(t *testing.T, n, m int) *group {
	t.Helper()
	ctx := testutil.Ctx(t)
	g := &group{}
	var members []conversation.Member
	for i := 0; i < n; i++ {
		id := testutil.Identity(t, fmt.Sprintf("signer%d", i))
		g.ids = append(g.ids, id)
		if i > 0 {
			members = append(members, conversation.Member{Key: id.KeyID(), Name: id.Name})
		}
	}
	for _, node := range c.nodes {
		var cs []*client.Client
		for _, id := range g.ids {
			cs = append(cs, testutil.Client(node.URL(), id, nil))
		}
		g.on = append(g.on, cs)
	}
	rec, err := g.on[0][0].CreateConversation(ctx, "ops", members)
	if err != nil {
		t.Fatal(err)
	}
	var p conversation.CreatePayload
	json.Unmarshal(rec.Body, &p)
	g.conv = p.Conversation
	if _, err := g.on[0][0].EnableGate(ctx, g.conv, m, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := g.on[0][0].AddSecret(ctx, g.conv, "httpbin", "", "", 0, []byte(fixtureKey)); err != nil {
		t.Fatal(err)
	}
	gw, err := g.on[0][0].Gateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g.gw = gw.SigningKey
	return g
}

// submit posts a request for path as signer s on node n.
func (c *cluster) submit(t *testing.T, g *group, n, s int, path string) string {
	t.Helper()
	p := gate.RequestPayload{RequestID: client.NewID(), Service: "httpbin", Method: "GET", URL: c.up.URL + "/httpbin" + path,
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))}
	if _, err := retry(t, func() (conversation.Record, error) { return g.on[n][s].Submit(testutil.Ctx(t), g.conv, p) }); err != nil {
		t.Fatalf("submit %s on node %d: %v", path, n, err)
	}
	return p.RequestID
}

// retry repeats a post that found the store without a leader for a
// moment (an election), a bounded number of times; an envelope already
// taken answers replayed or already_voted, which is success here.
func retry(t *testing.T, f func() (conversation.Record, error)) (conversation.Record, error) {
	t.Helper()
	var err error
	for try := 0; try < 40; try++ {
		var rec conversation.Record
		rec, err = f()
		var te *twokey.Error
		if err == nil || !errors.As(err, &te) || te.Code != twokey.EUnavailable {
			return rec, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return conversation.Record{}, err
}

func (c *cluster) approve(t *testing.T, g *group, n, s int, id string) error {
	t.Helper()
	_, err := retry(t, func() (conversation.Record, error) {
		rec, _, err := g.on[n][s].Vote(testutil.Ctx(t), g.conv, id, true, "")
		return rec, err
	})
	return err
}

// stream is a live subscriber on one node: the records it got, in order.
type stream struct {
	mu   sync.Mutex
	recs []conversation.Record
	done chan error
}

func (c *cluster) follow(t *testing.T, g *group, n int) *stream {
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{done: make(chan error, 1)}
	t.Cleanup(func() { cancel(); <-s.done })
	go func() {
		s.done <- g.on[n][0].Follow(ctx, g.conv, 0, client.FollowOptions{}, func(r conversation.Record) error {
			s.mu.Lock()
			s.recs = append(s.recs, r)
			s.mu.Unlock()
			return nil
		})
	}()
	return s
}

// upTo waits until s has every record up to seq last (bounded), then
// checks that it got them in order, each once.
func (s *stream) upTo(t *testing.T, last uint64) {
	t.Helper()
	for try := 0; try < 400; try++ {
		s.mu.Lock()
		n := len(s.recs)
		s.mu.Unlock()
		if uint64(n) >= last {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("the stream's record %d has seq %d: a gap or a duplicate", i+1, r.Seq)
		}
	}
	if uint64(len(s.recs)) < last {
		t.Fatalf("the stream has %d records, the log %d", len(s.recs), last)
	}
}

// wait follows request id on node n until it settles.
func (c *cluster) wait(t *testing.T, g *group, n int, id string) *gateState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		st, err := g.on[n][0].WaitRequest(ctx, g.conv, id)
		if err == nil {
			return &gateState{st.State, st.Result}
		}
		if ctx.Err() != nil {
			t.Fatalf("request %s did not settle: %v", id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type gateState struct {
	State  string
	Result *gate.Result
}

// verify exports the conversation from node n and checks its audit.
func (c *cluster) verify(t *testing.T, g *group, n int) uint64 {
	t.Helper()
	ctx := testutil.Ctx(t)
	x, err := audit.Fetch(ctx, g.on[n][0], g.conv)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(x, audit.Options{Gateway: g.gw})
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if rep.Records != uint64(len(x.Records)) || rep.Records == 0 {
		t.Fatalf("the audit of node %d's export covers %d of its %d records", n, rep.Records, len(x.Records))
	}
	return uint64(len(x.Records))
}

// TestWholeFlowAcrossNodes: submitted on node a, approved on node b, the
// call made once, every record seen live by a subscriber on each node in
// the same order, and the export of either node verifies.
func TestWholeFlowAcrossNodes(t *testing.T) {
	c := newCluster(t, 2)
	g := c.group(t, 3, 2)
	sa, sb := c.follow(t, g, 0), c.follow(t, g, 1)
	for round := 0; round < 3; round++ {
		path := fmt.Sprintf("/anything/flow-%d", round)
		id := c.submit(t, g, round%2, 0, path)
		if err := c.approve(t, g, (round+1)%2, 1, id); err != nil {
			t.Fatalf("approve on the other node: %v", err)
		}
		if st := c.wait(t, g, round%2, id); st.State != gate.StateExecuted {
			t.Fatalf("round %d: %s %+v", round, st.State, st.Result)
		}
		if n := c.up.Count("/httpbin" + path); n != 1 {
			t.Fatalf("round %d: the upstream got %d calls, want 1", round, n)
		}
	}
	last := c.verify(t, g, 1)
	sa.upTo(t, last)
	sb.upTo(t, last)
	for _, n := range c.nodes {
		if strings.Contains(n.Logs(), fixtureKey) {
			t.Fatal("a node's log holds the secret")
		}
	}
}

// TestConcurrentFinalApprovals: the last approvals arrive at the same time
// on different nodes; the request executes exactly once.
func TestConcurrentFinalApprovals(t *testing.T) {
	c := newCluster(t, 2)
	g := c.group(t, 4, 3)
	for round := 0; round < rounds(4); round++ {
		path := fmt.Sprintf("/anything/race-%d", round)
		id := c.submit(t, g, 0, 0, path)
		if err := c.approve(t, g, 1, 1, id); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for k := 0; k < 2; k++ {
			wg.Go(func() { errs[k] = c.approve(t, g, k, 2+k, id) })
		}
		wg.Wait()
		if errs[0] != nil && errs[1] != nil {
			t.Fatalf("round %d: both final approvals failed: %v; %v", round, errs[0], errs[1])
		}
		if st := c.wait(t, g, 0, id); st.State != gate.StateExecuted {
			t.Fatalf("round %d: %s", round, st.State)
		}
		if n := c.up.Count("/httpbin" + path); n != 1 {
			t.Fatalf("round %d: the upstream got %d calls, want exactly 1", round, n)
		}
	}
	c.verify(t, g, 0)
}

// TestKillTheExecutorMidCall: the executing node dies while its call is
// at the upstream. The next executor fails the request (interrupted) and
// never sends it again; a request approved after executes once; a
// subscriber on the surviving node has every record once.
func TestKillTheExecutorMidCall(t *testing.T) {
	c := newCluster(t, 2)
	g := c.group(t, 2, 2)
	for round := 0; round < rounds(3); round++ {
		x := c.executor(t)
		other := 1 - x
		live := c.follow(t, g, other)
		path := fmt.Sprintf("/kill-%d/hang", round)
		id := c.submit(t, g, other, 0, path)
		if err := c.approve(t, g, other, 1, id); err != nil {
			t.Fatal(err)
		}
		// The call is at the upstream: kill its node.
		for try := 0; c.up.Count("/httpbin"+path) == 0; try++ {
			if try == 400 {
				t.Fatalf("round %d: the executor never called", round)
			}
			time.Sleep(25 * time.Millisecond)
		}
		dir := c.nodes[x].DataDir
		c.nodes[x].Kill(t)
		st := c.wait(t, g, other, id)
		if st.State != gate.StateFailed || st.Result.Reason != gate.ReasonInterrupted {
			t.Fatalf("round %d: the killed node's request is %s %+v, want failed/interrupted", round, st.State, st.Result)
		}
		// The survivor executes what comes next.
		next := fmt.Sprintf("/anything/after-kill-%d", round)
		id2 := c.submit(t, g, other, 0, next)
		if err := c.approve(t, g, other, 1, id2); err != nil {
			t.Fatal(err)
		}
		if st := c.wait(t, g, other, id2); st.State != gate.StateExecuted {
			t.Fatalf("round %d: after the failover: %s %+v", round, st.State, st.Result)
		}
		if a, b := c.up.Count("/httpbin"+path), c.up.Count("/httpbin"+next); a != 1 || b != 1 {
			t.Fatalf("round %d: upstream calls %d and %d, want 1 and 1", round, a, b)
		}
		last := c.verify(t, g, other)
		live.upTo(t, last)
		// The killed node comes back on its data directory.
		c.nodes[x] = c.start(t, x, dir)
		for s, id := range g.ids {
			g.on[x][s] = testutil.Client(c.nodes[x].URL(), id, nil)
		}
	}
}

// TestStopTheEtcdLeader: etcd's raft leader stops; after its election
// every acknowledged record is there and the flow goes on, once.
func TestStopTheEtcdLeader(t *testing.T) {
	c := newCluster(t, 2)
	g := c.group(t, 2, 2)
	live := c.follow(t, g, 1)
	for round := 0; round < rounds(2); round++ {
		stopped := c.etcd.Leader(t)
		c.etcd.Stop(stopped)
		path := fmt.Sprintf("/anything/etcd-leader-%d", round)
		id := c.submit(t, g, 0, 0, path)
		if err := c.approve(t, g, 1, 1, id); err != nil {
			t.Fatal(err)
		}
		if st := c.wait(t, g, 0, id); st.State != gate.StateExecuted {
			t.Fatalf("round %d: %s %+v", round, st.State, st.Result)
		}
		if n := c.up.Count("/httpbin" + path); n != 1 {
			t.Fatalf("round %d: the upstream got %d calls", round, n)
		}
		c.etcd.Restart(t, stopped)
	}
	last := c.verify(t, g, 0)
	live.upTo(t, last)
}

// TestANodeCutOffFromEtcd: a node whose etcd client is gone refuses
// writes with an error that says so; the other node goes on, and nothing
// is executed twice.
func TestANodeCutOffFromEtcd(t *testing.T) {
	c := newCluster(t, 2)
	g := c.group(t, 2, 2)
	x := c.executor(t)
	other := 1 - x
	id := c.submit(t, g, other, 0, "/anything/before-cut")
	// Cut the executor off: its client stops, its lease runs out.
	if k, ok := c.nodes[x].Store().(interface{ Kill() }); ok {
		k.Kill()
	} else {
		t.Fatal("the node's store cannot be cut off")
	}
	_, _, err := g.on[x][1].Vote(testutil.Ctx(t), g.conv, id, true, "")
	var te *twokey.Error
	if err == nil || !errors.As(err, &te) || (te.Code != twokey.EUnavailable && te.Code != twokey.EInternal) {
		t.Fatalf("a vote on the cut-off node: %v, want unavailable", err)
	}
	if te.Code == twokey.EUnavailable && !strings.Contains(te.Message, "etcd") {
		t.Fatalf("the error does not name the store: %q", te.Message)
	}
	if err := c.approve(t, g, other, 1, id); err != nil {
		t.Fatal(err)
	}
	if st := c.wait(t, g, other, id); st.State != gate.StateExecuted {
		t.Fatalf("%s %+v", st.State, st.Result)
	}
	if n := c.up.Count("/httpbin/anything/before-cut"); n != 1 {
		t.Fatalf("the upstream got %d calls", n)
	}
	c.verify(t, g, other)
	c.nodes[x].Stop(t)
}

// TestKillTheExecutorMidCommit: the executing node dies inside a commit,
// first its claim (the call was never made: the next executor makes it,
// once), then the outcome of a call it made (the next executor fails the
// request, interrupted, and never sends it again).
func TestKillTheExecutorMidCommit(t *testing.T) {
	c := newCluster(t, 2)
	g := c.group(t, 2, 2)
	for round, dieAt := range []int{1, 2, 1, 2} {
		x := c.executor(t)
		other := 1 - x
		st := c.nodes[x].Store()
		var mu sync.Mutex
		commits := 0
		st.SetWriteHook(func() error {
			mu.Lock()
			defer mu.Unlock()
			if commits++; commits == dieAt {
				st.(interface{ Kill() }).Kill()
				return errors.New("killed mid-commit")
			}
			return nil
		})
		path := fmt.Sprintf("/anything/commit-%d", round)
		id := c.submit(t, g, other, 0, path)
		if err := c.approve(t, g, other, 1, id); err != nil {
			t.Fatal(err)
		}
		got := c.wait(t, g, other, id)
		calls := c.up.Count("/httpbin" + path)
		switch dieAt {
		case 1: // died claiming: nothing was sent, the next executor sends it
			if got.State != gate.StateExecuted || calls != 1 {
				t.Fatalf("round %d (killed claiming): %s after %d calls, want executed after 1", round, got.State, calls)
			}
		case 2: // died recording the outcome: sent once, never again
			if got.State != gate.StateFailed || got.Result.Reason != gate.ReasonInterrupted || calls != 1 {
				t.Fatalf("round %d (killed recording): %s %+v after %d calls, want failed/interrupted after 1", round, got.State, got.Result, calls)
			}
		}
		dir := c.nodes[x].DataDir
		c.nodes[x].Stop(t)
		c.verify(t, g, other)
		c.nodes[x] = c.start(t, x, dir)
		for s, id := range g.ids {
			g.on[x][s] = testutil.Client(c.nodes[x].URL(), id, nil)
		}
	}
}

// TestStatusSaysWhoExecutes: /healthz names the node and its role, the
// management API's cluster status names the executor, etcd's endpoints
// and every node's watch lag, the metrics say which node executes, and a
// node cut off from etcd answers /healthz 503.
func TestStatusSaysWhoExecutes(t *testing.T) {
	c := newCluster(t, 2)
	x := c.executor(t)
	ctx := testutil.Ctx(t)
	for i, n := range c.nodes {
		resp, err := http.Get(n.URL() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var h api.Health
		json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if resp.StatusCode != 200 || h.Node != c.names[i] || h.Executing == nil || *h.Executing != (i == x) {
			t.Fatalf("node %d /healthz: %d %+v", i, resp.StatusCode, h)
		}
		m, err := client.OpenManagement(n.URL(), mgmtKey, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := m.Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Store != "etcd" || st.Node != c.names[i] || st.Executor != c.names[x] || st.Executing != (i == x) || len(st.Endpoints) != 3 {
			t.Fatalf("node %d cluster status: %+v", i, st)
		}
		for _, e := range st.Endpoints {
			if !e.Healthy {
				t.Fatalf("endpoint %s reported unhealthy: %s", e.Endpoint, e.Error)
			}
		}
		resp, err = http.Get(n.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "twokey_cluster_executor 0"
		if i == x {
			want = "twokey_cluster_executor 1"
		}
		if !strings.Contains(string(body), want) || !strings.Contains(string(body), "twokey_cluster_watch_lag_seconds") {
			t.Fatalf("node %d metrics lack %q", i, want)
		}
	}
	c.nodes[1-x].Store().(interface{ Kill() }).Kill()
	resp, err := http.Get(c.nodes[1-x].URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h api.Health
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || h.Status != "unavailable" || !strings.Contains(h.Error, "etcd") {
		t.Fatalf("a cut-off node's /healthz: %d %+v", resp.StatusCode, h)
	}
}

// TestMigrateABoltFileToEtcd: a server's bbolt file, copied with
// migrate --to etcd, serves on two etcd nodes: its log verifies with every
// record, a second copy into the same prefix is refused, and a new request
// executes once.
func TestMigrateABoltFileToEtcd(t *testing.T) {
	up := testutil.NewUpstream(t)
	old := testutil.StartServer(t, up)
	c := &cluster{etcd: etcdtest.Start(t, 3), up: up, prefix: "/migrated/", names: []string{"node-a", "node-b"}}
	c.nodes = []*testutil.Server{old}
	g := c.group(t, 2, 2)
	id := c.submit(t, g, 0, 0, "/anything/on-bolt")
	if err := c.approve(t, g, 0, 1, id); err != nil {
		t.Fatal(err)
	}
	if st := c.wait(t, g, 0, id); st.State != gate.StateExecuted {
		t.Fatalf("on bolt: %s", st.State)
	}
	before := c.verify(t, g, 0)
	dir := old.DataDir
	old.Stop(t)
	cfg := old.Options().Config
	cfg.Etcd = config.Etcd{Endpoints: c.etcd.Endpoints(), Prefix: c.prefix}
	var out strings.Builder
	if err := server.MigrateToEtcd(&cfg, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "copied 1 conversations") {
		t.Fatalf("migrate said: %s", out.String())
	}
	// A second copy into the same prefix is refused, the first untouched.
	if err := server.MigrateToEtcd(&cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "empty prefix") {
		t.Fatalf("a second copy: %v", err)
	}
	c.nodes = nil
	for i := range c.names {
		c.nodes = append(c.nodes, testutil.StartServer(t, up, func(o *testutil.Options) {
			o.Store = "etcd"
			o.Etcd = config.Etcd{Endpoints: c.etcd.Endpoints(), Prefix: c.prefix, Node: c.names[i], LeaseTTL: config.Duration(time.Second)}
			o.MasterKeyFile = filepath.Join(dir, "master.key")
		}))
	}
	g.on = nil
	for n := range c.nodes {
		var cs []*client.Client
		for _, id := range g.ids {
			cs = append(cs, testutil.Client(c.nodes[n].URL(), id, nil))
		}
		g.on = append(g.on, cs)
	}
	if n := c.verify(t, g, 1); n != before {
		t.Fatalf("the copy has %d records, the file %d", n, before)
	}
	id2 := c.submit(t, g, 1, 0, "/anything/on-etcd")
	if err := c.approve(t, g, 0, 1, id2); err != nil {
		t.Fatal(err)
	}
	if st := c.wait(t, g, 1, id2); st.State != gate.StateExecuted {
		t.Fatalf("on etcd: %s %+v", st.State, st.Result)
	}
	if a, b := up.Count("/httpbin/anything/on-bolt"), up.Count("/httpbin/anything/on-etcd"); a != 1 || b != 1 {
		t.Fatalf("upstream calls %d and %d, want 1 and 1", a, b)
	}
}

// TestAProgramKeyHoldsOnEveryNode: a program key made on node a works on
// node b, and once disabled on a it is refused on b too (each within a
// bounded wait: nodes read the keys every second).
func TestAProgramKeyHoldsOnEveryNode(t *testing.T) {
	c := newCluster(t, 2)
	g := c.group(t, 2, 2)
	ctx := testutil.Ctx(t)
	ma, err := client.OpenManagement(c.nodes[0].URL(), mgmtKey, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nk, err := ma.CreateKey(ctx, api.KeyCreate{Name: "agent", Conversation: g.conv})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := client.OpenProgram(c.nodes[1].URL(), nk.Key, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	until := func(what string, ok func() bool) {
		t.Helper()
		for try := 0; try < 100; try++ {
			if ok() {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("node b never %s", what)
	}
	until("took the key made on node a", func() bool { _, err := pb.Templates(ctx); return err == nil })
	if _, err := ma.EnableKey(ctx, "agent", false); err != nil {
		t.Fatal(err)
	}
	until("refused the key disabled on node a", func() bool {
		_, err := pb.Templates(ctx)
		var te *twokey.Error
		return errors.As(err, &te) && (te.Code == twokey.EUnauthorized || te.Code == twokey.EForbidden)
	})
}
