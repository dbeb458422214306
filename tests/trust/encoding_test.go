package trust_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

func init() { attackSets = append(attackSets, encodingAttacks) }

// encodingKey has characters each encoding writes differently: URL-reserved
// (+ / =), and letters, so that its percent-encoding, base64 and JSON
// escapes are none of them the key itself. The runs of five ~ and ? hold an
// aligned "~~~" and "???" at every offset, whose base64 is "fn5+" and
// "Pz8/": the standard and URL alphabets spell it differently everywhere.
const encodingKey = "sk_live_A+b/c=D9xQ7mZ2pL4v~~~~~?????"

// newEchoFixture is newFixture with httpbin pointed at a loopback upstream
// that runs h (behind /httpbin), and encodingKey as httpbin's key.
func newEchoFixture(t *testing.T, h http.HandlerFunc) *fixture {
	t.Helper()
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	fx := &fixture{}
	fx.srv = testutil.StartServer(t, nil, func(o *testutil.Options) {
		o.Services = map[string]string{"httpbin": up.URL + "/httpbin"}
	})
	fx.base = up.URL + "/httpbin"
	ctx := testutil.Ctx(t)
	var members []conversation.Member
	fx.ids, fx.cs, members = testutil.Signers(t, fx.srv.URL(), 1, nil)
	fx.conv = mustConv(t, fx.cs[0], "ops", members)
	if _, err := fx.cs[0].EnableGate(ctx, fx.conv, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.cs[0].AddSecret(ctx, fx.conv, "httpbin", "", "", 0, []byte(encodingKey)); err != nil {
		t.Fatal(err)
	}
	gw, err := fx.cs[0].Gateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fx.gw = gw.SigningKey
	return fx
}

// execute submits a GET of path (M is 1) and waits for it to execute.
func (fx *fixture) execute(t *testing.T, path string) gate.ResponsePayload {
	t.Helper()
	id, _ := fx.submit(t, 0, path)
	if st := fx.wait(t, id); st != gate.StateExecuted {
		t.Fatalf("%s: %s", path, st)
	}
	return fx.response(t, id)
}

// verifyLog fetches the conversation's export and checks it with the audit,
// as 'twokey audit verify' does live, and again after a round trip through
// the export's JSON file, as it does offline.
func (fx *fixture) verifyLog(t *testing.T) []byte {
	t.Helper()
	x, err := audit.Fetch(testutil.Ctx(t), fx.cs[0], fx.conv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(x, audit.Options{Gateway: fx.gw}); err != nil {
		t.Fatalf("live audit: %v", err)
	}
	file, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	var back audit.Export
	if err := json.Unmarshal(file, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(&back, audit.Options{Gateway: fx.gw}); err != nil {
		t.Fatalf("offline audit: %v", err)
	}
	return file
}

// jsonString is s as encoding/json writes it inside a string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// echoedForms is what the upstream of the report sent back: the key and the
// whole header value in other encodings, in the body and in every response
// header the gateway records.
func echoedForms(auth string) (body []string, headers map[string]string) {
	key := strings.TrimPrefix(auth, "Bearer ")
	b64 := func(prefix, s, suffix string) string {
		return base64.StdEncoding.EncodeToString([]byte(prefix + s + suffix))
	}
	var esc strings.Builder
	for _, r := range key {
		fmt.Fprintf(&esc, `\u%04x`, r)
	}
	var lowerPct strings.Builder
	for i := 0; i < len(auth); i++ {
		fmt.Fprintf(&lowerPct, "%%%02x", auth[i])
	}
	body = []string{
		url.QueryEscape(key),       // sk_live_A%2Bb%2Fc%3DD...
		url.QueryEscape(auth),      // Bearer+sk_live_...
		url.PathEscape(auth),       // Bearer%20sk_live_...
		b64("", auth, ""),          // QmVhcmVyIHNr...
		b64("x", key, " and more"), // the key at byte offset 1 of a longer text
		b64("xy", key, " and more"),
		esc.String(), // \u0073\u006b...
		strings.ReplaceAll(key, "/", `\/`),
		strings.ToUpper(hex.EncodeToString([]byte(key))),
	}
	headers = map[string]string{
		"Location":              "https://cb.example/done?token=" + url.QueryEscape(key) + "&state=1",
		"Etag":                  `"` + base64.RawURLEncoding.EncodeToString([]byte("v1:"+key)) + `"`,
		"X-Request-Id":          hex.EncodeToString([]byte(auth)),
		"Cache-Control":         "private, note=" + lowerPct.String(),
		"Content-Type":          "text/plain; charset=utf-8; k=" + url.QueryEscape(key),
		"Last-Modified":         b64("xy", key, ""),
		"Retry-After":           url.PathEscape(key),
		"X-Ratelimit-Limit":     base64.URLEncoding.EncodeToString([]byte(key)),
		"X-Ratelimit-Remaining": strings.ToUpper(hex.EncodeToString([]byte("-" + auth))),
		"X-Ratelimit-Reset":     url.QueryEscape(b64("", key, "")),
		"Date":                  b64("x", auth, "."),
	}
	return body, headers
}

// echoForms answers with echoedForms of the Authorization header it got.
func echoForms(w http.ResponseWriter, r *http.Request) {
	body, headers := echoedForms(r.Header.Get("Authorization"))
	for k, v := range headers {
		w.Header()[k] = []string{v}
	}
	for i, f := range body {
		fmt.Fprintf(w, "form %d: %s\n", i, f)
	}
}

// utf16LE is s in UTF-16LE.
func utf16LE(s string) []byte {
	var out []byte
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u), byte(u>>8))
	}
	return out
}

