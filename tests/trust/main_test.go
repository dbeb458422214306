package trust_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// bin is the twokey binary, built on first use (needBinary) into binDir,
// once per test binary; buildErr says why when the build failed.
var (
	bin       string
	binDir    string
	buildErr  error
	buildOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// goTool finds the go command that runs these tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// needBinary builds the twokey binary once and fails the test when it
// cannot be built.
func needBinary(t testing.TB) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "twokey-trust-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		out, err := exec.Command(goTool(), "build", "-o", filepath.Join(dir, "twokey"), "github.com/twokey/twokey/cmd/twokey").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/twokey: %v\n%s", err, out)
			return
		}
		bin = filepath.Join(dir, "twokey")
	})
	if bin == "" {
		t.Fatalf("the twokey binary is needed: %v", buildErr)
	}
}

// long reports whether the long forms run (TWOKEY_LONG=1, make test-long).
func long() bool { return os.Getenv("TWOKEY_LONG") == "1" }

// syncBuf is a buffer safe for a child's output and a test reading it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a 'twokey serve' child process.
type proc struct {
	cmd    *exec.Cmd
	url    string
	out    *syncBuf // stdout
	errs   *syncBuf // stderr: the server's log
	exited chan struct{}
	found  chan string // its "listening on" URL, once
}

var listenRE = regexp.MustCompile(`listening on (http://[0-9.:]+)`)

// cleanEnv is the environment without TWOKEY_ settings of the caller.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TWOKEY_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startProc runs 'twokey serve' on dir with httpbin and fun pointed at up,
// and waits (at most 20 s) for its "listening on" line.
func startProc(t testing.TB, dir string, up *testutil.Upstream, args ...string) *proc {
	t.Helper()
	p := spawnProc(t, dir, up, args...)
	select {
	case p.url = <-p.found:
	case <-p.exited:
		t.Fatalf("twokey serve exited before listening:\n%s\n%s", p.out, p.errs)
	case <-time.After(20 * time.Second):
		p.kill()
		t.Fatalf("twokey serve did not print its listening line in 20 s:\n%s\n%s", p.out, p.errs)
	}
	return p
}

// spawnProc starts 'twokey serve' as startProc does, without waiting for
// it to listen (a test may kill it while it still opens and recovers).
func spawnProc(t testing.TB, dir string, up *testutil.Upstream, args ...string) *proc {
	t.Helper()
	needBinary(t)
	all := []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--log-level", "debug"}
	if up != nil {
		all = append(all, "--service", "httpbin="+up.URL+"/httpbin", "--service", "fun="+up.URL)
	}
	p := &proc{cmd: exec.Command(bin, append(all, args...)...), out: &syncBuf{}, errs: &syncBuf{}, exited: make(chan struct{}),
		found: make(chan string, 1)}
	p.cmd.Env = cleanEnv("HOME=" + dir)
	p.cmd.Stderr = p.errs
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := p.found
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.out.Write([]byte(line + "\n"))
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	return p
}

// kill ends the child with SIGKILL and waits for it.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// fixture is an in-process server with a recording upstream and a
// conversation of n signers (ids[0] is the admin) with the gate on at m and
// a key for httpbin.
type fixture struct {
	srv  *testutil.Server
	up   *testutil.Upstream
	ids  []*conversation.Identity
	cs   []*client.Client
	conv string
	clk  *clock.Fake
	gw   string
	base string // httpbin's base URL
}

const fixtureKey = "sk_live_trust_7Q2mX9pL4vR8nK3w"

func newFixture(t *testing.T, n, m int, opts ...testutil.Option) *fixture {
	t.Helper()
	fx := &fixture{up: testutil.NewUpstream(t)}
	fx.srv = testutil.StartServer(t, fx.up, opts...)
	fx.base = fx.up.URL + "/httpbin"
	fx.setup(t, n, m, nil)
	return fx
}

