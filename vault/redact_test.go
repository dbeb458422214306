package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// held returns the buffers r holds, so tests can see that Close zeroes them.
func (r *Redactor) held() [][]byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([][]byte(nil), r.patterns...)
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
	r.Close()
	for i, b := range bufs {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("buffer %d not zeroed after Close: %q", i, b)
		}
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