// notText are upstream answers that are not all UTF-8 text, or are text
// cut at the 64 KiB boundary, each by its path.
func notText(auth string) map[string][]byte {
	rng := rand.New(rand.NewPCG(7, 7))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		b[n/2] = 0xff // never UTF-8
		return b
	}
	limit := twokey.MaxResponseBody
	return map[string][]byte{
		"/utf16":        append([]byte{0xff, 0xfe}, utf16LE("the header you sent: "+auth+"\n")...),
		"/random":       random(3000),
		"/latin1":       []byte("caf\xe9 " + strings.TrimPrefix(auth, "Bearer ") + " na\xefve"),
		"/nul":          []byte("a\x00b\x00" + auth + "\x00"),
		"/cut-rune":     []byte(strings.Repeat("a", limit-1) + "é and more"),
		"/late-invalid": append(bytes.Repeat([]byte("b"), limit+10), 0xff),
		"/binary-big":   random(limit*3/2 + 1),
		"/empty":        {},
		// The key across the 64 KiB cut: redaction comes first, so no
		// prefix of it is left in the body the cut would keep.
		"/key-at-cut": []byte(strings.Repeat("a", limit-20) + auth + strings.Repeat("z", 100)),
	}
}

func encodingAttacks() []attack {
	return []attack{
		{"the key echoed in another encoding", "PROTOCOL 5 (execute): the key and the whole header value are redacted as is, percent-encoded, in base64 (both alphabets, padded or not, any alignment), hex and JSON escapes, in the body and every recorded header",
			"vault/redact.go Redactor.Redact (vault/redact_match.go: one automaton, plain and decoded views); engine/execute.go execute", func(t *testing.T) {
				fx := newEchoFixture(t, echoForms)
				p := fx.execute(t, "/echo")
				body, headers := echoedForms("Bearer " + encodingKey)
				if _, ok := p.Headers["Content-Length"]; !ok || len(p.Headers) != len(headers)+1 {
					t.Errorf("recorded headers %v, want the %d sent and Content-Length", p.Headers, len(headers))
				}
				lines := strings.Split(p.Body, "\n")
				for i, f := range body {
					// A base64 form keeps the characters of the bytes
					// around the key, so a line need not be only the marker.
					if i >= len(lines) || !strings.HasPrefix(lines[i], fmt.Sprintf("form %d: ", i)) || !strings.Contains(lines[i], "[redacted]") || strings.Contains(lines[i], f) {
						t.Errorf("form %d (%s) is not redacted: body %q", i, f, p.Body)
					}
				}
				for k := range headers {
					if !strings.Contains(p.Headers[k], "[redacted]") {
						t.Errorf("header %s is %q, not redacted", k, p.Headers[k])
					}
				}
				if !strings.Contains(p.ContentType, "[redacted]") {
					t.Errorf("content_type %q", p.ContentType)
				}
				if min := len(body) + len(headers); p.Redactions < min {
					t.Errorf("redactions %d, want at least %d", p.Redactions, min)
				}
				// None of what the upstream sent is anywhere: the record,
				// the export, the server's log, the database file.
				export := fx.verifyLog(t)
				db, err := os.ReadFile(fx.srv.DBPath())
				if err != nil {
					t.Fatal(err)
				}
				forms := append([]string{encodingKey}, body...)
				for _, v := range headers {
					forms = append(forms, v)
				}
				for _, f := range forms {
					for _, where := range []struct {
						name string
						b    []byte
					}{{"the export", export}, {"the database", db}, {"the server's log", []byte(fx.srv.Logs())}} {
						if bytes.Contains(where.b, []byte(f)) || bytes.Contains(where.b, []byte(jsonString(f))) {
							t.Errorf("%s holds %q", where.name, f)
						}
					}
				}
			}},
		{"a body that is not UTF-8", "PROTOCOL 5 (execute): a body that is not UTF-8 is given as base64 with body_encoding base64, body_digest over the whole redacted bytes, so an honest log always verifies; D (gate.response): truncation applies to the bytes",
			"gate/payloads.go ResponsePayload.SetBody, BodyBytes; engine/execute.go execute; audit/verify.go (the body digest)", func(t *testing.T) {
				auth := "Bearer " + encodingKey
				answers := notText(auth)
				fx := newEchoFixture(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/octet-stream")
					w.Write(answers[strings.TrimPrefix(r.URL.Path, "/httpbin")])
				})
				limit := twokey.MaxResponseBody
				for _, path := range []string{"/utf16", "/random", "/latin1", "/nul", "/cut-rune", "/late-invalid", "/binary-big", "/empty", "/key-at-cut"} {
					sent := answers[path]
					p := fx.execute(t, path)
					got, err := p.BodyBytes()
					if err != nil {
						t.Fatalf("%s: %v", path, err)
					}
					// What the gateway redacted, byte for byte.
					// (In UTF-16 the marker replaces the header's bytes
					// from its first letter to its last: the zero byte
					// after that stays.)
					u := utf16LE(auth)
					want := bytes.ReplaceAll(sent, u[:len(u)-1], []byte("[redacted]"))
					want = bytes.ReplaceAll(want, []byte(auth), []byte("[redacted]"))
					want = bytes.ReplaceAll(want, []byte(encodingKey), []byte("[redacted]"))
					text := path == "/nul" || path == "/cut-rune" || path == "/empty" || path == "/key-at-cut"
					if text == p.Binary() || (p.BodyEncoding != "") == text {
						t.Errorf("%s: body_encoding %q", path, p.BodyEncoding)
					}
					if p.BodyDigest != conversation.Digest(want) {
						t.Errorf("%s: body_digest is not the digest of the redacted bytes", path)
					}
					switch {
					case path == "/cut-rune":
						if !p.Truncated || string(got) != strings.Repeat("a", limit-1) {
							t.Errorf("%s: %d bytes, truncated %v; want the text cut before the é", path, len(got), p.Truncated)
						}
					case len(want) > limit:
						if !p.Truncated || !bytes.Equal(got, want[:limit]) {
							t.Errorf("%s: %d bytes, truncated %v; want the first %d bytes", path, len(got), p.Truncated, limit)
						}
					default:
						if p.Truncated || !bytes.Equal(got, want) {
							t.Errorf("%s: body %q, want %q", path, got, want)
						}
					}
					if bytes.Contains(got, utf16LE(encodingKey)) || bytes.Contains(got, []byte(encodingKey)) {
						t.Errorf("%s: the key is in the body", path)
					}
					if path == "/key-at-cut" && (bytes.Contains(got, []byte(encodingKey[:8])) || !bytes.HasSuffix(got, []byte("[redacted]"+strings.Repeat("z", 10)))) {
						t.Errorf("%s: the body's end is %q; want the key redacted before the cut", path, got[max(0, len(got)-40):])
					}
				}
				fx.verifyLog(t)
			}},
		{"a payload that is not UTF-8", "PROTOCOL 2: every payload is valid UTF-8, else bad_payload",
			"conversation/strictjson.go CheckJSON (through conversation.Open, for every kind)", func(t *testing.T) {
				fx := newFixture(t, 1, 1)
				hdr := `"conversation":"` + fx.conv + `","created_at":"` + conversation.FormatTime(fx.now()) + `"`
				for _, env := range []conversation.Envelope{
					conversation.Sign(fx.ids[0], conversation.KindChatMessage, []byte(`{`+hdr+`,"text":"a`+"\xff\xfe"+`b"}`)),
					conversation.Sign(fx.ids[0], conversation.KindChatMessage, []byte(`{`+hdr+`,"text":"`+"\xed\xa0\x80"+`"}`)),
					conversation.Sign(fx.ids[0], conversation.KindGateRequest, []byte(`{`+hdr+`,"gateway":"`+fx.gw+`","request_id":"`+
						"9b0c5e2a-7d4f-4c1b-8a3e-2f6d9e8c7b1a"+`","service":"httpbin","method":"POST","url":"`+fx.base+`/post","body":{"x":"`+"\xc3"+`"},"expires_at":"`+
						conversation.FormatTime(fx.now().Add(time.Hour))+`"}`)),
				} {
					expectCode(t, fx, env, 400, twokey.EBadPayload)
				}
				// The same chat in UTF-8 is accepted, and the export holds
				// text only.
				ok := conversation.Sign(fx.ids[0], conversation.KindChatMessage, []byte(`{`+hdr+`,"text":"a\u00ff\u00feb"}`))
				if err := fx.post(t, ok); err != nil {
					t.Fatal(err)
				}
				export := fx.verifyLog(t)
				if bytes.IndexByte(export, 0xff) >= 0 || bytes.IndexByte(export, 0xfe) >= 0 || !bytes.Contains(export, []byte("aÿþb")) && !bytes.Contains(export, []byte(`a\u00ff\u00feb`)) {
					t.Errorf("the export does not hold the chat as UTF-8 text")
				}
			}},
	}
}
