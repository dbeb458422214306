package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/server"
)

const testMgmtKey = "cli-test-management-key"

// run runs the twokey command line with env and returns the exit code,
// stdout and stderr.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func mustRun(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, out, errs := run(t, env, args...)
	if code != 0 {
		t.Fatalf("twokey %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// operatorFixture is a server with the management API on, a conversation
// "ops" of one signer with the gate on, and the CLI's environment.
type operatorFixture struct {
	srv  *testutil.Server
	env  map[string]string
	conv string
	id   *conversation.Identity
}

func newOperatorFixture(t *testing.T, opts ...testutil.Option) *operatorFixture {
	t.Helper()
	up := testutil.NewUpstream(t)
	opts = append(opts, func(o *testutil.Options) { o.Management.Key = testMgmtKey })
	srv := testutil.StartServer(t, up, opts...)
	id := testutil.Identity(t, "alice")
	c := testutil.Client(srv.URL(), id, nil)
	if srv.TLSURL() != "" { // over https: with tls.force the plain port only redirects
		var err error
		if c, err = client.Open(srv.TLSURL(), id, client.Options{Pin: srv.Fingerprint()}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := testutil.Ctx(t)
	rec, err := c.CreateConversation(ctx, "ops", nil)
	if err != nil {
		t.Fatal(err)
	}
	var p conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &p)
	if _, err := c.EnableGate(ctx, p.Conversation, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddSecret(ctx, p.Conversation, "httpbin", "", "", 0, []byte("sk_cli_test_value")); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := id.Save(filepath.Join(home, "identity.json")); err != nil {
		t.Fatal(err)
	}
	return &operatorFixture{srv: srv, conv: p.Conversation, id: id, env: map[string]string{
		"TWOKEY_SERVER": srv.URL(), "TWOKEY_HOME": home, "TWOKEY_MANAGEMENT_KEY": testMgmtKey}}
}

var keyRE = regexp.MustCompile(`\btk_[0-9A-Za-z]{43}\b`)

func TestKeysLifecycle(t *testing.T) {
	fx := newOperatorFixture(t)
	out := mustRun(t, fx.env, "keys", "create", "--name", "ci", "--conversation", "ops", "--templates", "httpbin.*, hn.*",
		"--rate", "60/m", "--monthly", "100", "--expires", "30d")
	key := keyRE.FindString(out)
	if key == "" || !strings.Contains(out, "only time the key is shown") || !strings.Contains(out, "templates httpbin.*,hn.*; rate 60/m; monthly 100; expires") {
		t.Fatalf("create printed:\n%s", out)
	}
	ls := mustRun(t, fx.env, "keys", "ls")
	for _, want := range []string{"PREFIX", key[:9] + "...", "ci", "ops", "never", "true", "templates httpbin.*,hn.*, rate 60/m", "0/100"} {
		if !strings.Contains(ls, want) {
			t.Fatalf("keys ls lacks %q:\n%s", want, ls)
		}
	}
	if strings.Contains(ls, key[9:]) {
		t.Fatal("keys ls shows the key")
	}

	// The program proposes; the signer approves with the CLI.
	submit := func(k string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", fx.srv.URL()+"/v1/programs/requests", strings.NewReader(`{"template":"httpbin.headers"}`))
		req.Header.Set("Authorization", "Bearer "+k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&st)
		return resp.StatusCode, st
	}
	code, st := submit(key)
	if code != 201 {
		t.Fatalf("program submit: %d %v", code, st)
	}
	id := st["request_id"].(string)
	mustRun(t, fx.env, "approve", "ops", id)
	c := testutil.Client(fx.srv.URL(), fx.id, nil)
	if s, err := c.WaitRequest(testutil.Ctx(t), fx.conv, id); err != nil || s.State != gate.StateExecuted {
		t.Fatalf("after approval: %v %v", s, err)
	}

	out = mustRun(t, fx.env, "calls", "--service", "httpbin", "--since", "1h")
	if !strings.Contains(out, "executed") || !strings.Contains(out, "program:ci ("+key[:9]+"...)") || !strings.Contains(out, "httpbin.headers") {
		t.Fatalf("calls:\n%s", out)
	}
	var entries []api.LogEntry
	if err := json.Unmarshal([]byte(mustRun(t, fx.env, "calls", "--json", "--event", "executed")), &entries); err != nil || len(entries) != 1 || entries[0].Status != 200 {
		t.Fatalf("calls --json: %v %+v", err, entries)
	}
	out = mustRun(t, fx.env, "usage", "--by", "key")
	if !strings.Contains(out, "program:ci") || !strings.Contains(out, "SUBMITTED") {
		t.Fatalf("usage:\n%s", out)
	}
	for _, by := range []string{"service", "day"} {
		if out := mustRun(t, fx.env, "usage", "--by", by); !strings.Contains(out, strings.ToUpper(by)) {
			t.Fatalf("usage --by %s:\n%s", by, out)
		}
	}
	if code, _, _ := run(t, fx.env, "usage", "--by", "month"); code != 2 {
		t.Fatal("usage --by month is not a usage error")
	}

	mustRun(t, fx.env, "keys", "disable", "ci")
	if code, _ := submit(key); code != 401 {
		t.Fatalf("disabled key: %d", code)
	}
	mustRun(t, fx.env, "keys", "enable", "ci")
	// With --grace the old key keeps working for that long.
	graced := strings.TrimSpace(mustRun(t, fx.env, "keys", "rotate", "ci", "--grace", "1h", "--key-only"))
	if code, _ := submit(key); !keyRE.MatchString(graced) || code != 201 {
		t.Fatalf("old key within its grace: %d", code)
	}
	if ls := mustRun(t, fx.env, "keys", "ls", "--json"); !strings.Contains(ls, key[:9]) {
		t.Fatalf("the old key is not listed with its grace:\n%s", ls)
	}
	// Without --grace the old key stops at once (what a leaked key needs).
	newKey := strings.TrimSpace(mustRun(t, fx.env, "keys", "rotate", "ci", "--key-only"))
	if !keyRE.MatchString(newKey) || newKey == key {
		t.Fatalf("rotate --key-only: %q", newKey)
	}
	if code, _ := submit(key); code != 401 {
		t.Fatalf("rotated-out key: %d", code)
	}
	if code, _ := submit(newKey); code != 201 {
		t.Fatalf("new key: %d", code)
	}
	mustRun(t, fx.env, "keys", "delete", "ci")
	if code, _ := submit(newKey); code != 401 {
		t.Fatalf("deleted key: %d", code)
	}
	if out := mustRun(t, fx.env, "keys", "ls"); !strings.Contains(out, "no program keys") {
		t.Fatalf("after delete:\n%s", out)
	}

	// Without the management key: a usage error naming the variable.
	noKey := map[string]string{"TWOKEY_SERVER": fx.srv.URL()}
	if code, _, errs := run(t, noKey, "keys", "ls"); code != 2 || !strings.Contains(errs, "TWOKEY_MANAGEMENT_KEY") {
		t.Fatalf("no management key: %d %s", code, errs)
	}
	wrong := map[string]string{"TWOKEY_SERVER": fx.srv.URL(), "TWOKEY_MANAGEMENT_KEY": "wrong"}
	if code, _, errs := run(t, wrong, "keys", "ls"); code != 1 || !strings.Contains(errs, "wrong management key") {
		t.Fatalf("wrong management key: %d %s", code, errs)
	}
	if strings.Contains(fx.srv.Logs(), key[9:]) || strings.Contains(fx.srv.Logs(), newKey[9:]) || strings.Contains(fx.srv.Logs(), testMgmtKey) {
		t.Fatal("a key is in the server's log")
	}
}

func TestSnippets(t *testing.T) {
	fx := newOperatorFixture(t)
	mustRun(t, fx.env, "keys", "create", "--name", "agent", "--conversation", fx.conv)
	want := map[string][]string{
		"curl":   {"Authorization: Bearer $TWOKEY_PROGRAM_KEY", fx.srv.URL() + "/v1/proxy/ops/httpbin/get", "Prefer: wait="},
		"python": {"import os, requests", `"` + fx.srv.URL() + `/v1/proxy/ops/httpbin"`},
		"node":   {"process.env.TWOKEY_PROGRAM_KEY", "fetch("},
		"codex": {"[model_providers.twokey]", "base_url = \"" + fx.srv.URL() + "/v1/proxy/ops/openai/v1\"", "no service \"openai\"",
			"twokey serve --catalog docs/examples/ai-catalog.yaml", "twokey secret add ops --service openai", "does not stream"},
		"claude-code": {"ANTHROPIC_BASE_URL=" + fx.srv.URL() + "/v1/proxy/ops/anthropic", "ANTHROPIC_AUTH_TOKEN",
			"twokey serve --catalog docs/examples/ai-catalog.yaml", "twokey secret add ops --service anthropic", "does not stream"},
	}
	for tool, parts := range want {
		out := mustRun(t, fx.env, "snippet", tool, "--key-name", "agent")
		for _, p := range parts {
			if !strings.Contains(out, p) {
				t.Errorf("snippet %s lacks %q:\n%s", tool, p, out)
			}
		}
		if keyRE.MatchString(out) {
			t.Errorf("snippet %s prints a key", tool)
		}
	}
	// With the example catalog loaded, the note is gone.
	withAI := newOperatorFixture(t, func(o *testutil.Options) {
		o.Catalogs = append(o.Catalogs, filepath.Join("..", "..", "docs", "examples", "ai-catalog.yaml"))
	})
	mustRun(t, withAI.env, "keys", "create", "--name", "agent", "--conversation", "ops")
	if out := mustRun(t, withAI.env, "snippet", "claude-code", "--key-name", "agent"); strings.Contains(out, "no service") {
		t.Fatalf("claude-code with the AI catalog loaded:\n%s", out)
	}
	if code, _, _ := run(t, fx.env, "snippet", "emacs", "--key-name", "agent"); code != 2 {
		t.Fatal("unknown tool")
	}
	if code, _, errs := run(t, fx.env, "snippet", "curl", "--key-name", "nobody"); code != 1 || !strings.Contains(errs, "no program key named") {
		t.Fatalf("unknown key: %d %s", code, errs)
	}
	anon := map[string]string{"TWOKEY_SERVER": fx.srv.URL()}
	if out := mustRun(t, anon, "snippet", "curl", "--key-name", "agent", "--conversation", "ops"); !strings.Contains(out, "/v1/proxy/ops/httpbin") {
		t.Fatalf("without the management key:\n%s", out)
	}
}

// TestCLIOverTLS: --pin and --ca-cert let the CLI reach a server with a
// generated certificate; a wrong pin does not.
func TestCLIOverTLS(t *testing.T) {
	fx := newOperatorFixture(t, func(o *testutil.Options) {
		o.TLS = config.TLS{Mode: server.TLSGenerate, Addr: "127.0.0.1:0"}
	})
	env := map[string]string{"TWOKEY_SERVER": fx.srv.TLSURL(), "TWOKEY_HOME": fx.env["TWOKEY_HOME"], "TWOKEY_MANAGEMENT_KEY": testMgmtKey}
	if out := mustRun(t, env, "--pin", fx.srv.Fingerprint(), "templates"); !strings.Contains(out, "httpbin.headers") {
		t.Fatalf("templates over TLS:\n%s", out)
	}
	mustRun(t, env, "--pin", fx.srv.Fingerprint(), "conv", "ls")
	cert := filepath.Join(fx.srv.DataDir, "ssl", "cert.pem")
	mustRun(t, env, "--ca-cert", cert, "keys", "ls")
	env["TWOKEY_PIN"] = fx.srv.Fingerprint()
	mustRun(t, env, "say", "ops", "over https")
	delete(env, "TWOKEY_PIN")
	bad := "sha256:" + strings.Repeat("ab", 32)
	if code, _, errs := run(t, env, "--pin", bad, "conv", "ls"); code != 3 || !strings.Contains(errs, "does not match --pin") {
		t.Fatalf("wrong pin: %d %s", code, errs)
	}
	if code, _, errs := run(t, env, "keys", "ls"); code != 3 || !strings.Contains(errs, "--ca-cert") {
		t.Fatalf("no pin: %d %s", code, errs)
	}
	if code, _, _ := run(t, env, "--pin", "md5:00", "templates"); code != 2 {
		t.Fatal("a malformed pin is not a usage error")
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "twokey.yaml")
	os.WriteFile(p, []byte("addr: 127.0.0.1:0\ntls:\n  mode: generate\n  force: maybe\n"), 0o600)
	code, _, errs := run(t, map[string]string{"TWOKEY_HOME": dir}, "serve")
	if code != 1 || !strings.Contains(errs, p+":4: tls.force:") {
		t.Fatalf("bad file: %d %s", code, errs)
	}
	code, _, errs = run(t, map[string]string{"TWOKEY_HOME": t.TempDir(), "TWOKEY_TLS_FORCE": "true"}, "serve", "--tls-mode", "sometimes")
	if code != 1 || !strings.Contains(errs, "flag --tls-mode: tls.mode: \"sometimes\"") {
		t.Fatalf("bad flag: %d %s", code, errs)
	}
	code, _, errs = run(t, map[string]string{"TWOKEY_HOME": dir}, "serve", "--config", filepath.Join(dir, "none.yaml"))
	if code != 1 || !strings.Contains(errs, "none.yaml") {
		t.Fatalf("missing file: %d %s", code, errs)
	}
}

func TestConfigShow(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "twokey.yaml")
	os.WriteFile(p, []byte("addr: 127.0.0.1:9999\nmanagement:\n  key: file-secret-value\n"), 0o600)
	env := map[string]string{"TWOKEY_HOME": dir, "TWOKEY_MASTER_KEY": "bWFzdGVyLWtleS1zZWNyZXQ=", "TWOKEY_PROXY_MAX_WAIT": "2m"}
	out := mustRun(t, env, "config", "show", "--tls-mode", "generate")
	for _, want := range []string{"# configuration file " + p, "addr: 127.0.0.1:9999 # " + p + ":1", "mode: generate # flag --tls-mode",
		"max_wait: 2m # env TWOKEY_PROXY_MAX_WAIT", "retention: 90d"} {
		if !strings.Contains(out, want) {
			t.Errorf("config show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "file-secret-value") || strings.Contains(out, "bWFzdGVy") || strings.Count(out, "'********'") != 2 {
		t.Fatalf("secrets not masked:\n%s", out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, env, "config", "show", "--json")), &m); err != nil || m["addr"] != "127.0.0.1:9999" {
		t.Fatalf("--json: %v %v", err, m)
	}

	// --remote asks the running server, which never shows its key either.
	fx := newOperatorFixture(t)
	out = mustRun(t, fx.env, "config", "show", "--remote")
	if !strings.Contains(out, "key: '********'") || strings.Contains(out, testMgmtKey) {
		t.Fatalf("remote:\n%s", out)
	}
}

// TestServeWithConfig starts the real serve command from a file and
// talks to it, then stops it: the file's settings reach the server
// (metrics.enabled, proxy.default_wait 0 meaning no wait, proxy.max_wait
// capping Prefer, programs.request_ttl, services).
func TestServeWithConfig(t *testing.T) {
	dir := t.TempDir()
	up := testutil.NewUpstream(t)
	os.WriteFile(filepath.Join(dir, "twokey.yaml"), []byte("addr: 127.0.0.1:0\nmetrics:\n  enabled: false\n"+
		"proxy: {default_wait: 0s, max_wait: 20m}\nprograms:\n  request_ttl: 5m\nrequest_logs:\n  retention: 2h\n"+
		"services:\n  httpbin: "+up.URL+"/httpbin\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve"}, Stdio{In: strings.NewReader(""), Out: &out, Err: &bytes.Buffer{}},
			func(k string) string { return map[string]string{"TWOKEY_HOME": dir, "TWOKEY_MANAGEMENT_KEY": "m"}[k] })
	}()
	var url string
	re := regexp.MustCompile(`listening on (http://\S+)`)
	for i := 0; i < 500; i++ {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if url == "" {
		cancel()
		t.Fatalf("serve did not start:\n%s", out.String())
	}
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d:\n%s", code, out.String())
		}
	}()
	resp, err := http.Get(url + "/metrics")
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("metrics.enabled: false in the file: %v", err)
	}
	resp.Body.Close()
	do := func(method, path, body string, hdr map[string]string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	mk := map[string]string{"X-Management-Key": "m"}
	resp, cfg := do("GET", "/v0/management/config", "", mk)
	c, _ := cfg["config"].(map[string]any)
	if resp.StatusCode != 200 || c["management"].(map[string]any)["key"] != "********" || c["metrics"].(map[string]any)["enabled"] != false {
		t.Fatalf("effective config: %d %v", resp.StatusCode, cfg)
	}

	// A conversation with the gate on, a program key.
	id := testutil.Identity(t, "alice")
	cl := testutil.Client(url, id, nil)
	tctx := testutil.Ctx(t)
	rec, err := cl.CreateConversation(tctx, "ops", nil)
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &cp)
	if _, err := cl.EnableGate(tctx, cp.Conversation, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AddSecret(tctx, cp.Conversation, "httpbin", "", "", 0, []byte("sk_serve_test")); err != nil {
		t.Fatal(err)
	}
	resp, nk := do("POST", "/v0/management/keys", `{"name":"job","conversation":"ops"}`, mk)
	key, _ := nk["key"].(string)
	if resp.StatusCode != 201 || key == "" {
		t.Fatalf("create key: %d %v", resp.StatusCode, nk)
	}
	bearer := map[string]string{"Authorization": "Bearer " + key}

	// programs.request_ttl: 5m.
	before := time.Now()
	resp, st := do("POST", "/v1/programs/requests", `{"template":"httpbin.headers"}`, bearer)
	exp, _ := time.Parse(time.RFC3339, fmt.Sprint(st["expires_at"]))
	if resp.StatusCode != 201 || exp.Before(before.Add(5*time.Minute-time.Second)) || exp.After(time.Now().Add(5*time.Minute+time.Second)) {
		t.Fatalf("programs.request_ttl 5m: %d expires_at %v", resp.StatusCode, st["expires_at"])
	}
	// proxy.default_wait: 0s means no wait (not the 30 s default).
	start := time.Now()
	resp, _ = do("GET", "/v1/proxy/ops/httpbin/get", "", bearer)
	if resp.StatusCode != 202 || time.Since(start) > 15*time.Second || resp.Header.Get("Preference-Applied") != "" {
		t.Fatalf("proxy.default_wait 0s: %d after %s", resp.StatusCode, time.Since(start))
	}
	// proxy.max_wait: 20m caps Prefer: wait=3600; an approval ends the wait.
	// (The earlier requests are rejected first.)
	pending, _ := cl.Requests(tctx, cp.Conversation, gate.StatePending)
	if len(pending) != 2 {
		t.Fatalf("pending: %d", len(pending))
	}
	for _, r := range pending {
		if _, _, err := cl.Vote(tctx, cp.Conversation, r.RequestID, false, "not now"); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for i := 0; i < 1000; i++ {
			list, err := cl.Requests(tctx, cp.Conversation, gate.StatePending)
			if err == nil && len(list) > 0 {
				_, _, _ = cl.Vote(tctx, cp.Conversation, list[0].RequestID, true, "")
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	resp, _ = do("GET", "/v1/proxy/ops/httpbin/get", "", map[string]string{"Authorization": "Bearer " + key, "Prefer": "wait=3600"})
	if resp.StatusCode != 200 || resp.Header.Get("Preference-Applied") != "wait=1200" {
		t.Fatalf("proxy.max_wait 20m: %d Preference-Applied %q", resp.StatusCode, resp.Header.Get("Preference-Applied"))
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
