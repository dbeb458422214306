package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"

	"github.com/twokey/twokey"
)

// held returns the buffers r holds, so tests can see that Close zeroes them.
func (r *Redactor) held() [][]byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([][]byte(nil), r.needles...)
}

// injectValue stores value under the given header and injects it.
func injectValue(t *testing.T, value, header, template string) *Redactor {
	t.Helper()
	v := newTestVault(t, 1)
	s := &Secret{ID: "a", Conversation: "c1", Service: "svc", HeaderName: header, HeaderTemplate: template}
	if err := v.Store(s, []byte(value)); err != nil {
		t.Fatal(err)
	}
	r, err := v.Inject(newRequest(t), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestRedact(t *testing.T) {
	// "?>~" encodes to "Pz5+" in standard base64 and "Pz5-" in base64url.
	const value = "sk_?>~_test"
	std := base64.StdEncoding.EncodeToString([]byte(value))
	url := base64.URLEncoding.EncodeToString([]byte(value))
	rawURL := base64.RawURLEncoding.EncodeToString([]byte(value))
	if std == url || !strings.HasSuffix(std, "=") {
		t.Fatalf("test value should have distinct, padded encodings: %s %s", std, url)
	}
	hx := hex.EncodeToString([]byte(value))
	r := injectValue(t, value, "Authorization", "Bearer {value}")

	tests := []struct {
		name, in, want string
		n              int
	}{
		{"nothing", "no secrets here", "no secrets here", 0},
		{"empty", "", "", 0},
		{"raw", "key=" + value + ".", "key=[redacted].", 1},
		{"twice", value + value, "[redacted][redacted]", 2},
		{"whole header", `{"auth":"Bearer ` + value + `"}`, `{"auth":"[redacted]"}`, 1},
		{"base64", "b=" + std, "b=[redacted]", 1},
		{"base64url", "u=" + url + ",r=" + rawURL + ".", "u=[redacted],r=[redacted].", 2},
		{"hex", "h=" + hx + " H=" + strings.ToUpper(hx), "h=[redacted] H=[redacted]", 2},
		{"mixed", "Bearer " + value + " " + value + " " + std, "[redacted] [redacted] [redacted]", 3},
		{"partial", value[:len(value)-1], value[:len(value)-1], 0},
		{"bearer without value", "Bearer x", "Bearer x", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := r.Redact([]byte(tt.in))
			if string(got) != tt.want || n != tt.n {
				t.Errorf("Redact(%q) = %q, %d; want %q, %d", tt.in, got, n, tt.want, tt.n)
			}
			s, n := r.RedactString(tt.in)
			if s != tt.want || n != tt.n {
				t.Errorf("RedactString(%q) = %q, %d; want %q, %d", tt.in, s, n, tt.want, tt.n)
			}
		})
	}
}

func TestRedactCustomHeader(t *testing.T) {
	r := injectValue(t, testValue, "x-api-key", "{value}")
	got, n := r.RedactString("x-api-key: " + testValue)
	if got != "x-api-key: [redacted]" || n != 1 {
		t.Errorf("RedactString = %q, %d", got, n)
	}
}

// A short value must not re-redact the marker it wrote: "e" occurs in
// "[redacted]".
func TestRedactShortValue(t *testing.T) {
	r := injectValue(t, "e", "X-Key", "{value}")
	got, n := r.RedactString("see")
	if got != "s[redacted][redacted]" || n != 2 {
		t.Errorf("RedactString = %q, %d", got, n)
	}
}

func TestRedactorClose(t *testing.T) {
	r := injectValue(t, testValue, "Authorization", "Bearer {value}")
	bufs := r.held()
	var sawValue, sawHeader bool
	for _, b := range bufs {
		sawValue = sawValue || string(b) == testValue
		sawHeader = sawHeader || string(b) == "Bearer "+testValue
	}
	if !sawValue || !sawHeader || len(bufs) < 5 {
		t.Fatalf("held %d buffers; value %v, header %v", len(bufs), sawValue, sawHeader)
	}
	// The automaton spells the needles out too (its edges, its table).
	m := r.m
	tables := [][]int32{m.dense, m.edgeStart, m.edgeNext, m.fail, m.out}
	if len(m.edgeClass) == 0 || len(m.dense) == 0 {
		t.Fatal("no automaton")
	}
	r.Close()
	for i, b := range bufs {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("buffer %d not zeroed after Close: %q", i, b)
		}
	}
	for i, tb := range tables {
		if slices.ContainsFunc(tb, func(x int32) bool { return x != 0 }) {
			t.Errorf("automaton table %d not zeroed after Close", i)
		}
	}
	if slices.ContainsFunc(m.edgeClass, func(x uint16) bool { return x != 0 }) || m.class != [256]uint16{} || r.m != nil {
		t.Error("automaton classes not zeroed after Close")
	}
	r.Close() // twice is fine
	in := []byte("Bearer " + testValue)
	if got, n := r.Redact(in); n != 0 || !bytes.Equal(got, in) {
		t.Errorf("closed Redactor: %q, %d", got, n)
	}
}

