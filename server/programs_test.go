package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/reqlog"
)

const mgmtKey = "mgmt-key-for-tests-9f3a77"

func newFakeClock() *clock.Fake { return clock.NewFake(time.Now().UTC().Truncate(time.Second)) }

// withMgmt turns the management API on with mgmtKey.
func withMgmt(adjust ...func(*config.Management)) testutil.Option {
	return func(o *testutil.Options) {
		o.Management.Key = mgmtKey
		for _, f := range adjust {
			f(&o.Management)
		}
	}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r result) code() string {
	var b struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

// call makes one HTTP request; body is JSON-encoded unless it is []byte.
func call(t *testing.T, method, url string, body any, hdr map[string]string) result {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(testutil.Ctx(t), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, data}
}

func (g *gateFixture) mgmt(t *testing.T, method, path string, body any) result {
	t.Helper()
	return call(t, method, g.srv.URL()+path, body, map[string]string{"X-Management-Key": mgmtKey})
}

// program makes a program key for the fixture's conversation (by name).
func (g *gateFixture) program(t *testing.T, name string, extra map[string]any) (string, api.KeyInfo) {
	t.Helper()
	body := map[string]any{"name": name, "conversation": "ops"}
	for k, v := range extra {
		body[k] = v
	}
	r := g.mgmt(t, "POST", "/v0/management/keys", body)
	if r.status != 201 {
		t.Fatalf("create key: %d %s", r.status, r.body)
	}
	var nk api.NewKey
	r.json(t, &nk)
	return nk.Key, nk.Program
}

func bearerHdr(key string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + key}
}

func (g *gateFixture) programSubmit(t *testing.T, key string, body any) result {
	t.Helper()
	return call(t, "POST", g.srv.URL()+"/v1/programs/requests", body, bearerHdr(key))
}

func (g *gateFixture) programGet(t *testing.T, key, id, wait string) api.ProgramState {
	t.Helper()
	r := call(t, "GET", g.srv.URL()+"/v1/programs/requests/"+id+"?wait="+wait, nil, bearerHdr(key))
	if r.status != 200 {
		t.Fatalf("get program request: %d %s", r.status, r.body)
	}
	var st api.ProgramState
	r.json(t, &st)
	return st
}

// TestProgramRequestNeedsSigners: a program's proposal is a gateway-written
// gate.request marked with its name; even at M=1 it waits for a signer,
// its own approval attempt is refused, and the long poll answers as soon
// as a signer approves.
func TestProgramRequestNeedsSigners(t *testing.T) {
	g := newGate(t, 3, 1, withMgmt())
	key, info := g.program(t, "claude-code", nil)
	if !strings.HasPrefix(key, "tk_") || len(key) < 3+43 || info.Prefix != key[:9] || info.ConversationName != "ops" || info.Conversation != g.conv {
		t.Fatalf("key %q, info %+v", key, info)
	}
	r := g.programSubmit(t, key, map[string]any{"template": "httpbin.headers"})
	if r.status != 201 {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	var st api.ProgramState
	r.json(t, &st)
	if st.State != gate.StatePending || len(st.Approvals) != 0 || st.RequiredApprovals != 1 || st.Program != "claude-code" ||
		st.Submitter != g.srv.Engine().GatewayKey() || r.header.Get("Location") != st.Location {
		t.Fatalf("program request: %+v", st.RequestState)
	}
	if g.up.Count("/httpbin/headers") != 0 {
		t.Fatal("the program's request executed without a signer")
	}
	// The log holds a gate.request by the gateway, marked as the program's.
	recs, err := g.cs[1].Records(testutil.Ctx(t), g.conv, st.Seq-1, 1)
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	m, err := conversation.Verify(recs[0].Envelope)
	if err != nil || m.Kind != conversation.KindGateRequest || m.Author != g.srv.Engine().GatewayKey() {
		t.Fatalf("record: %v %+v", err, recs[0])
	}
	var p gate.RequestPayload
	_ = json.Unmarshal(m.Payload, &p)
	if p.Program != "claude-code" || p.Template != "httpbin.headers" {
		t.Fatalf("payload %+v", p)
	}
	// The program may not approve.
	for _, vote := range []string{"approve", "reject"} {
		r := call(t, "POST", g.srv.URL()+"/v1/programs/requests/"+st.RequestID+"/"+vote, nil, bearerHdr(key))
		if r.status != 403 || r.code() != twokey.EForbidden || !strings.Contains(string(r.body), "never approve") {
			t.Fatalf("program %s: %d %s", vote, r.status, r.body)
		}
	}
	// A program key is no bearer token for the signers' API.
	if r := call(t, "GET", g.srv.URL()+"/v1/conversations/"+g.conv+"/requests", nil, bearerHdr(key)); r.status != 401 {
		t.Fatalf("program key on the signers' API: %d", r.status)
	}
	// The long poll returns as soon as a signer approves.
	var wg sync.WaitGroup
	var got api.ProgramState
	var took time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		got = g.programGet(t, key, st.RequestID, "30s")
		took = time.Since(start)
	}()
	time.Sleep(100 * time.Millisecond) // let the poll start; it must not matter
	if err := g.approve(t, 2, st.RequestID); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got.State != gate.StateExecuted || got.Response == nil || got.Response.Status != 200 || took > 10*time.Second {
		t.Fatalf("after approval (%s): %+v", took, got.RequestState)
	}
	if !strings.Contains(got.Response.Body, "[redacted]") || strings.Contains(got.Response.Body, testKey) {
		t.Fatalf("response body: %s", got.Response.Body)
	}
	if len(got.Approvals) != 1 || got.Approvals[0] != g.ids[2].KeyID() {
		t.Fatalf("approvals %v", got.Approvals)
	}
	// A request that is not the program's is not shown to it.
	other := g.submit(t, 0, "/get", time.Hour)
	if r := call(t, "GET", g.srv.URL()+"/v1/programs/requests/"+other, nil, bearerHdr(key)); r.status != 404 {
		t.Fatalf("another's request: %d %s", r.status, r.body)
	}
	checkNoKey(t, g.srv, key)
}

