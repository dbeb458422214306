package server_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// TestSecretForAServiceThatTakesNoKey (issue 18): a gate.secret for a
// service with auth: none would be stored and never sent; the gateway
// refuses it with bad_payload naming the services that take a key, and
// nothing is logged.
func TestSecretForAServiceThatTakesNoKey(t *testing.T) {
	g := newGateFake(t, 1, 1)
	ctx := testutil.Ctx(t)
	before := g.lastSeq(t)
	_, err := g.cs[0].AddSecret(ctx, g.conv, "dogceo", "", "", 0, []byte(testKey))
	want := "service dogceo takes no key (auth: none in this gateway's catalog): a secret for it would never be sent, so none is stored; the services that take one are httpbin"
	if twokey.ErrorCode(err) != twokey.EBadPayload || !strings.Contains(err.Error(), want) {
		t.Fatalf("a secret for dogceo: %v\nwant bad_payload: %s", err, want)
	}
	if got := g.lastSeq(t); got != before {
		t.Fatalf("a refused secret moved the log from %d to %d", before, got)
	}
	if _, err := g.cs[0].AddSecret(ctx, g.conv, "httpbin", "", "", 0, []byte(testKey)); err != nil {
		t.Fatalf("a secret for httpbin (auth: required): %v", err)
	}
}

// TestSecretInUseIsTheOneInjected (issue 18): of two live secrets of a
// service, GET …/gate marks in_use the one a call gets (the newest; of two
// stored at the same instant, the greater id), and the upstream receives
// exactly that one; when it is revoked the other is in use.
func TestSecretInUseIsTheOneInjected(t *testing.T) {
	g := newGateFake(t, 1, 1)
	ctx := testutil.Ctx(t)
	keys := map[string]string{}
	for _, k := range []string{"sk_first_0001", "sk_second_0002", "sk_third_0003"} {
		if k == "sk_third_0003" {
			g.clk.Advance(time.Second) // the third is newer; the first two share an instant
		}
		rec, err := g.cs[0].AddSecret(ctx, g.conv, "httpbin", "", "", 0, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		var p gate.SecretStoredPayload
		if err := json.Unmarshal(rec.Body, &p); err != nil {
			t.Fatal(err)
		}
		keys[p.SecretID] = k
	}
	inUse := func() string {
		t.Helper()
		info, err := g.cs[0].Gate(ctx, g.conv)
		if err != nil {
			t.Fatal(err)
		}
		var used []string
		for _, s := range info.Secrets {
			if !s.Live {
				t.Fatalf("secret %s is not live", s.SecretID)
			}
			if s.InUse {
				used = append(used, s.SecretID)
			}
		}
		if len(used) != 1 {
			t.Fatalf("secrets in use: %v, want exactly one", used)
		}
		return used[0]
	}
	sent := func() string {
		t.Helper()
		st := g.wait(t, g.submit(t, 0, "/headers", time.Hour))
		if st.State != gate.StateExecuted {
			t.Fatalf("request: %s", st.State)
		}
		reqs := g.up.Requests()
		return strings.TrimPrefix(reqs[len(reqs)-1].Header.Get("Authorization"), "Bearer ")
	}
	id := inUse()
	if keys[id] != "sk_third_0003" {
		t.Fatalf("in use: %s, want the newest (sk_third_0003)", keys[id])
	}
	if got := sent(); got != keys[id] {
		t.Fatalf("the upstream got %s; in_use says %s", got, keys[id])
	}
	if _, err := g.cs[0].RevokeSecret(ctx, g.conv, id, ""); err != nil {
		t.Fatal(err)
	}
	// The first two were stored at the same instant: the greater id wins,
	// the same one every time.
	id = inUse()
	var tie []string
	for s := range keys {
		if keys[s] != "sk_third_0003" {
			tie = append(tie, s)
		}
	}
	want := max(tie[0], tie[1])
	if id != want {
		t.Fatalf("in use of two stored at one instant: %s, want the greater id %s", id, want)
	}
	for range 3 {
		if got := sent(); got != keys[want] {
			t.Fatalf("the upstream got %s; in_use says %s", got, keys[want])
		}
	}
}