func TestNilRedactor(t *testing.T) {
	var r *Redactor
	in := []byte("Bearer x")
	if got, n := r.Redact(in); n != 0 || !bytes.Equal(got, in) {
		t.Errorf("Redact = %q, %d", got, n)
	}
	if got, n := r.RedactString("x"); n != 0 || got != "x" {
		t.Errorf("RedactString = %q, %d", got, n)
	}
	r.Close()
}

func TestRedactorDoesNotPrint(t *testing.T) {
	r := injectValue(t, testValue, "Authorization", "Bearer {value}")
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q", "%d"} {
		fmt.Fprintf(&out, verb+" ", r)
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "r", r)
	v := newTestVault(t, 1)
	fmt.Fprintf(&out, "%v %+v %#v %x", v, v, v, v)
	for _, leak := range []string{testValue, hex.EncodeToString([]byte(testValue)), "sk_test"} {
		if strings.Contains(out.String(), leak) {
			t.Fatalf("printed Redactor leaks the key: %s", out.String())
		}
	}
	if !strings.Contains(out.String(), "[redacted]") {
		t.Errorf("unexpected rendering %q", out.String())
	}
}

func TestRedactConcurrentClose(t *testing.T) {
	r := injectValue(t, testValue, "Authorization", "Bearer {value}")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				// Before Close the key is redacted, after it nothing is;
				// never does a half-zeroed pattern match.
				in := "x " + testValue
				out, n := r.RedactString(in)
				if !(out == "x [redacted]" && n == 1 || out == in && n == 0) {
					t.Errorf("RedactString = %q, %d", out, n)
					return
				}
			}
		})
	}
	wg.Go(r.Close)
	wg.Wait()
}

// jsonEchoes encodes v the ways common JSON encoders do: Go's default
// (HTML-escaped), Go without HTML escaping, and \uXXXX for every non-ASCII
// rune as Python's json.dumps writes it, with lower and upper case hex.
func jsonEchoes(t *testing.T, v any) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out["go"] = string(b)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	out["go, no HTML escaping"] = buf.String()
	var ascii, asciiUpper strings.Builder
	for _, r := range buf.String() {
		if r < 0x80 {
			ascii.WriteRune(r)
			asciiUpper.WriteRune(r)
			continue
		}
		for _, u := range utf16.Encode([]rune{r}) {
			fmt.Fprintf(&ascii, `\u%04x`, u)
			fmt.Fprintf(&asciiUpper, `\u%04X`, u)
		}
	}
	out["ASCII only"] = ascii.String()
	out["ASCII only, upper-case hex"] = asciiUpper.String()
	out["slashes escaped"] = strings.ReplaceAll(buf.String(), "/", `\/`)
	return out
}

