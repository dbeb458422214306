package agent_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/twokey/twokey/agent"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/internal/testutil"
)

const (
	mgmtKey   = "mgmt-key-for-agent-tests-4c1d"
	publicURL = "https://twokey.example.com"
	upstream  = "sk-agent-test-upstream-key-93f1"
)

// fixture is a real server (loopback, httpbin upstream) with a
// conversation "ops" of three signers at M=2, a sealed httpbin key, and
// the management API on.
type fixture struct {
	srv  *testutil.Server
	cs   []*client.Client
	conv string
	mgmt *client.Management
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{}
	f.srv = testutil.StartServer(t, testutil.NewUpstream(t), func(o *testutil.Options) {
		o.Management.Key = mgmtKey
		o.PublicURL = publicURL
	})
	ctx := testutil.Ctx(t)
	var members []conversation.Member
	_, f.cs, members = testutil.Signers(t, f.srv.URL(), 3, nil)
	f.conv = f.create(t, "ops", members)
	if _, err := f.cs[0].EnableGate(ctx, f.conv, 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cs[0].AddSecret(ctx, f.conv, "httpbin", "", "", 0, []byte(upstream)); err != nil {
		t.Fatal(err)
	}
	m, err := client.OpenManagement(f.srv.URL(), mgmtKey, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.mgmt = m
	return f
}

func (f *fixture) create(t *testing.T, name string, members []conversation.Member) string {
	t.Helper()
	rec, err := f.cs[0].CreateConversation(testutil.Ctx(t), name, members)
	if err != nil {
		t.Fatal(err)
	}
	var p conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &p)
	return p.Conversation
}

// key makes a program key for conv.
func (f *fixture) key(t *testing.T, in api.KeyCreate) string {
	t.Helper()
	if in.Conversation == "" {
		in.Conversation = f.conv
	}
	nk, err := f.mgmt.CreateKey(testutil.Ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	return nk.Key
}

// progress collects the progress notifications a client session hears.
type progress struct{ ch chan string }

func newProgress() *progress { return &progress{ch: make(chan string, 64)} }

func (p *progress) handler(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
	p.ch <- req.Params.Message
}

// waitFor reads notifications until one says msg.
func (p *progress) waitFor(t *testing.T, ctx context.Context, msg string) {
	t.Helper()
	for {
		select {
		case m := <-p.ch:
			if m == msg {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no progress %q", msg)
		}
	}
}

// transport connects an MCP client to the tools acting with a key.
type transport struct {
	name    string
	connect func(t *testing.T, f *fixture, key string, p *progress) *mcp.ClientSession
}

// transports are the two ways in: the stdio server ('twokey mcp': agent.New
// over a client of the server's URL), on an in-memory pipe, and the
// server's own /v1/mcp over Streamable HTTP.
var transports = []transport{
	{"stdio", connectStdio},
	{"http", connectHTTP},
}

func newClient(p *progress) *mcp.Client {
	o := &mcp.ClientOptions{}
	if p != nil {
		o.ProgressNotificationHandler = p.handler
	}
	return mcp.NewClient(&mcp.Implementation{Name: "agent-test", Version: "1"}, o)
}

func connectStdio(t *testing.T, f *fixture, key string, p *progress) *mcp.ClientSession {
	t.Helper()
	ctx := testutil.Ctx(t)
	prog, err := client.OpenProgram(f.srv.URL(), key, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := agent.New(agent.Options{Program: func(context.Context, *mcp.CallToolRequest) (*client.Program, error) { return prog, nil }})
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := newClient(p).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// bearer adds a program key to every request.
type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

func connectHTTP(t *testing.T, f *fixture, key string, p *progress) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: f.srv.URL() + "/v1/mcp", HTTPClient: &http.Client{Transport: bearer{key}},
		MaxRetries: -1, DisableStandaloneSSE: true}
	cs, err := newClient(p).Connect(testutil.Ctx(t), tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool, failing the test on a protocol error.
func call(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(testutil.Ctx(t), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// ok decodes a successful tool result's structured content into out.
func ok(t *testing.T, res *mcp.CallToolResult, out any) {
	t.Helper()
	if res.IsError {
		t.Fatalf("tool error: %s", text(res))
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// refused checks a tool error whose text holds each of want.
func refused(t *testing.T, res *mcp.CallToolResult, want ...string) {
	t.Helper()
	if !res.IsError {
		t.Fatalf("want a tool error, got %s", text(res))
	}
	for _, w := range want {
		if !strings.Contains(text(res), w) {
			t.Errorf("error %q lacks %q", text(res), w)
		}
	}
}

type requestOut struct {
	RequestID         string `json:"request_id"`
	State             string `json:"state"`
	Approvals         int    `json:"approvals"`
	RequiredApprovals int    `json:"required_approvals"`
	Link              string `json:"link"`
	ExpiresAt         string `json:"expires_at"`
	Message           string `json:"message"`
	Reason            string `json:"reason"`
	Response          *struct {
		Status     int    `json:"status"`
		Body       string `json:"body"`
		Redactions int    `json:"redactions"`
	} `json:"response"`
}

// TestToolsProposeNothingMore lists the tools: exactly these six, and none
// that approves, rejects, cancels or reads a secret, by name or by what
// its description offers.
func TestToolsProposeNothingMore(t *testing.T) {
	f := newFixture(t)
	cs := connectStdio(t, f, f.key(t, api.KeyCreate{Name: "lister"}), nil)
	res, err := cs.ListTools(testutil.Ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
		if strings.TrimSpace(tl.Description) == "" || tl.InputSchema == nil {
			t.Errorf("%s has no description or input schema", tl.Name)
		}
		if regexp.MustCompile(`(?i)approve|reject|vote|cancel|secret|sign`).MatchString(tl.Name) {
			t.Errorf("tool %q is named for an action a program may not take", tl.Name)
		}
		// The only "approve" or "reject" a description may say as a verb is
		// that the agent cannot; the signers' approvals are nouns.
		d := strings.ReplaceAll(strings.ToLower(tl.Description), "you cannot approve or reject it yourself", "")
		if m := regexp.MustCompile(`\b(approve|reject|vote|cancel|unseal|decrypt)\b|secret value|api key value`).FindString(d); m != "" {
			t.Errorf("tool %s's description offers %q: %s", tl.Name, m, tl.Description)
		}
	}
	slices.Sort(names)
	want := slices.Clone(agent.Tools)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("tools %v, want exactly %v", names, want)
	}
}

// TestProposeAndWait, over both transports: the agent lists, describes and
// previews a template, proposes it, and waits with get_request while two
// signers approve through the normal API; the wait reports "k of M"
// progress and returns the executed call's response, key redacted.
func TestProposeAndWait(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			f := newFixture(t)
			p := newProgress()
			cs := tr.connect(t, f, f.key(t, api.KeyCreate{Name: "agent", Templates: []string{"httpbin.*"}}), p)
			ctx := testutil.Ctx(t)

			var list struct {
				Conversation string `json:"conversation"`
				Templates    []struct {
					Name              string   `json:"name"`
					RequiredApprovals int      `json:"required_approvals"`
					Params            []string `json:"params"`
				} `json:"templates"`
			}
			ok(t, call(t, cs, agent.ToolListTemplates, nil), &list)
			if list.Conversation != "ops" || len(list.Templates) == 0 {
				t.Fatalf("list_templates: %+v", list)
			}
			for _, tm := range list.Templates {
				if !strings.HasPrefix(tm.Name, "httpbin.") || tm.RequiredApprovals != 2 {
					t.Errorf("listed %+v: want only httpbin.* at M=2", tm)
				}
			}

			var desc struct {
				Method string `json:"method"`
				Params []struct {
					Name, Type string
					Required   bool
				} `json:"params"`
				RequiredApprovals int `json:"required_approvals"`
				Signers           int `json:"signers"`
			}
			ok(t, call(t, cs, agent.ToolDescribeTemplate, map[string]any{"name": "httpbin.echo"}), &desc)
			if desc.Method != "POST" || len(desc.Params) != 1 || desc.Params[0].Name != "data" || !desc.Params[0].Required ||
				desc.RequiredApprovals != 2 || desc.Signers != 3 {
				t.Fatalf("describe_template: %+v", desc)
			}

			args := map[string]any{"template": "httpbin.echo", "params": map[string]any{"data": "hello from the agent"}}
			var pv struct {
				URL               string   `json:"url"`
				Body              string   `json:"body"`
				RequiredApprovals int      `json:"required_approvals"`
				Lines             []string `json:"lines"`
			}
			ok(t, call(t, cs, agent.ToolPreviewRequest, args), &pv)
			if !strings.HasSuffix(pv.URL, "/httpbin/post") || !strings.Contains(pv.Body, "hello from the agent") || pv.RequiredApprovals != 2 ||
				pv.Lines[len(pv.Lines)-1] != "preview only: nothing submitted" {
				t.Fatalf("preview_request: %+v", pv)
			}

			var st requestOut
			ok(t, call(t, cs, agent.ToolProposeRequest, args), &st)
			if st.State != "pending" || st.RequiredApprovals != 2 || st.Approvals != 0 || st.ExpiresAt == "" ||
				st.Link != publicURL+"/#/c/"+f.conv+"/r/"+st.RequestID {
				t.Fatalf("propose_request: %+v", st)
			}

			type got struct {
				res *mcp.CallToolResult
				err error
			}
			done := make(chan got, 1)
			go func() {
				params := &mcp.CallToolParams{Name: agent.ToolGetRequest, Arguments: map[string]any{"request_id": st.RequestID, "wait_seconds": 120}}
				params.SetProgressToken("wait-1")
				res, err := cs.CallTool(ctx, params)
				done <- got{res, err}
			}()
			p.waitFor(t, ctx, "0 of 2 approvals")
			if _, _, err := f.cs[1].Vote(ctx, f.conv, st.RequestID, true, ""); err != nil {
				t.Fatal(err)
			}
			p.waitFor(t, ctx, "1 of 2 approvals")
			if _, _, err := f.cs[2].Vote(ctx, f.conv, st.RequestID, true, ""); err != nil {
				t.Fatal(err)
			}
			var g got
			select {
			case g = <-done:
			case <-ctx.Done():
				t.Fatal("get_request did not return")
			}
			if g.err != nil {
				t.Fatal(g.err)
			}
			var fin requestOut
			ok(t, g.res, &fin)
			if fin.State != "executed" || fin.Approvals != 2 || fin.Response == nil || fin.Response.Status != 200 ||
				!strings.Contains(fin.Response.Body, "hello from the agent") {
				t.Fatalf("get_request after the approvals: %+v", fin)
			}
			if strings.Contains(text(g.res), upstream) {
				t.Fatal("the upstream key reached the agent")
			}

			var rs struct {
				Requests []requestOut `json:"requests"`
			}
			ok(t, call(t, cs, agent.ToolListRequests, map[string]any{"state": "executed"}), &rs)
			if len(rs.Requests) != 1 || rs.Requests[0].RequestID != st.RequestID {
				t.Fatalf("list_requests executed: %+v", rs)
			}
		})
	}
}

// TestRejectedIsAnAnswer: a request the signers reject is a normal result
// saying so, not a tool error.
func TestRejectedIsAnAnswer(t *testing.T) {
	f := newFixture(t)
	cs := connectStdio(t, f, f.key(t, api.KeyCreate{Name: "agent"}), nil)
	ctx := testutil.Ctx(t)
	var st requestOut
	ok(t, call(t, cs, agent.ToolProposeRequest, map[string]any{"template": "httpbin.headers"}), &st)
	for _, i := range []int{1, 2} {
		if _, _, err := f.cs[i].Vote(ctx, f.conv, st.RequestID, false, "not today"); err != nil {
			t.Fatal(err)
		}
	}
	var fin requestOut
	ok(t, call(t, cs, agent.ToolGetRequest, map[string]any{"request_id": st.RequestID, "wait_seconds": 30}), &fin)
	if fin.State != "rejected" || !strings.Contains(fin.Message, "Rejected") {
		t.Fatalf("rejected request: %+v", fin)
	}
}

// TestPolicy, over both transports: the tools do what the key may and no
// more. A template outside its list is refused (describe, preview and
// propose) and not listed; over its rate, a proposal is a tool error that
// says which limit and when to retry; a key of another conversation sees
// none of this one's requests.
func TestPolicy(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			f := newFixture(t)
			cs := tr.connect(t, f, f.key(t, api.KeyCreate{Name: "narrow", Templates: []string{"httpbin.headers"}, Rate: "1/h"}), nil)

			var list struct {
				Templates []struct{ Name string } `json:"templates"`
			}
			ok(t, call(t, cs, agent.ToolListTemplates, nil), &list)
			if len(list.Templates) != 1 || list.Templates[0].Name != "httpbin.headers" {
				t.Fatalf("listed %+v, want only httpbin.headers", list.Templates)
			}
			echo := map[string]any{"template": "httpbin.echo", "params": map[string]any{"data": "x"}}
			refused(t, call(t, cs, agent.ToolDescribeTemplate, map[string]any{"name": "httpbin.echo"}), "forbidden", "httpbin.headers")
			refused(t, call(t, cs, agent.ToolPreviewRequest, echo), "forbidden")
			refused(t, call(t, cs, agent.ToolProposeRequest, echo), "forbidden", "list_templates")

			var st requestOut
			ok(t, call(t, cs, agent.ToolProposeRequest, map[string]any{"template": "httpbin.headers"}), &st)
			refused(t, call(t, cs, agent.ToolProposeRequest, map[string]any{"template": "httpbin.headers"}),
				"rate_limited", "1/h", "Retry after")

			// A key of another conversation: this request is not its.
			other := f.create(t, "other", nil)
			cs2 := tr.connect(t, f, f.key(t, api.KeyCreate{Name: "elsewhere", Conversation: other}), nil)
			refused(t, call(t, cs2, agent.ToolGetRequest, map[string]any{"request_id": st.RequestID}), "unknown_request")
			var rs struct {
				Requests []requestOut `json:"requests"`
			}
			ok(t, call(t, cs2, agent.ToolListRequests, nil), &rs)
			if len(rs.Requests) != 0 {
				t.Fatalf("another conversation's key lists %+v", rs.Requests)
			}
		})
	}
}

// TestRevokedMidSession, over both transports: a key deleted between two
// tool calls of one session is refused at the next. On stdio the tool
// call fails with unauthorized; over HTTP the server answers 401 before
// any MCP, so the call fails.
func TestRevokedMidSession(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			f := newFixture(t)
			cs := tr.connect(t, f, f.key(t, api.KeyCreate{Name: "doomed"}), nil)
			var list struct {
				Templates []struct{ Name string } `json:"templates"`
			}
			ok(t, call(t, cs, agent.ToolListTemplates, nil), &list)
			if err := f.mgmt.DeleteKey(testutil.Ctx(t), "doomed"); err != nil {
				t.Fatal(err)
			}
			res, err := cs.CallTool(testutil.Ctx(t), &mcp.CallToolParams{Name: agent.ToolListTemplates})
			switch {
			case tr.name == "http" && err == nil:
				t.Fatalf("the deleted key's next call passed: %s", text(res))
			case tr.name == "http":
				if !strings.Contains(err.Error(), "401") && !strings.Contains(err.Error(), "nauthorized") {
					t.Errorf("refusal %v does not say 401", err)
				}
			case err != nil:
				t.Fatal(err)
			default:
				refused(t, res, "unauthorized", "do not retry")
			}
		})
	}
}
