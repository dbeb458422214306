package trust_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
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
// bytes, hex both cases, and standard and URL-safe base64 at each of the
// three alignments it can have inside a longer encoded blob (so a key
// inside a base64 payload or sealed blob is found too).
func needles(secret []byte) map[string][]byte {
	out := map[string][]byte{
		"raw":       secret,
		"hex":       []byte(hex.EncodeToString(secret)),
		"HEX":       []byte(strings.ToUpper(hex.EncodeToString(secret))),
		"base64":    []byte(base64.StdEncoding.EncodeToString(secret)),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(secret)),
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

// TestSecretNeverLeaks provisions a known key, runs the whole flow (a
// request, an approval, execution against upstream endpoints that echo the
// injected header back), and looks for the key in every spelling in the
// database file, every record, the server's log, every HTTP and WebSocket
// answer, the CLI's output and an audit export. It checks first that the
// key really reached the upstream, so the search is not vacuous.
func TestSecretNeverLeaks(t *testing.T) {
	t.Parallel()
	needBinary(t)
	raw := make([]byte, 24)
	rand.Read(raw)
	secret := []byte("sk_live_" + hex.EncodeToString(raw))
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up)
	dir := t.TempDir()
	var cliOut bytes.Buffer
	cli := func(who string, stdin []byte, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv("TWOKEY_SERVER="+srv.URL(), "TWOKEY_IDENTITY="+filepath.Join(dir, who+".json"), "HOME="+dir)
		cmd.Stdin = bytes.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cliOut.Write(out.Bytes())
		if err != nil {
			t.Fatalf("twokey %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	cli("alice", nil, "id", "new", "--name", "alice", "--out", filepath.Join(dir, "alice.json"))
	cli("bob", nil, "id", "new", "--name", "bob", "--out", filepath.Join(dir, "bob.json"))
	bobKey := strings.TrimSpace(cli("bob", nil, "id", "key"))
	cli("alice", nil, "conv", "create", "ops", "--member", "bob="+bobKey)
	cli("alice", nil, "gate", "enable", "ops", "--approvals", "2")
	cli("alice", append(secret, '\n'), "secret", "add", "ops", "--service", "httpbin")
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
	cli("alice", nil, "log", "ops")
	cli("bob", nil, "requests", "ops")
	cli("bob", nil, "secret", "ls", "ops")
	cli("bob", nil, "gate", "show", "ops")
	export := filepath.Join(dir, "ops-audit.json")
	cli("bob", nil, "audit", "export", "ops", "-o", export)
	cli("bob", nil, "audit", "verify", export)
	cli("bob", nil, "audit", "verify", "ops", "--live")

	// The key did reach the upstream, injected, for both calls.
	got := 0
	for _, r := range up.Requests() {
		if r.Header.Get("Authorization") == "Bearer "+string(secret) {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("the upstream saw the injected key %d times, want 2: the search below would prove nothing", got)
	}

	// Everything a member can read, through a recording client.
	alice, err := conversation.LoadIdentity(filepath.Join(dir, "alice.json"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c := testutil.Client(srv.URL(), alice, nil)
	c.HTTP = &http.Client{Transport: rec, Timeout: 30 * time.Second}
	ctx := testutil.Ctx(t)
	convs, err := c.Conversations(ctx)
	if err != nil || len(convs) != 1 {
		t.Fatalf("conversations: %v %v", convs, err)
	}
	conv := convs[0].ID
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
		"HTTP answers":       rec.bodies.Bytes(),
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
		for form, needle := range needles([]byte("Bearer " + string(secret))) {
			if bytes.Contains(data, needle) {
				t.Errorf("the injected header leaks (%s) into %s", form, where)
			}
		}
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
}