// TestRedactJSONEscapedEchoes is the echo of httpbin's /headers: the key
// and the whole header value inside a JSON string, escaped the way the
// upstream's encoder does, are redacted, and no piece of the key remains.
func TestRedactJSONEscapedEchoes(t *testing.T) {
	cases := []struct{ name, value, template string }{
		{"HTML characters", "sk_<live>&/x9", "Bearer {value}"},
		{"quoted template", "sk_live_4eC39HqLyjWD", `Token token="{value}"`},
		{"non-ASCII template", "sk_live_<4eC39>", "Clé-é€𝄞 {value}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := injectValue(t, tc.value, "Authorization", tc.template)
			header := strings.Replace(tc.template, "{value}", tc.value, 1)
			for how, body := range jsonEchoes(t, map[string]any{"headers": map[string]string{"Authorization": header}, "key": tc.value}) {
				out, n := r.RedactString(body)
				if n != 2 || strings.Contains(out, "4eC39") || strings.Contains(out, "live") {
					t.Errorf("%s: %q redacted to %q (%d replacements), want both echoes gone", how, body, out, n)
				}
			}
		})
	}
}

// TestRedactStoredQuotedKey: a key stored before the vault refused '"' and
// '\' (the reviewer's sk_"quoted"_\secret) is still injected, and its
// JSON-escaped echo is redacted.
func TestRedactStoredQuotedKey(t *testing.T) {
	const value = `sk_"quoted"_\secret`
	v := newTestVault(t, 1)
	s := &Secret{ID: "a", Conversation: "c1", Service: "svc"}
	if err := v.Store(s, []byte(value)); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("Store(%q) = %v, want bad_payload", value, err)
	}
	blob, err := v.Seal([]byte(value), SecretAAD(s.Conversation, s.ID, s.Service))
	if err != nil {
		t.Fatal(err)
	}
	s.Ciphertext = blob
	req := newRequest(t)
	r, err := v.Inject(req, s)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := req.Header.Get("Authorization"); got != "Bearer "+value {
		t.Fatalf("injected %q", got)
	}
	for how, body := range jsonEchoes(t, map[string]any{"headers": map[string]string{"Authorization": "Bearer " + value}}) {
		out, n := r.RedactString(body)
		if n != 1 || strings.Contains(out, "quoted") || strings.Contains(out, "secret") {
			t.Errorf("%s: %q redacted to %q (%d)", how, body, out, n)
		}
	}
}

// TestBase64FormsAreInEveryEncoding: whatever bytes surround a value, the
// base64 of the whole holds the form for the value's alignment; a value
// at the end holds its tail form, padded or not as the encoding is.
func TestBase64FormsAreInEveryEncoding(t *testing.T) {
	surround := []byte("\xff\x00\xfe\x01\xfd")
	for _, v := range []string{"k", "ke", "key", "sk_live_A+b/c=D<9>?", testValue} {
		for _, enc := range []struct{ raw, pad *base64.Encoding }{{base64.RawStdEncoding, base64.StdEncoding}, {base64.RawURLEncoding, base64.URLEncoding}} {
			for before := 0; before < 5; before++ {
				forms := base64Forms(enc.raw, []byte(v), before%3)
				if len(forms) == 0 {
					t.Fatalf("%q at alignment %d: no form", v, before%3)
				}
				whole := append(append(slices.Clone(surround[:before]), v...), surround...)
				atEnd := append(slices.Clone(surround[:before]), v...)
				if len(v) >= 3 && !strings.Contains(enc.pad.EncodeToString(whole), string(forms[0])) {
					t.Errorf("%q after %d bytes: %s not in %s", v, before, forms[0], enc.pad.EncodeToString(whole))
				}
				for _, e := range []*base64.Encoding{enc.raw, enc.pad} {
					s := e.EncodeToString(atEnd)
					if !slices.ContainsFunc(forms, func(f []byte) bool { return strings.HasSuffix(s, string(f)) }) {
						t.Errorf("%q after %d bytes, at the end: no form ends %s (forms %q)", v, before, s, forms)
					}
				}
			}
		}
	}
}
