package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey/notify"
)

// syncWriter is a buffer the listener and the test share.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestWebhooksListen: the listener answers 503 while its secret file is
// missing, 401 to a notification whose signature does not match, 204 to
// a signed one (printing what it says), and stops after --count valid
// notifications.
func TestWebhooksListen(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	file := filepath.Join(t.TempDir(), "hook.secret")
	out := &syncWriter{}
	read := func() (string, error) {
		b, err := os.ReadFile(file)
		return strings.TrimSpace(string(b)), err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- listenWebhooks(ctx, out, "127.0.0.1:0", read, 1, time.Minute) }()
	var base string
	for base == "" {
		if m := regexp.MustCompile(`listening on (http://[0-9.:]+/)`).FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		} else if ctx.Err() != nil {
			t.Fatal("the listener never printed its address")
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	body := []byte(`{"type":"request.created","version":1,"id":"msg_1","data":{"conversation":{"id":"c1","name":"ops"},` +
		`"request":{"id":"0123456789ab","template":"httpbin.headers","k":1,"m":2,"waiting_on":["bob"]},"link":"https://tk.example/#/c/c1/r/0123456789ab"}}`)
	post := func(sign string) int {
		t.Helper()
		ts := time.Now().Unix()
		sig, err := notify.Sign(sign, "msg_1", ts, body)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base, bytes.NewReader(body))
		req.Header.Set(notify.HeaderID, "msg_1")
		req.Header.Set(notify.HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(notify.HeaderSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(secret); code != http.StatusServiceUnavailable {
		t.Fatalf("before the secret file exists: %d, want 503 (retried later)", code)
	}
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := post("whsec_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); code != http.StatusUnauthorized {
		t.Fatalf("signed with another secret: %d, want 401", code)
	}
	if code := post(secret); code != http.StatusNoContent {
		t.Fatalf("signed with the secret: %d, want 204", code)
	}
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the listener did not stop after --count 1")
	}
	got := out.String()
	for _, want := range []string{"✗ refused msg_1", "✓ signature valid  request.created  in ops  request 01234567 (httpbin.headers) 1/2  waiting on bob  https://tk.example/#/c/c1/r/0123456789ab"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
