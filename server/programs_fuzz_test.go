package server

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/programs"
)

// FuzzProgramRequest feeds the body of POST /v1/programs/requests to its
// decoder and then to the payload builder, against the starter catalog
// and a program limited to hn.* templates. Neither may panic; a refusal
// is bad_payload, host_mismatch or unknown-template's bad_payload with a
// bounded message; an accepted payload names a catalog service and (when
// it names one) a template of that service, expires within 7 days, and
// encodes as JSON.
func FuzzProgramRequest(f *testing.F) {
	for _, seed := range []string{
		`{"template":"hn.get-item","params":{"id":"8863"}}`,
		`{"template":"httpbin.echo","params":{"data":"hi"},"expires_in":"30m","request_id":"0b4f5bfe-3a59-4f0e-9d6e-2b1b8f0e7c11"}`,
		`{"method":"GET","url":"https://hacker-news.firebaseio.com/v0/item/1.json"}`,
		`{"service":"httpbin","method":"POST","url":"https://httpbin.org/post","headers":{"X-A":"1"},"body":{"a":[1,2]}}`,
		`{"url":"https://evil.example/x"}`,
		`{"template":"hn.top-stories","url":"https://httpbin.org/get"}`,
		`{"url":"https://httpbin.org/get","params":{"a":"b"}}`,
		`{"template":"nope"}`,
		`{"template":"hn.top-stories","expires_in":"8d"}`,
		`{"template":"hn.top-stories","expires_in":"-1h"}`,
		`{"template":"hn.top-stories"} {"x":1}`,
		`{"bogus":1}`,
		`{}`,
		`[]`,
		`null`,
		``,
		"\xff",
	} {
		f.Add([]byte(seed))
	}
	cat, err := catalog.Starter()
	if err != nil {
		f.Fatal(err)
	}
	prog := &programs.Program{Name: "fuzz", Policy: programs.Policy{Templates: []string{"hn.*"}}}
	now := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := decodeProgramRequest(data)
		if err != nil {
			checkRefusal(t, data, err, twokey.EBadPayload)
			return
		}
		p, err := buildPayload(cat, prog, &in, now, time.Hour)
		if err != nil {
			checkRefusal(t, data, err, twokey.EBadPayload, twokey.EHostMismatch, twokey.ENotFound)
			return
		}
		svc, ok := cat.Service(p.Service)
		if !ok {
			t.Fatalf("payload of %q names no catalog service: %+v", data, p)
		}
		if _, err := svc.EndpointOf(p.URL); err != nil {
			t.Fatalf("payload of %q has a url outside its service: %v", data, err)
		}
		if p.Template != "" {
			if tm, ok := cat.Template(p.Template); !ok || tm.Service != svc.Name {
				t.Fatalf("payload of %q names template %q of another service", data, p.Template)
			}
		}
		exp, err := conversation.ParseTime(p.ExpiresAt)
		if err != nil || !exp.After(now) || exp.After(now.Add(twokey.MaxRequestTTL)) {
			t.Fatalf("payload of %q expires at %q", data, p.ExpiresAt)
		}
		if _, err := json.Marshal(p); err != nil {
			t.Fatalf("payload of %q does not encode: %v", data, err)
		}
	})
}

// FuzzManagementBody feeds the management API's body decoder the bodies
// of key create and rotate: never a panic, a refusal is bad_payload, and
// an accepted body re-encodes.
func FuzzManagementBody(f *testing.F) {
	for _, seed := range []string{
		`{"name":"ci","conversation":"ops","templates":["hn.*"],"rate":"60/m","monthly":100,"expires":"30d"}`,
		`{"grace":"24h"}`,
		`{"grace":0}`,
		`{"name":1}`,
		`{"monthly":1e400}`,
		`{"unknown":true}`,
		`  `,
		``,
		`{"name":"a"}{"name":"b"}`,
		"\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&api.KeyCreate{}, &api.KeyRotate{}} {
			r := httptest.NewRequest("POST", "/v0/management/keys", bytes.NewReader(data))
			err := decodeStrict(httptest.NewRecorder(), r, v)
			if err != nil {
				checkRefusal(t, data, err, twokey.EBadPayload, twokey.ETooLarge)
				continue
			}
			if _, err := json.Marshal(v); err != nil {
				t.Fatalf("%q decoded into %T that does not encode: %v", data, v, err)
			}
		}
	})
}

// checkRefusal: err has one of codes and a message a person can read.
func checkRefusal(t *testing.T, data []byte, err error, codes ...string) {
	t.Helper()
	code := twokey.ErrorCode(err)
	for _, c := range codes {
		if code == c {
			if msg := twokey.ErrorMessage(err); msg == "" || len(msg) > 1000 {
				t.Fatalf("%q: message of %d bytes: %q", data, len(msg), msg)
			}
			return
		}
	}
	t.Fatalf("%q: code %q (%v), want one of %v", data, code, err, codes)
}
