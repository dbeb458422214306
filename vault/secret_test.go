package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey"
)

func TestSecretLive(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	tests := []struct {
		name    string
		expires time.Time
		want    bool
	}{
		{"no ttl", time.Time{}, true},
		{"expires exactly now", now, false},
		{"expires one nanosecond later", now.Add(time.Nanosecond), true},
		{"expired one nanosecond ago", now.Add(-time.Nanosecond), false},
		{"same instant, another zone", now.In(time.FixedZone("x", 3600)), false},
	}
	for _, tt := range tests {
		s := &Secret{ExpiresAt: tt.expires}
		if got := s.Live(now); got != tt.want {
			t.Errorf("%s: Live = %v, want %v", tt.name, got, tt.want)
		}
	}
	var nilSecret *Secret
	if nilSecret.Live(now) {
		t.Error("a nil secret is live")
	}
}

func TestSecretJSON(t *testing.T) {
	s := Secret{ID: "a", Conversation: "c1", Service: "github", Ciphertext: []byte{1, 2}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("expires_at")) {
		t.Errorf("zero ExpiresAt marshalled: %s", b)
	}
	for _, key := range []string{`"secret_id":"a"`, `"conversation":"c1"`, `"ciphertext":"AQI="`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("%s lacks %s", b, key)
		}
	}
	var back Secret
	if err := json.Unmarshal(b, &back); err != nil || back.ID != "a" || !bytes.Equal(back.Ciphertext, s.Ciphertext) {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

func TestSecretLogValue(t *testing.T) {
	var buf bytes.Buffer
	s := Secret{ID: "a", Service: "github", Ciphertext: []byte("CIPHERTEXTBYTES")}
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "secret", s)
	if strings.Contains(buf.String(), "CIPHERTEXTBYTES") || strings.Contains(buf.String(), "Q0lQSEVS") {
		t.Errorf("log line carries the ciphertext: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "secret.secret_id=a") {
		t.Errorf("log line lacks the id: %s", buf.String())
	}
}

func TestValidateHeader(t *testing.T) {
	tests := []struct {
		name, header, template string
		field                  string // "" = valid
	}{
		{"default", DefaultHeaderName, DefaultHeaderTemplate, ""},
		{"custom", "x-api-key", "{value}", ""},
		{"token chars", "X-Key_1.v2!#$%&'*+^`|~", "Token {value}", ""},
		{"basic", "Authorization", "Basic {value}", ""},
		{"tab", "X-Key", "k\t{value}", ""},
		{"max template", "X-Key", strings.Repeat("a", 249) + "{value}", ""},
		{"crlf", "X-Key", "Bearer {value}\r\nX-Evil: 1", "header_template"},
		{"lf", "X-Key", "{value}\n", "header_template"},
		{"nul", "X-Key", "{value}\x00", "header_template"},
		{"no value", "X-Key", "Bearer", "header_template"},
		{"two values", "X-Key", "{value}{value}", "header_template"},
		{"empty template", "X-Key", "", "header_template"},
		{"long template", "X-Key", strings.Repeat("a", 250) + "{value}", "header_template"},
		{"host", "Host", "{value}", "header_name"},
		{"host lower", "host", "{value}", "header_name"},
		{"content-length", "Content-Length", "{value}", "header_name"},
		{"connection", "Connection", "{value}", "header_name"},
		{"transfer-encoding", "transfer-encoding", "{value}", "header_name"},
		{"proxy-authorization", "Proxy-Authorization", "{value}", "header_name"},
		{"empty name", "", "{value}", "header_name"},
		{"space", "X Key", "{value}", "header_name"},
		{"colon", "X-Key:", "{value}", "header_name"},
		{"crlf name", "X-Key\r\nX", "{value}", "header_name"},
		{"parens", "X(Key)", "{value}", "header_name"},
		{"non-ascii", "X-Kéy", "{value}", "header_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateHeader(tt.header, tt.template)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("valid header refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("invalid header accepted")
			}
			if code := twokey.ErrorCode(err); code != twokey.EBadPayload {
				t.Errorf("code %q, want bad_payload", code)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

const testValue = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"

func newRequest(t *testing.T) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", "https://api.example.com/v1/charges", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestInjectHeader(t *testing.T) {
	v := newTestVault(t, 1)
	tests := []struct {
		name, header, template string
		wantKey, wantValue     string
	}{
		{"default", DefaultHeaderName, DefaultHeaderTemplate, "Authorization", "Bearer " + testValue},
		{"empty means default", "", "", "Authorization", "Bearer " + testValue},
		{"custom", "x-api-key", "{value}", "X-Api-Key", testValue},
		{"prefix and suffix", "X-Token", "tok={value};v=1", "X-Token", "tok=" + testValue + ";v=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Secret{ID: "a", Conversation: "c1", Service: "stripe", HeaderName: tt.header, HeaderTemplate: tt.template}
			if err := v.Store(s, []byte(testValue)); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(s.Ciphertext, []byte(testValue)) {
				t.Fatal("ciphertext contains the value")
			}
			req := newRequest(t)
			// Values the client set, in any letter case, are replaced.
			req.Header[strings.ToLower(tt.wantKey)] = []string{"client-lower"}
			req.Header.Set(tt.wantKey, "client")
			req.Header.Set("Accept", "application/json")
			r, err := v.Inject(req, s)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got := req.Header.Values(tt.wantKey); len(got) != 1 || got[0] != tt.wantValue {
				t.Errorf("header %s = %q, want [%q]", tt.wantKey, got, tt.wantValue)
			}
			n := 0
			for k := range req.Header {
				if strings.EqualFold(k, tt.wantKey) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d header keys spell %s", n, tt.wantKey)
			}
			if req.Header.Get("Accept") != "application/json" {
				t.Error("Inject changed another header")
			}
		})
	}
}

func TestInjectRefusesMovedCiphertext(t *testing.T) {
	v := newTestVault(t, 1)
	a := &Secret{ID: "a", Conversation: "c1", Service: "github"}
	if err := v.Store(a, []byte(testValue)); err != nil {
		t.Fatal(err)
	}
	if r, err := v.Inject(newRequest(t), a); err != nil {
		t.Fatalf("the original record: %v", err)
	} else {
		r.Close()
	}
	tests := []struct {
		name string
		s    Secret
	}{
		{"other id", Secret{ID: "b", Conversation: "c1", Service: "github"}},
		{"other conversation", Secret{ID: "a", Conversation: "c2", Service: "github"}},
		{"other service", Secret{ID: "a", Conversation: "c1", Service: "gitlab"}},
		{"shifted fields", Secret{ID: "", Conversation: "c1a", Service: "github"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			s.Ciphertext = a.Ciphertext
			req := newRequest(t)
			r, err := v.Inject(req, &s)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("err = %v, want ErrOpen", err)
			}
			if r != nil {
				t.Error("a Redactor came back with an error")
			}
			if req.Header.Get("Authorization") != "" {
				t.Error("a header was set")
			}
			if strings.Contains(err.Error(), testValue) {
				t.Errorf("error %q carries the value", err)
			}
		})
	}
	// Another master key cannot open it either.
	if _, err := newTestVault(t, 2).Inject(newRequest(t), a); !errors.Is(err, ErrOpen) {
		t.Errorf("wrong master key: err = %v, want ErrOpen", err)
	}
}

func TestStoreRefusesValues(t *testing.T) {
	v := newTestVault(t, 1)
	for _, tc := range []struct{ name, value string }{
		{"empty", ""},
		{"trailing newline", testValue + "\n"},
		{"cr", "a\rb"},
		{"nul", "a\x00b"},
		{"del", "a\x7fb"},
		{"tab", "sk_a\tb"},
		{"space", "sk_live abc"},
		{"double quote", `sk_"quoted"_secret`},
		{"backslash", `sk_quoted_\secret`},
		{"non-ASCII", "sk_live_caf\u00e9"},
		{"curly quote", "\u201csk_live_abc\u201d"},
		{"invalid UTF-8", "sk_\xff\xfe"},
		{"too large", strings.Repeat("k", MaxSecretSize+1)},
	} {
		s := &Secret{ID: "a"}
		err := v.Store(s, []byte(tc.value))
		if twokey.ErrorCode(err) != twokey.EBadPayload {
			t.Errorf("%s: err = %v, want bad_payload", tc.name, err)
		} else if msg := twokey.ErrorMessage(err); len(tc.value) > 6 && strings.Contains(msg, tc.value[3:]) {
			t.Errorf("%s: the message %q quotes the value", tc.name, msg)
		}
		if s.Ciphertext != nil {
			t.Errorf("%s: ciphertext set", tc.name)
		}
	}
	if err := v.Store(nil, []byte("k")); err == nil {
		t.Error("Store of a nil secret succeeded")
	}
}

func TestInjectRefusesBadHeader(t *testing.T) {
	v := newTestVault(t, 1)
	s := &Secret{ID: "a", HeaderName: "Host", HeaderTemplate: "{value}"}
	if err := v.Store(s, []byte(testValue)); err != nil {
		t.Fatal(err)
	}
	req := newRequest(t)
	if _, err := v.Inject(req, s); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("err = %v, want bad_payload", err)
	}
	if fmt.Sprint(req.Header) != "map[]" {
		t.Errorf("headers changed: %v", req.Header)
	}
}

// Every visible printable ASCII byte but '"' and '\' is a key byte.
func TestStoreTakesPrintableASCII(t *testing.T) {
	v := newTestVault(t, 1)
	var all []byte
	for c := byte('!'); c <= '~'; c++ {
		if c != '"' && c != '\\' {
			all = append(all, c)
		}
	}
	if err := v.Store(&Secret{ID: "a"}, all); err != nil {
		t.Fatalf("Store(%q) = %v", all, err)
	}
}
