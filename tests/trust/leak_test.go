package trust_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// recorder is an http.RoundTripper that keeps every response body.
type recorder struct {
	mu     sync.Mutex
	bodies bytes.Buffer
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.mu.Lock()
	r.bodies.Write(data)
	r.bodies.WriteByte('\n')
	r.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp, err
}

// needles are the spellings of a secret that must appear nowhere: the raw
// bytes, hex both cases, standard and URL-safe base64 at each of the
// three alignments it can have inside a longer encoded blob (so a key
// inside a base64 payload or sealed blob is found too), and the secret
// inside a JSON string as encoders write it (Go's HTML-escaping default,
// plain, \uXXXX in upper case, escaped slashes), once or twice.
func needles(secret []byte) map[string][]byte {
	out := map[string][]byte{
		"raw":       secret,
		"hex":       []byte(hex.EncodeToString(secret)),
		"HEX":       []byte(strings.ToUpper(hex.EncodeToString(secret))),
		"base64":    []byte(base64.StdEncoding.EncodeToString(secret)),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(secret)),
	}
	goForm, _ := json.Marshal(string(secret))
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	enc.Encode(string(secret))
	plainForm := strings.TrimSuffix(plain.String(), "\n")
	jsonForms := map[string]string{
		"JSON (Go, HTML-escaped)": string(goForm[1 : len(goForm)-1]),
		"JSON (plain)":            plainForm[1 : len(plainForm)-1],
	}
	jsonForms["JSON (upper-case \\u)"] = regexp.MustCompile(`\\u[0-9a-f]{4}`).ReplaceAllStringFunc(jsonForms["JSON (Go, HTML-escaped)"],
		func(u string) string { return `\u` + strings.ToUpper(u[2:]) })
	jsonForms["JSON (escaped slashes)"] = strings.ReplaceAll(jsonForms["JSON (plain)"], "/", `\/`)
	for name, f := range jsonForms {
		if f != string(secret) {
			out[name] = []byte(f)
			// A JSON body inside a JSON string (a record's body field, a
			// WebSocket frame) is escaped twice.
			twice, _ := json.Marshal(f)
			out[name+" inside JSON"] = twice[1 : len(twice)-1]
		}
	}
	for shift := 0; shift < 3; shift++ {
		prefixed := append(make([]byte, shift), secret...)
		for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "url": base64.URLEncoding} {
			s := enc.EncodeToString(prefixed)
			from := 0
			if shift > 0 {
				from = 4
			}
			out[name+" base64 at offset "+string(rune('0'+shift))] = []byte(s[from : len(s)-4])
		}
	}
	return out
}

// echoFailure answers /httpbin/fail-echo with a 500 whose JSON body (Go's
// encoder: <, > and & escaped) and X-Request-Id header echo the injected
// Authorization header, and hands everything else to up.
func echoFailure(up *testutil.Upstream) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/fail-echo") {
			up.Config.Handler.ServeHTTP(w, r)
			return
		}
		auth := r.Header.Get("Authorization")
		up.Config.Handler.ServeHTTP(httptest.NewRecorder(), r) // recorded like any other call
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", auth)
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid credentials", "credentials": auth})
	})
}

