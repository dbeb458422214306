package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/twokey/twokey/agent"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/internal/testutil"
)

// TestMCPCommand runs 'twokey mcp' as an MCP client starts it (the test
// binary as twokey, on PATH: TestMain) and talks to it with the SDK's
// client over its stdin and stdout: it lists its tools and proposes a call
// through the program key in TWOKEY_PROGRAM_KEY.
func TestMCPCommand(t *testing.T) {
	const mk = "mgmt-key-for-mcp-command-test"
	srv := testutil.StartServer(t, testutil.NewUpstream(t), func(o *testutil.Options) { o.Management.Key = mk })
	ctx := testutil.Ctx(t)
	_, cs, members := testutil.Signers(t, srv.URL(), 2, nil)
	rec, err := cs[0].CreateConversation(ctx, "ops", members)
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &cp)
	if _, err := cs[0].EnableGate(ctx, cp.Conversation, 2, nil); err != nil {
		t.Fatal(err)
	}
	m, err := client.OpenManagement(srv.URL(), mk, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nk, err := m.CreateKey(ctx, api.KeyCreate{Name: "stdio-agent", Conversation: "ops", Templates: []string{"hn.*"}})
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("twokey", "mcp")
	cmd.Env = append(os.Environ(), "TWOKEY_SERVER="+srv.URL(), "TWOKEY_PROGRAM_KEY="+nk.Key, "TWOKEY_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	session, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect to twokey mcp: %v (stderr %s)", err, stderr.String())
	}
	defer session.Close()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tools.Tools) != len(agent.Tools) {
		t.Fatalf("twokey mcp has %d tools, want %d", len(tools.Tools), len(agent.Tools))
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: agent.ToolProposeRequest,
		Arguments: map[string]any{"template": "hn.get-item", "params": map[string]any{"id": 8863}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var st struct {
		RequestID, State  string
		RequiredApprovals int `json:"required_approvals"`
	}
	_ = json.Unmarshal(b, &st)
	if res.IsError || st.State != "pending" || st.RequiredApprovals != 2 {
		t.Fatalf("propose_request over stdio: %s", b)
	}
	all, err := cs[1].Requests(ctx, cp.Conversation, "pending")
	if err != nil || len(all) != 1 || all[0].Program != "stdio-agent" || all[0].Request.URL != "https://hacker-news.firebaseio.com/v0/item/8863.json" {
		t.Fatalf("the signers see %+v (%v)", all, err)
	}
}

// TestMCPCommandNeedsAKey: without TWOKEY_PROGRAM_KEY, or with what is
// not a program key, 'twokey mcp' stops at once with a usage error.
func TestMCPCommandNeedsAKey(t *testing.T) {
	for _, key := range []string{"", "sk-not-a-program-key"} {
		var out, errb bytes.Buffer
		getenv := func(k string) string {
			if k == "TWOKEY_PROGRAM_KEY" {
				return key
			}
			return ""
		}
		code := Main(context.Background(), []string{"mcp"}, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, getenv)
		if code != exitUsage || !strings.Contains(errb.String(), "TWOKEY_PROGRAM_KEY") {
			t.Errorf("key %q: exit %d, stderr %s", key, code, errb.String())
		}
	}
}

// TestMCPSnippets: 'twokey snippet mcp' configures Claude Code, Codex,
// Cursor and VS Code for stdio and HTTP, and never prints the key, even
// when it is in the environment.
func TestMCPSnippets(t *testing.T) {
	const key = "tk_ThisKeyMustNeverBePrinted0123456789abcdefgh"
	getenv := func(k string) string {
		if k == "TWOKEY_PROGRAM_KEY" {
			return key
		}
		return ""
	}
	run := func(tool string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Main(context.Background(), []string{"snippet", tool, "--server", "https://gw.example.com:8443"},
			Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, getenv); code != exitOK {
			t.Fatalf("snippet %s: exit %d: %s", tool, code, errb.String())
		}
		if strings.Contains(out.String(), key) {
			t.Fatalf("snippet %s printed the key", tool)
		}
		return out.String()
	}
	all := run("mcp")
	for _, want := range []string{
		"claude mcp add twokey --env TWOKEY_SERVER=https://gw.example.com:8443 --env TWOKEY_PROGRAM_KEY=\"$TWOKEY_PROGRAM_KEY\" -- twokey mcp",
		"claude mcp add --transport http twokey https://gw.example.com:8443/v1/mcp --header \"Authorization: Bearer $TWOKEY_PROGRAM_KEY\"",
		"[mcp_servers.twokey]", `args = ["mcp"]`, `bearer_token_env_var = "TWOKEY_PROGRAM_KEY"`,
		`"mcpServers"`, "${env:TWOKEY_PROGRAM_KEY}", `"servers"`, "${input:twokey-key}",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("snippet mcp lacks %q", want)
		}
	}
	if c := run("codex-mcp"); strings.Contains(c, "claude mcp") || !strings.Contains(c, "[mcp_servers.twokey-http]") {
		t.Errorf("codex-mcp:\n%s", c)
	}
}
