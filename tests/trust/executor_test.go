package trust_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// TestEncodedResponsesAreWithheld: the gateway asks every upstream for an
// unencoded body (Accept-Encoding: identity), because redaction can only
// see into bytes it can read. An upstream that compresses anyway (httpbin's
// /gzip and /deflate, which also echo the injected key) gets its body
// withheld: the gate.response carries a note instead, and none of the
// headers that describe the encoded body.
func TestEncodedResponsesAreWithheld(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 1, 1)
	for _, path := range []string{"/gzip", "/deflate"} {
		t.Run(path, func(t *testing.T) {
			id, _ := fx.submit(t, 0, path)
			if s := fx.wait(t, id); s != gate.StateExecuted {
				t.Fatalf("%s: %s", path, s)
			}
			r := fx.response(t, id)
			if !strings.HasPrefix(r.Body, "[withheld by twokey") || !strings.Contains(r.Body, "Content-Encoding") {
				t.Fatalf("an encoded body was published: %q", r.Body)
			}
			if r.BodyDigest != conversation.Digest([]byte(r.Body)) || r.Truncated {
				t.Fatalf("body_digest is not the note's")
			}
			for _, h := range []string{"Content-Encoding", "Content-Length", "Content-Type"} {
				if _, ok := r.Headers[h]; ok {
					t.Errorf("header %s of the withheld body is published: %v", h, r.Headers)
				}
			}
			if !strings.HasPrefix(r.ContentType, "text/plain") {
				t.Errorf("content_type %q, want the note's text/plain", r.ContentType)
			}
		})
	}
	// A plain answer is published as before, and every call asked for it.
	id, _ := fx.submit(t, 0, "/get")
	fx.wait(t, id)
	if r := fx.response(t, id); !strings.Contains(r.Body, `"url"`) {
		t.Fatalf("a plain body: %q", r.Body)
	}
	reqs := fx.up.Requests()
	if len(reqs) != 3 {
		t.Fatalf("the upstream got %d calls, want 3", len(reqs))
	}
	for _, r := range reqs {
		if got := r.Header.Values("Accept-Encoding"); len(got) != 1 || got[0] != "identity" {
			t.Errorf("%s was asked with Accept-Encoding %q, want identity", r.Path, got)
		}
	}
	if logs := fx.srv.Logs(); !strings.Contains(logs, "encoded response withheld") || strings.Contains(logs, fixtureKey) {
		t.Errorf("the server log does not say a body was withheld, or holds the key")
	}
}

// TestNoSecretNamesTheExpiry: a request whose service's key expired fails
// with reason no_secret and a detail naming the instant it expired and
// how to provision a new one, in the signed gate.failed and in the
// request's state; one whose key was revoked says there is none. The log
// still passes the audit, with the M each failure was decided under.
func TestNoSecretNamesTheExpiry(t *testing.T) {
	t.Parallel()
	fx := newFakeFixture(t, 1, 1)
	ctx := testutil.Ctx(t)
	if _, err := fx.cs[0].RevokeSecret(ctx, fx.conv, "", "httpbin"); err != nil {
		t.Fatal(err)
	}
	// Revoked, none left.
	id, _ := fx.submit(t, 0, "/headers")
	st, err := fx.cs[0].WaitRequest(ctx, fx.conv, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != gate.StateFailed || st.Result.Reason != gate.ReasonNoSecret ||
		!strings.Contains(st.Result.Detail, "no live secret is stored for httpbin") || !strings.Contains(st.Result.Detail, "twokey secret add ops --service httpbin") {
		t.Fatalf("without a secret: %s %+v", st.State, st.Result)
	}
	// Expired at its TTL.
	if _, err := fx.cs[0].AddSecret(ctx, fx.conv, "httpbin", "", "", time.Hour, []byte(fixtureKey)); err != nil {
		t.Fatal(err)
	}
	expires := fx.clk.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	fx.clk.Advance(time.Hour)
	id, _ = fx.submit(t, 0, "/headers")
	if st, err = fx.cs[0].WaitRequest(ctx, fx.conv, id); err != nil {
		t.Fatal(err)
	}
	want := "the secret for httpbin expired at " + expires + "; provision a new one with 'twokey secret add ops --service httpbin'"
	if st.State != gate.StateFailed || st.Result.Reason != gate.ReasonNoSecret || st.Result.Detail != want {
		t.Fatalf("at the TTL: %s %+v\nwant detail %q", st.State, st.Result, want)
	}
	recs, err := fx.cs[0].Records(ctx, fx.conv, st.Result.Seq-1, 1)
	if err != nil || len(recs) != 1 || recs[0].Kind != conversation.KindGateFailed {
		t.Fatalf("record %d: %v %v", st.Result.Seq, recs, err)
	}
	var failed gate.ClosedPayload
	if err := json.Unmarshal(recs[0].Body, &failed); err != nil || failed.Detail != want || failed.RequiredApprovals != 1 || failed.Endpoint != "/headers" {
		t.Fatalf("the signed gate.failed: %s (%v)", recs[0].Body, err)
	}
	if n := len(fx.up.Requests()); n != 0 {
		t.Fatalf("the upstream got %d calls without a live key", n)
	}
	x, err := audit.Fetch(ctx, fx.cs[0], fx.conv)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(x, audit.Options{Gateway: fx.gw})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Executions) != 2 || rep.Executions[1].Outcome != "failed no_secret" || rep.Executions[1].Required != 1 {
		t.Fatalf("audit executions: %+v", rep.Executions)
	}
}