// TestSecretNeverLeaks provisions a known key, runs the whole flow (a
// request, an approval, execution against upstream endpoints that echo the
// injected header back, and a failing call whose 500 body and a response
// header echo it), and looks for the key in every spelling, JSON-escaped
// ones included, in the database file, every record, the server's log,
// every HTTP and WebSocket answer, the CLI's output and an audit export.
// The key has characters JSON encoders escape (<, >, &, /) and its header
// template has quotes, so the echoes really are escaped. It checks first
// that the key reached the upstream, so the search is not vacuous.
func TestSecretNeverLeaks(t *testing.T) {
	t.Parallel()
	needBinary(t)
	raw := make([]byte, 24)
	rand.Read(raw)
	secret := []byte("sk_live_<" + hex.EncodeToString(raw[:12]) + ">&/" + hex.EncodeToString(raw[12:]))
	const template = `Token token="{value}"`
	header := strings.Replace(template, "{value}", string(secret), 1)
	// A key the vault refuses: it must not leak from the refusal either.
	refused := []byte(`sk_"quoted"_\` + hex.EncodeToString(raw[:8]))
	up := testutil.NewUpstream(t)
	echo := httptest.NewServer(echoFailure(up))
	t.Cleanup(echo.Close)
	srv := testutil.StartServer(t, up, func(o *testutil.Options) {
		o.Services["httpbin"] = echo.URL + "/httpbin"
	})
	dir := t.TempDir()
	var cliOut bytes.Buffer
	run := func(who string, stdin []byte, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv("TWOKEY_SERVER="+srv.URL(), "TWOKEY_IDENTITY="+filepath.Join(dir, who+".json"), "HOME="+dir)
		cmd.Stdin = bytes.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cliOut.Write(out.Bytes())
		return out.String(), err
	}
	cli := func(who string, stdin []byte, args ...string) string {
		t.Helper()
		out, err := run(who, stdin, args...)
		if err != nil {
			t.Fatalf("twokey %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	cli("alice", nil, "id", "new", "--name", "alice", "--out", filepath.Join(dir, "alice.json"))
	cli("bob", nil, "id", "new", "--name", "bob", "--out", filepath.Join(dir, "bob.json"))
	bobKey := strings.TrimSpace(cli("bob", nil, "id", "key"))
	cli("alice", nil, "conv", "create", "ops", "--member", "bob="+bobKey)
	cli("alice", nil, "gate", "enable", "ops", "--approvals", "2")
	if out, err := run("alice", append(refused, '\n'), "secret", "add", "ops", "--service", "httpbin"); err == nil || !strings.Contains(out, "bad_payload") {
		t.Fatalf("a key with a quote and a backslash was not refused: %v\n%s", err, out)
	}
	cli("alice", append(secret, '\n'), "secret", "add", "ops", "--service", "httpbin", "--template", template)
	idRE := regexp.MustCompile(`submitted request ([0-9a-f-]{36})`)
	var ids []string
	for _, args := range [][]string{{"httpbin.headers"}, {"httpbin.echo", "data=" + "hello"}} {
		out := cli("alice", nil, append([]string{"request", "ops"}, args...)...)
		m := idRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no request id in %q", out)
		}
		ids = append(ids, m[1])
		cli("bob", nil, "approve", "ops", m[1])
		cli("alice", nil, "request", "show", "ops", m[1], "--wait", "--body")
	}
	// The error path: a call the upstream fails with a 500 that echoes the
	// key in its body and in a response header the gateway publishes.
	alice, err := conversation.LoadIdentity(filepath.Join(dir, "alice.json"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Ctx(t)
	ca := testutil.Client(srv.URL(), alice, nil)
	convs, err := ca.Conversations(ctx)
	if err != nil || len(convs) != 1 {
		t.Fatalf("conversations: %v %v", convs, err)
	}
	conv := convs[0].ID
	rec, err := ca.Submit(ctx, conv, gate.RequestPayload{Service: "httpbin", Method: "GET", URL: echo.URL + "/httpbin/fail-echo",
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	var failReq gate.RequestPayload
	_ = json.Unmarshal(rec.Body, &failReq)
	ids = append(ids, failReq.RequestID)
	cli("bob", nil, "approve", "ops", failReq.RequestID)
	cli("alice", nil, "request", "show", "ops", failReq.RequestID, "--wait", "--body")
	cli("alice", nil, "log", "ops")
	cli("bob", nil, "requests", "ops")
	cli("bob", nil, "secret", "ls", "ops")
	cli("bob", nil, "gate", "show", "ops")
	export := filepath.Join(dir, "ops-audit.json")
	cli("bob", nil, "audit", "export", "ops", "-o", export)
	cli("bob", nil, "audit", "verify", export)
	cli("bob", nil, "audit", "verify", "ops", "--live")

	// The key did reach the upstream, injected, for all three calls.
	got := 0
	for _, r := range up.Requests() {
		if r.Header.Get("Authorization") == header {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("the upstream saw the injected key %d times, want 3: the search below would prove nothing", got)
	}

	// Everything a member can read, through a recording client.
	rec2 := &recorder{}
	c := testutil.Client(srv.URL(), alice, nil)
	c.HTTP = &http.Client{Transport: rec2, Timeout: 30 * time.Second}
	x, err := audit.Fetch(ctx, c, conv)
	if err != nil {
		t.Fatal(err)
	}
	c.Gate(ctx, conv)
	c.Requests(ctx, conv, "")
	for _, id := range ids {
		c.Request(ctx, conv, id)
	}
	var wsFrames bytes.Buffer
	ws, err := c.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": conv, "after": 0})
	for seq := 0; seq < len(x.Records); {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, frame, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("websocket after %d records: %v", seq, err)
		}
		wsFrames.Write(frame)
		if bytes.Contains(frame, []byte(`"op":"record"`)) {
			seq++
		}
	}
	ws.Close()
	var records bytes.Buffer
	for _, r := range x.Records {
		b, _ := json.Marshal(r)
		records.Write(b)
		p, _ := base64.StdEncoding.DecodeString(r.Envelope.Payload)
		records.Write(p) // the signed bytes themselves, decoded
	}
	exportFile, _ := os.ReadFile(export)
	srv.Stop(t) // the database file at rest, closed
	files := map[string][]byte{}
	filepath.Walk(srv.DataDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			files[path], _ = os.ReadFile(path)
		}
		return nil
	})
	if len(files[filepath.Join(srv.DataDir, "twokey.db")]) == 0 {
		t.Fatal("no database file to search")
	}
	places := map[string][]byte{
		"the log's records":  records.Bytes(),
		"the server's log":   []byte(srv.Logs()),
		"HTTP answers":       rec2.bodies.Bytes(),
		"WebSocket frames":   wsFrames.Bytes(),
		"the CLI's output":   cliOut.Bytes(),
		"the audit export":   exportFile,
		"the server's start": []byte(srv.Out.String()),
	}
	for path, data := range files {
		places["the data dir file "+filepath.Base(path)] = data
	}
	for where, data := range places {
		for form, needle := range needles(secret) {
			if bytes.Contains(data, needle) {
				t.Errorf("the key leaks (%s) into %s", form, where)
			}
		}
		for form, needle := range needles([]byte(header)) {
			if bytes.Contains(data, needle) {
				t.Errorf("the injected header leaks (%s) into %s", form, where)
			}
		}
		for form, needle := range needles(refused) {
			if bytes.Contains(data, needle) {
				t.Errorf("the refused key leaks (%s) into %s", form, where)
			}
		}
	}
	// The failing call's echo came back, as a 500 with the key redacted in
	// its body and in the header.
	var failResp *gate.ResponsePayload
	for _, r := range x.Records {
		if r.Kind != conversation.KindGateResponse {
			continue
		}
		var p gate.ResponsePayload
		_ = json.Unmarshal(r.Body, &p)
		if p.RequestID == failReq.RequestID {
			failResp = &p
		}
	}
	if failResp == nil || failResp.Status != 500 || failResp.Redactions < 2 ||
		!strings.Contains(failResp.Body, "[redacted]") || !strings.Contains(failResp.Headers["X-Request-Id"], "[redacted]") {
		t.Fatalf("the failing call's response is not the redacted echo expected: %+v", failResp)
	}
	// The echoes were there, redacted: the test looked at the right bytes.
	if !bytes.Contains(records.Bytes(), []byte("[redacted]")) || !bytes.Contains(cliOut.Bytes(), []byte("[redacted]")) {
		t.Fatal("no redaction marker in the records or the CLI output: the echo never came back")
	}
	t.Logf("searched %d places for %d spellings of the key and of its header", len(places), 2*len(needles(secret)))
}

// TestNeedlesFindTheKeyInsideEncodedBlobs checks the search itself: a key
// buried at any offset in a base64 or hex blob is found.
func TestNeedlesFindTheKeyInsideEncodedBlobs(t *testing.T) {
	secret := []byte("sk_live_0123456789abcdef0123456789abcdef")
	for prefix := 0; prefix < 6; prefix++ {
		blob := append(append(bytes.Repeat([]byte{0xA5}, prefix), secret...), []byte("tail")...)
		for _, enc := range []string{base64.StdEncoding.EncodeToString(blob), base64.URLEncoding.EncodeToString(blob),
			base64.RawStdEncoding.EncodeToString(blob), hex.EncodeToString(blob), string(blob)} {
			found := false
			for _, n := range needles(secret) {
				found = found || bytes.Contains([]byte(enc), n)
			}
			if !found {
				t.Fatalf("prefix %d: the key inside %q was not found", prefix, enc)
			}
		}
	}
	// And inside JSON, as encoders escape it.
	escaped := []byte("sk_live_<01234567>&/89abcdef")
	goJSON, _ := json.Marshal(map[string]string{"Authorization": `Token token="` + string(escaped) + `"`})
	for _, doc := range []string{string(goJSON), regexp.MustCompile(`\\u00[0-9a-f]{2}`).ReplaceAllStringFunc(string(goJSON), func(u string) string { return `\u` + strings.ToUpper(u[2:]) }), `{"k":"sk_live_<01234567>&\/89abcdef"}`} {
		found := false
		for _, n := range needles(escaped) {
			found = found || bytes.Contains([]byte(doc), n)
		}
		if !found || bytes.Contains([]byte(doc), escaped) {
			t.Fatalf("the key JSON-escaped inside %s was not found (or the test document is not escaped)", doc)
		}
	}
}