// checkNoKey: the key is in neither the database, the server's log, nor
// its output: only its hash and prefix are kept.
func checkNoKey(t *testing.T, srv *testutil.Server, key string) {
	t.Helper()
	secret := key[9:]
	if strings.Contains(srv.Logs(), secret) {
		t.Fatal("the program key is in the server's log")
	}
	if strings.Contains(srv.Out.String(), secret) {
		t.Fatal("the program key is in the server's output")
	}
	if !strings.Contains(srv.Logs(), key[:9]) && !strings.Contains(srv.Logs(), "program") {
		t.Log("note: the log does not mention the program")
	}
	db, err := os.ReadFile(filepath.Join(srv.DataDir, "twokey.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(db, []byte(secret)) {
		t.Fatal("the program key is stored in plaintext")
	}
}

// TestProgramLimits hits each limit for real, on a fake clock.
func TestProgramLimits(t *testing.T) {
	clk := newFakeClock()
	g := newGate(t, 2, 1, withMgmt(), testutil.WithClock(clk))
	logged := func(code string) {
		t.Helper()
		if !strings.Contains(g.srv.Logs(), "program request refused") || !strings.Contains(g.srv.Logs(), "code="+code) {
			t.Fatalf("no logged event for %s:\n%s", code, g.srv.Logs())
		}
	}
	hn := func(id int) map[string]any {
		return map[string]any{"template": "hn.get-item", "params": map[string]string{"id": fmt.Sprint(id)}}
	}

	t.Run("rate", func(t *testing.T) {
		key, _ := g.program(t, "rate", map[string]any{"rate": "60/m"})
		for i := 0; i < 60; i++ {
			if r := g.programSubmit(t, key, hn(i)); r.status != 201 {
				t.Fatalf("request %d: %d %s", i+1, r.status, r.body)
			}
		}
		r := g.programSubmit(t, key, hn(61))
		if r.status != 429 || r.code() != twokey.ERateLimited || !strings.Contains(string(r.body), "60/m") {
			t.Fatalf("61st request in a minute: %d %s", r.status, r.body)
		}
		logged(twokey.ERateLimited)
		clk.Advance(time.Second)
		if r := g.programSubmit(t, key, hn(62)); r.status != 201 {
			t.Fatalf("a second later: %d %s", r.status, r.body)
		}
	})
	t.Run("templates", func(t *testing.T) {
		key, _ := g.program(t, "hn-only", map[string]any{"templates": []string{"hn.*"}})
		if r := g.programSubmit(t, key, hn(1)); r.status != 201 {
			t.Fatalf("allowed template: %d %s", r.status, r.body)
		}
		r := g.programSubmit(t, key, map[string]any{"template": "httpbin.headers"})
		if r.status != 403 || r.code() != twokey.EForbidden || !strings.Contains(string(r.body), "hn.*") {
			t.Fatalf("template outside the glob: %d %s", r.status, r.body)
		}
		logged(twokey.EForbidden)
		// A call by URL that is no template of the list is refused too,
		// and one that matches an allowed template's endpoint passes.
		r = g.programSubmit(t, key, map[string]any{"method": "GET", "url": g.baseURL + "/headers"})
		if r.status != 403 {
			t.Fatalf("raw call outside the list: %d %s", r.status, r.body)
		}
		hnBase := ""
		for _, s := range g.srv.Engine().Catalog().Services() {
			if s.Name == "hackernews" {
				hnBase = s.BaseURL
			}
		}
		r = g.programSubmit(t, key, map[string]any{"method": "GET", "url": hnBase + "/item/8863.json"})
		var st api.ProgramState
		r.json(t, &st)
		if r.status != 201 || st.Request.Template != "hn.get-item" {
			t.Fatalf("raw call of an allowed template: %d %s", r.status, r.body)
		}
	})
	t.Run("monthly", func(t *testing.T) {
		key, _ := g.program(t, "capped", map[string]any{"monthly": 3})
		for i := 0; i < 3; i++ {
			if i == 2 {
				// A request the gateway refuses is not charged.
				r := g.programSubmit(t, key, map[string]any{"service": "httpbin", "method": "GET", "url": "http://evil.example/x"})
				if r.status != 400 || r.code() != twokey.EHostMismatch {
					t.Fatalf("bad url: %d %s", r.status, r.body)
				}
			}
			if r := g.programSubmit(t, key, hn(i)); r.status != 201 {
				t.Fatalf("request %d: %d %s", i+1, r.status, r.body)
			}
		}
		r := g.programSubmit(t, key, hn(4))
		if r.status != 429 || !strings.Contains(string(r.body), "monthly cap") {
			t.Fatalf("over the monthly cap: %d %s", r.status, r.body)
		}
		var ki api.KeyInfo
		g.mgmt(t, "GET", "/v0/management/keys/capped", nil).json(t, &ki)
		if ki.MonthUsage != 3 || ki.Monthly != 3 {
			t.Fatalf("usage shown: %+v", ki)
		}
	})
	t.Run("expired", func(t *testing.T) {
		key, _ := g.program(t, "short", map[string]any{"expires": "1h"})
		if r := g.programSubmit(t, key, hn(1)); r.status != 201 {
			t.Fatalf("before expiry: %d", r.status)
		}
		clk.Advance(time.Hour)
		r := g.programSubmit(t, key, hn(2))
		if r.status != 401 || !strings.Contains(string(r.body), "expired") {
			t.Fatalf("expired key: %d %s", r.status, r.body)
		}
		logged(twokey.EUnauthorized)
	})
	t.Run("disabled, rotated, deleted", func(t *testing.T) {
		key, _ := g.program(t, "life", nil)
		g.mgmt(t, "POST", "/v0/management/keys/life/disable", nil)
		if r := g.programSubmit(t, key, hn(1)); r.status != 401 || !strings.Contains(string(r.body), "disabled") {
			t.Fatalf("disabled: %d %s", r.status, r.body)
		}
		g.mgmt(t, "POST", "/v0/management/keys/life/enable", nil)
		if r := g.programSubmit(t, key, hn(1)); r.status != 201 {
			t.Fatalf("enabled again: %d %s", r.status, r.body)
		}
		var nk api.NewKey
		g.mgmt(t, "POST", "/v0/management/keys/life/rotate", map[string]string{"grace": "10m"}).json(t, &nk)
		if nk.Key == "" || nk.Key == key {
			t.Fatalf("rotate: %+v", nk)
		}
		if r := g.programSubmit(t, key, hn(2)); r.status != 201 {
			t.Fatalf("old key within grace: %d %s", r.status, r.body)
		}
		clk.Advance(10 * time.Minute)
		if r := g.programSubmit(t, key, hn(3)); r.status != 401 || !strings.Contains(string(r.body), "rotated out") {
			t.Fatalf("rotated out: %d %s", r.status, r.body)
		}
		if r := g.programSubmit(t, nk.Key, hn(4)); r.status != 201 {
			t.Fatalf("new key: %d %s", r.status, r.body)
		}
		if r := g.mgmt(t, "DELETE", "/v0/management/keys/life", nil); r.status != 200 {
			t.Fatalf("delete: %d", r.status)
		}
		if r := g.programSubmit(t, nk.Key, hn(5)); r.status != 401 {
			t.Fatalf("deleted: %d %s", r.status, r.body)
		}
		if r := g.programSubmit(t, "tk_nonsense", hn(5)); r.status != 401 {
			t.Fatalf("malformed: %d %s", r.status, r.body)
		}
		checkNoKey(t, g.srv, nk.Key)
	})
	t.Run("list", func(t *testing.T) {
		var out struct{ Keys []api.KeyInfo }
		g.mgmt(t, "GET", "/v0/management/keys", nil).json(t, &out)
		names := []string{}
		for _, k := range out.Keys {
			names = append(names, k.Name)
			if k.Name == "rate" && (k.Rate != "60/m" || k.MonthUsage != 61 || k.LastUsed == "" || !k.Enabled) {
				t.Errorf("rate key listed as %+v", k)
			}
		}
		if strings.Join(names, ",") != "capped,hn-only,rate,short" {
			t.Fatalf("listed %v", names)
		}
	})
}

// TestProgramPendingCap: the per-submitter pending cap counts per program.
func TestProgramPendingCap(t *testing.T) {
	g := newGate(t, 2, 2, withMgmt())
	a, _ := g.program(t, "a", nil)
	b, _ := g.program(t, "b", nil)
	for i := 0; i < twokey.MaxPendingPerSigner; i++ {
		if r := g.programSubmit(t, a, map[string]any{"template": "hn.get-item", "params": map[string]string{"id": fmt.Sprint(i)}}); r.status != 201 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	if r := g.programSubmit(t, a, map[string]any{"template": "hn.top-stories"}); r.status != 429 || !strings.Contains(string(r.body), "pending") {
		t.Fatalf("over the pending cap: %d %s", r.status, r.body)
	}
	if r := g.programSubmit(t, b, map[string]any{"template": "hn.top-stories"}); r.status != 201 {
		t.Fatalf("another program: %d %s", r.status, r.body)
	}
	if err := g.approve(t, 0, g.submit(t, 0, "/get", time.Hour)); twokey.ErrorCode(err) != twokey.EAlreadyVoted {
		t.Fatalf("a signer is not capped by programs: %v", err)
	}
}

// TestProxy runs proxy mode end to end with a plain net/http client.
func TestProxy(t *testing.T) {
	g := newGate(t, 2, 1, withMgmt())
	key, _ := g.program(t, "sdk", nil)
	base := g.srv.URL() + "/v1/proxy/ops/httpbin"
	approveNext := func() {
		t.Helper()
		for i := 0; i < 500; i++ {
			list, err := g.cs[1].Requests(testutil.Ctx(t), g.conv, gate.StatePending)
			if err != nil {
				t.Error(err)
				return
			}
			if len(list) > 0 {
				if err := g.approve(t, 1, list[0].RequestID); err != nil {
					t.Error(err)
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Error("no pending request appeared")
	}

	// The call waits for the approval and returns the upstream's answer.
	go approveNext()
	req, _ := http.NewRequest("GET", base+"/headers?show=1", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Prefer", "wait=20")
	req.Header.Set("X-Trace", "abc")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "must-not-pass")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	// Headers a gate.request may not set (the gateway owns how the answer
	// is encoded) are dropped from a proxied call, not refused.
	req.Header.Set("Range", "bytes=0-10")
	req.Header.Set("Accept-Charset", "utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"X-Trace"`) || resp.Header.Get("X-Twokey-Request-Id") == "" ||
		resp.Header.Get("Preference-Applied") != "wait=20" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("proxied call: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if strings.Contains(string(body), testKey) || !strings.Contains(string(body), "[redacted]") {
		t.Fatalf("the injected key is not redacted: %s", body)
	}
	ups := g.up.Requests()
	got := ups[len(ups)-1]
	if got.Path != "/httpbin/headers" || got.Query != "show=1" || got.Header.Get("Authorization") != "Bearer "+testKey {
		t.Fatalf("upstream got %s?%s with Authorization %q", got.Path, got.Query, got.Header.Get("Authorization"))
	}
	for _, h := range []string{"X-Hop", "Proxy-Authorization", "Prefer", "Range", "Accept-Charset"} {
		if got.Header.Get(h) != "" {
			t.Errorf("%s was forwarded", h)
		}
	}
	for _, vals := range got.Header {
		for _, v := range vals {
			if strings.Contains(v, key) {
				t.Fatal("the program's key reached the upstream")
			}
		}
	}
	if got.Header.Get("X-Trace") != "abc" {
		t.Error("an end-to-end header was dropped")
	}

	// With no approval in time: 202 and the request's Location, which the
	// program polls.
	r := call(t, "POST", base+"/post", []byte(`{"amount": 5}`), map[string]string{"Authorization": "Bearer " + key,
		"Prefer": "wait=0", "Content-Type": "application/json"})
	if r.status != 202 || r.header.Get("Location") == "" {
		t.Fatalf("unapproved call: %d %s", r.status, r.body)
	}
	var st api.ProgramState
	r.json(t, &st)
	if string(st.Request.Body) != `{"amount":5}` || st.Request.Method != "POST" {
		t.Fatalf("recorded call: %+v", st.Request)
	}
	go approveNext()
	r = call(t, "GET", g.srv.URL()+r.header.Get("Location")+"?wait=20s", nil, bearerHdr(key))
	r.json(t, &st)
	if st.State != gate.StateExecuted || st.Response == nil || !strings.Contains(st.Response.Body, `"amount": 5`) {
		t.Fatalf("polled: %s", r.body)
	}

	// Refusals.
	for _, tc := range []struct {
		name, method, url string
		body              []byte
		hdr               map[string]string
		status            int
	}{
		{"no key", "GET", base + "/get", nil, nil, 401},
		{"other conversation", "GET", g.srv.URL() + "/v1/proxy/elsewhere/httpbin/get", nil, bearerHdr(key), 403},
		{"unknown service", "GET", g.srv.URL() + "/v1/proxy/ops/nosuch/get", nil, bearerHdr(key), 404},
		{"escape the base", "GET", base + "/..%2f..%2fsecret", nil, bearerHdr(key), 400},
		{"not JSON", "POST", base + "/post", []byte("a=1&b=2"), bearerHdr(key), 400},
	} {
		if r := call(t, tc.method, tc.url, tc.body, tc.hdr); r.status != tc.status {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
}

// TestProxyCurl runs proxy mode with curl, as a user would.
func TestProxyCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is not installed, and CI is set: .ci/run installs it, so this run would skip proxy mode with curl")
		}
		t.Skip("curl is not installed (.ci/run installs it)")
	}
	g := newGate(t, 2, 1, withMgmt())
	key, _ := g.program(t, "curl", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			list, _ := g.cs[0].Requests(testutil.Ctx(t), g.conv, gate.StatePending)
			if len(list) > 0 {
				_ = g.approve(t, 0, list[0].RequestID)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	out, err := exec.CommandContext(testutil.Ctx(t), curl, "-sS", "-i", "--max-time", "25",
		"-H", "Authorization: Bearer "+key, "-H", "Prefer: wait=20",
		g.srv.URL()+"/v1/proxy/ops/httpbin/get?q=curl").CombinedOutput()
	<-done
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.HasPrefix(s, "HTTP/1.1 200") || !strings.Contains(s, `"q": [`) || !strings.Contains(strings.ToLower(s), "x-twokey-request-id:") {
		t.Fatalf("curl got:\n%s", s)
	}
}

// TestManagementDisabled: with no key, the whole API is 404.
func TestManagementDisabled(t *testing.T) {
	srv := testutil.StartServer(t, nil)
	for _, p := range []string{"/v0/management/keys", "/v0/management/config", "/v0/management/anything"} {
		r := call(t, "GET", srv.URL()+p, nil, map[string]string{"X-Management-Key": "anything"})
		if r.status != 404 || r.code() != twokey.ENotFound {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
}

// TestManagementAccess: loopback only, the key, and the block on an
// address that sends wrong keys (X-Forwarded-For believed only from a
// trusted proxy), lifted by time or by an operator.
func TestManagementAccess(t *testing.T) {
	clk := newFakeClock()
	srv := testutil.StartServer(t, nil, testutil.WithClock(clk), withMgmt())
	u := srv.URL() + "/v0/management/keys"
	get := func(key string, hdr map[string]string) result {
		h := map[string]string{"X-Management-Key": key}
		for k, v := range hdr {
			h[k] = v
		}
		if key == "" {
			delete(h, "X-Management-Key")
		}
		return call(t, "GET", u, nil, h)
	}
	if r := get(mgmtKey, nil); r.status != 200 {
		t.Fatalf("right key: %d %s", r.status, r.body)
	}
	for i := 0; i < 10; i++ {
		if r := get("", nil); r.status != 401 {
			t.Fatalf("no key: %d", r.status)
		}
	}
	if r := get(mgmtKey, nil); r.status != 200 {
		t.Fatal("requests without a key counted as failures")
	}
	// Rotating X-Forwarded-For from an untrusted peer does not evade the block.
	for i := 0; i < 5; i++ {
		if r := get("wrong", map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i)}); r.status != 401 {
			t.Fatalf("wrong key %d: %d", i, r.status)
		}
	}
	r := get(mgmtKey, nil)
	if r.status != 403 || !strings.Contains(string(r.body), "blocked until") || r.header.Get("Retry-After") == "" {
		t.Fatalf("blocked address with the right key: %d %s", r.status, r.body)
	}
	clk.Advance(29 * time.Minute)
	if r := get(mgmtKey, nil); r.status != 403 {
		t.Fatalf("still blocked at 29m: %d", r.status)
	}
	clk.Advance(time.Minute)
	if r := get(mgmtKey, nil); r.status != 200 {
		t.Fatalf("after 30m: %d %s", r.status, r.body)
	}
	if !strings.Contains(srv.Logs(), "address blocked after wrong management keys") || strings.Contains(srv.Logs(), mgmtKey) {
		t.Fatal("the block is not logged, or the key is")
	}
}

func TestManagementProxiesAndRemote(t *testing.T) {
	trusted := func(remote bool) testutil.Option {
		return withMgmt(func(m *config.Management) {
			m.TrustedProxies = []string{"127.0.0.1"}
			m.AllowRemote = remote
		})
	}
	// Behind a trusted proxy a remote client is remote: refused by default.
	srv := testutil.StartServer(t, nil, trusted(false))
	r := call(t, "GET", srv.URL()+"/v0/management/keys", nil, map[string]string{"X-Management-Key": mgmtKey, "X-Forwarded-For": "203.0.113.9"})
	if r.status != 403 || !strings.Contains(string(r.body), "loopback") {
		t.Fatalf("remote client: %d %s", r.status, r.body)
	}
	srv.Stop(t)

	srv = testutil.StartServer(t, nil, trusted(true))
	as := func(addr, key string) result {
		return call(t, "GET", srv.URL()+"/v0/management/config", nil, map[string]string{"X-Management-Key": key, "X-Forwarded-For": "10.9.9.9, " + addr})
	}
	if r := as("203.0.113.9", mgmtKey); r.status != 200 {
		t.Fatalf("remote allowed: %d %s", r.status, r.body)
	}
	for i := 0; i < 5; i++ {
		as("203.0.113.9", "wrong")
	}
	if r := as("203.0.113.9", mgmtKey); r.status != 403 {
		t.Fatalf("blocked: %d", r.status)
	}
	if r := as("203.0.113.10", mgmtKey); r.status != 200 {
		t.Fatalf("another address is not blocked: %d", r.status)
	}
	var bans struct{ Bans []api.Ban }
	call(t, "GET", srv.URL()+"/v0/management/bans", nil, map[string]string{"X-Management-Key": mgmtKey}).json(t, &bans)
	if len(bans.Bans) != 1 || bans.Bans[0].Addr != "203.0.113.9" {
		t.Fatalf("bans %+v", bans)
	}
	if r := call(t, "DELETE", srv.URL()+"/v0/management/bans?addr=203.0.113.9", nil, map[string]string{"X-Management-Key": mgmtKey}); r.status != 200 {
		t.Fatalf("unban: %d %s", r.status, r.body)
	}
	if r := as("203.0.113.9", mgmtKey); r.status != 200 {
		t.Fatalf("after unban: %d", r.status)
	}
}

// TestLogsAndUsageSurviveRestart: executions are logged durably with the
// fields the issue names, and usage adds them up, across a restart.
func TestLogsAndUsageSurviveRestart(t *testing.T) {
	g := newGate(t, 2, 1, withMgmt())
	key, _ := g.program(t, "job", nil)
	id := g.submit(t, 0, "/get?token=s3cr3t", time.Hour)
	g.wait(t, id)
	r := g.programSubmit(t, key, map[string]any{"template": "httpbin.headers"})
	var st api.ProgramState
	r.json(t, &st)
	if err := g.approve(t, 1, st.RequestID); err != nil {
		t.Fatal(err)
	}
	g.wait(t, st.RequestID)
	g.srv = g.srv.Restart(t, withMgmt())

	var logs struct{ Entries []api.LogEntry }
	g.mgmt(t, "GET", "/v0/management/logs?service=httpbin&since=24h&event=executed", nil).json(t, &logs)
	if len(logs.Entries) != 2 {
		t.Fatalf("entries after restart: %+v", logs.Entries)
	}
	prog, signer := logs.Entries[0], logs.Entries[1]
	if prog.Program != "job" || prog.KeyPrefix != key[:9] || prog.Template != "httpbin.headers" || prog.Status != 200 ||
		len(prog.Approvers) != 1 || prog.Approvers[0] != g.ids[1].KeyID() || prog.Conversation != g.conv || prog.Method != "GET" {
		t.Fatalf("program entry %+v", prog)
	}
	if signer.Submitter != g.ids[0].KeyID() || signer.URL != g.baseURL+"/get?token=***" || signer.DurationMS <= 0 {
		t.Fatalf("signer entry %+v", signer)
	}
	var usage struct{ Rows []api.UsageRow }
	g.mgmt(t, "GET", "/v0/management/usage?by=key", nil).json(t, &usage)
	rows := map[string]api.UsageRow{}
	for _, u := range usage.Rows {
		rows[u.Group] = u
	}
	if u := rows["program:job"]; len(rows) != 2 || u.Submitted != 1 || u.Executed != 1 || u.P95MS <= 0 || rows[g.ids[0].KeyID()].Executed != 1 {
		t.Fatalf("usage by key %+v", usage.Rows)
	}
	g.mgmt(t, "GET", "/v0/management/usage?by=day", nil).json(t, &usage)
	if len(usage.Rows) != 1 || usage.Rows[0].Submitted != 2 || usage.Rows[0].Executed != 2 {
		t.Fatalf("usage by day %+v", usage.Rows)
	}
	var ki api.KeyInfo
	g.mgmt(t, "GET", "/v0/management/keys/job", nil).json(t, &ki)
	if ki.MonthUsage != 1 {
		t.Fatalf("monthly usage after restart: %+v", ki)
	}
	if r := g.programSubmit(t, key, map[string]any{"template": "hn.top-stories"}); r.status != 201 {
		t.Fatalf("the key after restart: %d %s", r.status, r.body)
	}
}

// TestRequestLogNamesTheKeyUsed: each entry names the prefix of the key a
// request came with: an old key used within its grace after a rotation is
// logged as the old key, and a request whose program is deleted before it
// executes keeps its key's prefix.
func TestRequestLogNamesTheKeyUsed(t *testing.T) {
	g := newGate(t, 2, 1, withMgmt())
	oldKey, _ := g.program(t, "rot", nil)
	var nk api.NewKey
	if r := g.mgmt(t, "POST", "/v0/management/keys/rot/rotate", map[string]string{"grace": "1h"}); r.status != 200 {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	} else {
		r.json(t, &nk)
	}
	submitted := map[string]string{} // request id -> prefix of the key used
	for _, key := range []string{oldKey, nk.Key, oldKey} {
		r := g.programSubmit(t, key, map[string]any{"template": "httpbin.headers"})
		if r.status != 201 {
			t.Fatalf("submit: %d %s", r.status, r.body)
		}
		var st api.ProgramState
		r.json(t, &st)
		submitted[st.RequestID] = key[:9]
	}
	// Approve them all once the program is gone: the log still names the key.
	if r := g.mgmt(t, "DELETE", "/v0/management/keys/rot", nil); r.status != 200 {
		t.Fatalf("delete: %d", r.status)
	}
	for id := range submitted {
		if err := g.approve(t, 1, id); err != nil {
			t.Fatal(err)
		}
		g.wait(t, id)
	}
	var logs struct{ Entries []api.LogEntry }
	g.mgmt(t, "GET", "/v0/management/logs?program=rot", nil).json(t, &logs)
	if len(logs.Entries) != 6 {
		t.Fatalf("entries: %+v", logs.Entries)
	}
	seen := map[string]int{}
	for _, e := range logs.Entries {
		if want := submitted[e.RequestID]; e.KeyPrefix != want {
			t.Errorf("%s entry of %s logged key %q, want %q (old key %s, new %s)", e.Event, e.RequestID, e.KeyPrefix, want, oldKey[:9], nk.Key[:9])
		}
		seen[e.KeyPrefix]++
	}
	if seen[oldKey[:9]] != 4 || seen[nk.Key[:9]] != 2 {
		t.Fatalf("entries per key: %v", seen)
	}
}

// TestRotateDefaultGrace: a rotation that names no grace ends the old key
// at once (a key that leaked is rotated out now); a grace keeps it valid
// exactly that long.
func TestRotateDefaultGrace(t *testing.T) {
	clk := newFakeClock()
	g := newGate(t, 2, 1, withMgmt(), testutil.WithClock(clk))
	key, _ := g.program(t, "r", nil)
	hn := map[string]any{"template": "hn.top-stories"}
	var nk api.NewKey
	g.mgmt(t, "POST", "/v0/management/keys/r/rotate", nil).json(t, &nk)
	if r := g.programSubmit(t, key, hn); r.status != 401 || !strings.Contains(string(r.body), "rotated out") {
		t.Fatalf("old key after a rotation without grace: %d %s", r.status, r.body)
	}
	second := nk.Key
	if r := g.programSubmit(t, second, hn); r.status != 201 {
		t.Fatalf("new key: %d %s", r.status, r.body)
	}
	g.mgmt(t, "POST", "/v0/management/keys/r/rotate", map[string]string{"grace": "1h"}).json(t, &nk)
	if !slices.ContainsFunc(nk.Program.OldKeys, func(k api.OldKey) bool {
		return k.Prefix == second[:len(k.Prefix)] && k.ValidUntil == conversation.FormatTime(clk.Now().Add(time.Hour))
	}) {
		t.Fatalf("old keys after a rotation with grace 1h: %+v", nk.Program.OldKeys)
	}
	clk.Advance(time.Hour - time.Second)
	if r := g.programSubmit(t, second, hn); r.status != 201 {
		t.Fatalf("old key within its grace: %d %s", r.status, r.body)
	}
	clk.Advance(time.Second)
	if r := g.programSubmit(t, second, hn); r.status != 401 {
		t.Fatalf("old key after its grace: %d %s", r.status, r.body)
	}
}

// approveNextPending approves the first pending request of g's conversation
// as signer i once one appears (bounded polling).
func (g *gateFixture) approveNextPending(t *testing.T, i int) {
	for n := 0; n < 1000; n++ {
		list, err := g.cs[i].Requests(testutil.Ctx(t), g.conv, gate.StatePending)
		if err != nil {
			t.Error(err)
			return
		}
		if len(list) > 0 {
			if err := g.approve(t, i, list[0].RequestID); err != nil {
				t.Error(err)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("no pending request appeared")
}

// TestProxyWaits: with no Prefer header the proxy waits proxy.default_wait
// (30 s by default) and says nothing of a preference; a Prefer: wait above
// proxy.max_wait is capped, and Preference-Applied says so; a default of
// "no wait" answers 202 at once.
func TestProxyWaits(t *testing.T) {
	g := newGate(t, 2, 1, withMgmt())
	key, _ := g.program(t, "w", nil)
	go g.approveNextPending(t, 1)
	r := call(t, "GET", g.srv.URL()+"/v1/proxy/ops/httpbin/get", nil, bearerHdr(key))
	if r.status != 200 || r.header.Get("Preference-Applied") != "" {
		t.Fatalf("no Prefer, default wait: %d %v %s", r.status, r.header, r.body)
	}

	g = newGate(t, 2, 1, withMgmt(), func(o *testutil.Options) { o.Proxy.MaxWait, o.Proxy.DefaultWait = config.Duration(time.Second), 0 })
	key, _ = g.program(t, "w", nil)
	start := time.Now()
	r = call(t, "GET", g.srv.URL()+"/v1/proxy/ops/httpbin/get", nil, bearerHdr(key))
	if r.status != 202 || r.header.Get("Location") == "" || r.header.Get("Preference-Applied") != "" || time.Since(start) > 10*time.Second {
		t.Fatalf("no Prefer, no default wait: %d %v %s", r.status, r.header, r.body)
	}
	hdr := bearerHdr(key)
	hdr["Prefer"] = "respond-async, wait=300"
	start = time.Now()
	r = call(t, "GET", g.srv.URL()+"/v1/proxy/ops/httpbin/get", nil, hdr)
	if r.status != 202 || r.header.Get("Preference-Applied") != "wait=1" || time.Since(start) < time.Second {
		t.Fatalf("Prefer: wait=300 with max_wait 1s: %d %v after %s", r.status, r.header, time.Since(start))
	}
}

// TestProxyKeyHeaderService runs proxy mode against a service whose key
// header is not Authorization (anthropic, from the example AI catalog): the
// program authenticates with X-Api-Key, the client's own Authorization is
// dropped (not overwritten: the service's key goes in x-api-key), and the
// program key reaches no upstream header.
func TestProxyKeyHeaderService(t *testing.T) {
	catalogFile := filepath.Join("..", "docs", "examples", "ai-catalog.yaml")
	g := newGate(t, 2, 1, withMgmt(), func(o *testutil.Options) {
		o.Catalogs = append(o.Catalogs, catalogFile)
		if base, ok := o.Services["httpbin"]; ok {
			o.Services["anthropic"] = base
		}
	})
	const anthropicKey = "sk-ant-test-7f3e19c0a2"
	if _, err := g.cs[0].AddSecret(testutil.Ctx(t), g.conv, "anthropic", "", "", 0, []byte(anthropicKey)); err != nil {
		t.Fatal(err)
	}
	key, _ := g.program(t, "claude", nil)
	go g.approveNextPending(t, 1)
	r := call(t, "POST", g.srv.URL()+"/v1/proxy/ops/anthropic/anything/v1/messages", []byte(`{"model":"m","max_tokens":1}`),
		map[string]string{"X-Api-Key": key, "Authorization": "Bearer client-own-token", "Anthropic-Version": "2023-06-01",
			"Content-Type": "application/json", "Prefer": "wait=20"})
	if r.status != 200 {
		t.Fatalf("proxied call: %d %s", r.status, r.body)
	}
	reqs := g.up.Requests()
	got := reqs[len(reqs)-1]
	if got.Path != "/httpbin/anything/v1/messages" || got.Header.Get("X-Api-Key") != anthropicKey || got.Header.Get("Anthropic-Version") != "2023-06-01" {
		t.Fatalf("upstream got %s with x-api-key %q, anthropic-version %q", got.Path, got.Header.Get("X-Api-Key"), got.Header.Get("Anthropic-Version"))
	}
	if a := got.Header.Get("Authorization"); a != "" {
		t.Fatalf("the client's own Authorization reached the upstream: %q", a)
	}
	for name, vals := range got.Header {
		for _, v := range vals {
			if strings.Contains(v, key) || strings.Contains(v, "client-own-token") {
				t.Fatalf("upstream header %s carries the program key or the client's token", name)
			}
		}
	}
	if strings.Contains(string(r.body), anthropicKey) {
		t.Fatal("the service key is in the proxied answer")
	}
}

// TestExampleAICatalog: docs/examples/ai-catalog.yaml parses as a catalog
// file and adds openai and anthropic with their key headers to the starter.
func TestExampleAICatalog(t *testing.T) {
	path := filepath.Join("..", "docs", "examples", "ai-catalog.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Parse(path, data); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Starter()
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][3]string{
		"openai":    {"https://api.openai.com", "Authorization", "Bearer {value}"},
		"anthropic": {"https://api.anthropic.com", "x-api-key", "{value}"},
	} {
		s, ok := cat.Service(name)
		if !ok || s.BaseURL != want[0] || !strings.EqualFold(s.HeaderName, want[1]) || s.HeaderTemplate != want[2] || s.Auth != catalog.AuthRequired {
			t.Errorf("service %s: %+v", name, s)
		}
	}
	for _, tmpl := range []string{"openai.list-models", "anthropic.list-models"} {
		if _, ok := cat.Template(tmpl); !ok {
			t.Errorf("no template %s", tmpl)
		}
	}
}

// TestProgramRequestTTL: a program request waits programs.request_ttl for
// approvals, or what expires_in (POST) or X-Twokey-Expires (proxy) says,
// at most 7 days.
func TestProgramRequestTTL(t *testing.T) {
	clk := newFakeClock()
	g := newGate(t, 2, 1, withMgmt(), testutil.WithClock(clk), func(o *testutil.Options) { o.Programs.RequestTTL = config.Duration(20 * time.Minute) })
	key, _ := g.program(t, "ttl", nil)
	expiry := func(r result) string {
		t.Helper()
		var st api.ProgramState
		r.json(t, &st)
		return st.ExpiresAt
	}
	at := func(d time.Duration) string { return conversation.FormatTime(clk.Now().Add(d)) }
	hn := func(extra map[string]any) map[string]any {
		b := map[string]any{"template": "hn.top-stories"}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	if r := g.programSubmit(t, key, hn(nil)); r.status != 201 || expiry(r) != at(20*time.Minute) {
		t.Fatalf("default ttl: %d %s", r.status, r.body)
	}
	if r := g.programSubmit(t, key, hn(map[string]any{"expires_in": "2h"})); r.status != 201 || expiry(r) != at(2*time.Hour) {
		t.Fatalf("expires_in 2h: %d %s", r.status, r.body)
	}
	for _, bad := range []string{"forever", "-1h", "8d"} {
		if r := g.programSubmit(t, key, hn(map[string]any{"expires_in": bad})); r.status != 400 {
			t.Errorf("expires_in %s: %d %s", bad, r.status, r.body)
		}
	}
	hdr := bearerHdr(key)
	hdr["Prefer"] = "wait=0"
	hdr["X-Twokey-Expires"] = "45m"
	if r := call(t, "GET", g.srv.URL()+"/v1/proxy/ops/httpbin/get", nil, hdr); r.status != 202 || expiry(r) != at(45*time.Minute) {
		t.Fatalf("X-Twokey-Expires 45m: %d %s", r.status, r.body)
	}
	hdr["X-Twokey-Expires"] = "soon"
	if r := call(t, "GET", g.srv.URL()+"/v1/proxy/ops/httpbin/get", nil, hdr); r.status != 400 || !strings.Contains(string(r.body), "X-Twokey-Expires") {
		t.Fatalf("X-Twokey-Expires soon: %d %s", r.status, r.body)
	}
}

// TestAllowRemoteWithoutTLSWarns: opening the management API to remote
// clients over plain HTTP is logged as a warning at start.
func TestAllowRemoteWithoutTLSWarns(t *testing.T) {
	srv := testutil.StartServer(t, nil, withMgmt(func(m *config.Management) { m.AllowRemote = true }))
	if !strings.Contains(srv.Logs(), "management.allow_remote is on but TLS is off") {
		t.Fatalf("no warning:\n%s", srv.Logs())
	}
	srv = testutil.StartServer(t, nil, withMgmt())
	if strings.Contains(srv.Logs(), "allow_remote") {
		t.Fatalf("a warning without allow_remote:\n%s", srv.Logs())
	}
}

// TestLogRetentionOption: request_logs.retention (Options.LogRetention)
// is what the background prune keeps.
func TestLogRetentionOption(t *testing.T) {
	clk := newFakeClock()
	g := newGateOn(t, clk, 2, 2, withMgmt(), func(o *testutil.Options) { o.RequestLogs.Retention = config.Duration(2 * time.Hour) })
	old := g.submit(t, 0, "/get", 24*time.Hour)
	clk.Advance(90 * time.Minute) // the prunes at 1m and 61m keep it
	recent := g.submit(t, 0, "/get", 24*time.Hour)
	clk.Advance(61 * time.Minute) // the prune at 121m cuts at 1m: the first goes
	page, err := g.srv.RequestLog().Query(reqlog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if entries := page.Entries; len(entries) != 1 || entries[0].RequestID != recent || entries[0].RequestID == old {
		t.Fatalf("entries after pruning with a 2h retention: %+v", entries)
	}
}

// TestProxyReturnsBinaryBodiesAsBytes: a body that is not UTF-8 is base64
// in the conversation's record, and the program gets its bytes back.
func TestProxyReturnsBinaryBodiesAsBytes(t *testing.T) {
	g := newGate(t, 2, 1, withMgmt())
	key, _ := g.program(t, "bin", nil)
	go g.approveNextPending(t, 1)
	r := call(t, "GET", g.srv.URL()+"/v1/proxy/ops/httpbin/bytes/512?seed=7", nil, bearerHdr(key))
	if r.status != 200 || len(r.body) != 512 || r.header.Get("Content-Length") != "512" {
		t.Fatalf("binary body through the proxy: %d, %d bytes, Content-Length %s", r.status, len(r.body), r.header.Get("Content-Length"))
	}
	if utf8.Valid(r.body) {
		t.Fatal("the test's body is valid UTF-8; pick another seed")
	}
	ups := g.up.Requests()
	if got := ups[len(ups)-1]; got.Path != "/httpbin/bytes/512" {
		t.Fatalf("upstream got %s", got.Path)
	}
}