// newFakeFixture is newFixture on a fake clock shared by server and clients.
func newFakeFixture(t *testing.T, n, m int) *fixture {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	fx := &fixture{up: testutil.NewUpstream(t), clk: clk}
	fx.srv = testutil.StartServer(t, fx.up, testutil.WithClock(clk))
	fx.base = fx.up.URL + "/httpbin"
	fx.setup(t, n, m, clk)
	return fx
}

func (fx *fixture) setup(t *testing.T, n, m int, clk clock.Clock) {
	t.Helper()
	ctx := testutil.Ctx(t)
	var members []conversation.Member
	fx.ids, fx.cs, members = testutil.Signers(t, fx.srv.URL(), n, clk)
	fx.conv = mustConv(t, fx.cs[0], "ops", members)
	if _, err := fx.cs[0].EnableGate(ctx, fx.conv, m, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.cs[0].AddSecret(ctx, fx.conv, "httpbin", "", "", 0, []byte(fixtureKey)); err != nil {
		t.Fatal(err)
	}
	gw, err := fx.cs[0].Gateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fx.gw = gw.SigningKey
}

func mustConv(t *testing.T, c *client.Client, name string, members []conversation.Member) string {
	t.Helper()
	rec, err := c.CreateConversation(testutil.Ctx(t), name, members)
	if err != nil {
		t.Fatal(err)
	}
	var p conversation.CreatePayload
	if err := json.Unmarshal(rec.Body, &p); err != nil {
		t.Fatal(err)
	}
	return p.Conversation
}

func (fx *fixture) now() time.Time {
	if fx.clk != nil {
		return fx.clk.Now()
	}
	return time.Now().UTC()
}

// header returns the common fields of a payload signed for fx's gateway.
func (fx *fixture) header() conversation.Header {
	return conversation.Header{Conversation: fx.conv, CreatedAt: conversation.FormatTime(fx.now()), Gateway: fx.gw}
}

// request is a GET of path on httpbin, expiring in an hour.
func (fx *fixture) request(path string) gate.RequestPayload {
	return gate.RequestPayload{Header: fx.header(), RequestID: client.NewID(), Service: "httpbin", Method: "GET",
		URL: fx.base + path, ExpiresAt: conversation.FormatTime(fx.now().Add(time.Hour))}
}

// submit posts a request as signer i and returns its id and digest.
func (fx *fixture) submit(t *testing.T, i int, path string) (string, string) {
	t.Helper()
	p := fx.request(path)
	env, err := conversation.SignJSON(fx.ids[i], conversation.KindGateRequest, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.cs[i].PostEnvelope(testutil.Ctx(t), fx.conv, env); err != nil {
		t.Fatalf("submit %s: %v", path, err)
	}
	raw, _ := payloadOf(env)
	return p.RequestID, conversation.Digest(raw)
}

// approval signs an approval of id (digest d) by signer i without posting it.
func (fx *fixture) approval(t *testing.T, i int, id, d string) conversation.Envelope {
	t.Helper()
	env, err := conversation.SignJSON(fx.ids[i], conversation.KindGateApprove, gate.VotePayload{Header: fx.header(), RequestID: id, RequestDigest: d})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (fx *fixture) post(t *testing.T, env conversation.Envelope) error {
	t.Helper()
	_, err := fx.cs[0].PostEnvelope(testutil.Ctx(t), fx.conv, env)
	return err
}

func (fx *fixture) state(t *testing.T, id string) string {
	t.Helper()
	st, err := fx.cs[0].Request(testutil.Ctx(t), fx.conv, id)
	if err != nil {
		t.Fatal(err)
	}
	return st.State
}

func (fx *fixture) wait(t *testing.T, id string) string {
	t.Helper()
	st, err := fx.cs[0].WaitRequest(testutil.Ctx(t), fx.conv, id)
	if err != nil {
		t.Fatal(err)
	}
	return st.State
}

func payloadOf(env conversation.Envelope) ([]byte, error) {
	m, err := conversation.Verify(env)
	if err != nil {
		return nil, err
	}
	return m.Payload, nil
}

// ctxFor is a context bounded by d and the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
