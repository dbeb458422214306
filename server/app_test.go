package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/internal/testutil"
)

// checkSecurityHeaders fails unless h carries the headers every answer of
// the server carries, the app's files and the API's JSON alike.
func checkSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"connect-src 'self'", "frame-ancestors 'none'", "script-src 'self'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", what, csp, want)
		}
	}
	for _, never := range []string{"'unsafe-inline'", "'unsafe-eval'", "*"} {
		if strings.Contains(csp, never) {
			t.Errorf("%s: Content-Security-Policy %q allows %s", what, csp, never)
		}
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, got)
	}
	if got := h.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("%s: Referrer-Policy %q", what, got)
	}
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func TestAppFilesAndSecurityHeaders(t *testing.T) {
	srv := testutil.StartServer(t, nil)
	for _, tc := range []struct{ path, ctype, holds string }{
		{"/", "text/html; charset=utf-8", "<script type=\"module\" src=\"app.js\">"},
		{"/app.js", "text/javascript; charset=utf-8", "import"},
		{"/style.css", "text/css; charset=utf-8", ""},
	} {
		resp, data := get(t, srv.URL()+tc.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.ctype || !strings.Contains(string(data), tc.holds) {
			t.Errorf("GET %s: %d %q, %d bytes", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(data))
		}
		checkSecurityHeaders(t, "GET "+tc.path, resp.Header)
	}

	// The API's JSON carries them too, answers and refusals alike.
	resp, data := get(t, srv.URL()+"/v1/gateway")
	var gw api.Gateway
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(data, &gw) != nil || gw.SigningKey == "" {
		t.Fatalf("GET /v1/gateway: %d %s", resp.StatusCode, data)
	}
	checkSecurityHeaders(t, "GET /v1/gateway", resp.Header)
	resp, _ = get(t, srv.URL()+"/v1/conversations")
	if resp.StatusCode != 401 {
		t.Fatalf("GET /v1/conversations without a bearer: %d", resp.StatusCode)
	}
	checkSecurityHeaders(t, "a 401", resp.Header)

	// A path that is no file of the app is the API's JSON 404, never the
	// app's page.
	for _, p := range []string{"/nope.js", "/nope", "/app.js/x", "/v1/nope"} {
		resp, data := get(t, srv.URL()+p)
		var eb api.ErrorBody
		if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			json.Unmarshal(data, &eb) != nil || eb.Error.Code != twokey.ENotFound || eb.Error.Message == "" {
			t.Errorf("GET %s: %d %q %s", p, resp.StatusCode, resp.Header.Get("Content-Type"), data)
		}
		checkSecurityHeaders(t, "GET "+p, resp.Header)
	}
	// The app's files are only read.
	resp2, err := http.Post(srv.URL()+"/app.js", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var eb api.ErrorBody
	if resp2.StatusCode != 404 || json.NewDecoder(resp2.Body).Decode(&eb) != nil || eb.Error.Code != twokey.ENotFound {
		t.Fatalf("POST /app.js: %d %+v", resp2.StatusCode, eb)
	}
}
