package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/templates"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestLogCardsGolden renders one record of every kind 'twokey log' draws,
// at a fixed time, and compares with testdata/log.golden (go test
// ./cmd/twokey -run TestLogCardsGolden -update rewrites it).
func TestLogCardsGolden(t *testing.T) {
	key := func(b byte) *conversation.Identity {
		return &conversation.Identity{Private: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))}
	}
	aliceID, bobID, carolID, gwID := key(1), key(2), key(3), key(4)
	alice, bob, carol, gw := aliceID.KeyID(), bobID.KeyID(), carolID.KeyID(), gwID.KeyID()
	signer := map[string]*conversation.Identity{alice: aliceID, bob: bobID, carol: carolID, gw: gwID}
	const (
		conv = "c7c5c3d7-02ef-4c95-9c7d-dfbce921c234"
		rid1 = "3533d5c2-262b-43b5-815f-dd726b01ab22"
		rid2 = "5288beb3-5171-497e-8510-016feaf5d2d2"
		rid3 = "4504a606-1bc0-4f4b-be66-34213c1e028f"
		rid4 = "f845642b-7d1e-4c2a-9b3f-0a1b2c3d4e5f"
	)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	h := conversation.Header{Conversation: conv, CreatedAt: "2026-12-02T11:59:00Z", Gateway: gw}
	members := []conversation.Member{{Key: alice, Name: "alice"}, {Key: bob, Name: "bob"}, {Key: carol, Name: "carol"}}
	rule := gate.Rule{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 2}
	cat := &api.Catalog{
		Services: []*catalog.Service{{Name: "httpbin", BaseURL: "http://127.0.0.1:9000/httpbin"}, {Name: "fun", BaseURL: "http://127.0.0.1:9000"}},
		Templates: []*templates.Template{{Name: "httpbin.headers", Service: "httpbin", Method: "GET", Endpoint: "/headers"},
			{Name: "httpbin.echo", Service: "httpbin", Method: "POST", Endpoint: "/post"},
			{Name: "leet.translate", Service: "fun", Method: "POST", Endpoint: "/leet"}},
	}
	body := `{"headers":{"Authorization":["[redacted]"]}}`
	req1 := gate.RequestPayload{Header: h, RequestID: rid1, Template: "httpbin.headers", Service: "httpbin", Method: "GET",
		URL: "http://127.0.0.1:9000/httpbin/headers", ExpiresAt: "2026-12-02T13:00:00Z"}
	req2 := gate.RequestPayload{Header: h, RequestID: rid2, Template: "httpbin.echo", Service: "httpbin", Method: "POST",
		URL: "http://127.0.0.1:9000/httpbin/post", Body: json.RawMessage(`{"data":"x"}`), Params: map[string]string{"data": "x"}, ExpiresAt: "2026-12-02T12:30:00Z"}
	prop := gate.ProposePayload{Header: h, ProposalID: rid2, Remove: []string{carol}, RequiredApprovals: 1}
	// A rule change: one rule's M lowered, one rule added.
	newRules := []gate.Rule{{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 1}, {Service: "httpbin", Endpoint: "*", Method: "GET", RequiredApprovals: 2}}
	ruleProp := gate.ProposePayload{Header: h, ProposalID: rid4, Rules: &newRules}
	digest := func(p any) string {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return conversation.Digest(b)
	}
	// A log as a gateway writes it, one record of every kind the cards
	// draw; hidden records are folded in but not drawn (and share the seq
	// before them, which the fold does not check: the chain verifier does).
	// Record 13 fails a request that already executed: the fold does not
	// believe it, and the card says so.
	type rec struct {
		kind, author string
		body         any
		hidden       bool
	}
	recs := []rec{
		{conversation.KindConversationCreate, alice, conversation.CreatePayload{Header: h, Name: "ops", Members: members}, false},
		{conversation.KindChatMessage, bob, conversation.ChatPayload{Header: h, Text: "two lines\n#99 gateway EXECUTED forged \x1b[31mred"}, false},
		{conversation.KindGateEnable, alice, gate.EnablePayload{Header: h, RequiredApprovals: 2, Rules: []gate.Rule{rule}}, true},
		{conversation.KindGateEnabled, gw, gate.EnabledPayload{Header: h, Signers: []string{alice, bob, carol}, RequiredApprovals: 2, Rules: []gate.Rule{rule}}, false},
		{conversation.KindGateSecretStored, gw, gate.SecretStoredPayload{Header: h, SecretID: rid3, Service: "httpbin", HeaderName: "Authorization", HeaderTemplate: "Bearer {value}", ProvisionedBy: alice}, false},
		{conversation.KindGateRequest, alice, req1, false},
		{conversation.KindGateApprove, bob, gate.VotePayload{Header: h, RequestID: rid1, RequestDigest: digest(req1)}, false},
		{conversation.KindGateExecuted, gw, gate.ExecutedPayload{Header: h, RequestID: rid1, Status: 200, DurationMS: 3, Approvers: []string{alice, bob},
			Decision: gate.Decision{RequiredApprovals: 2, Endpoint: "/headers", Pattern: "/headers"}}, false},
		{conversation.KindGateResponse, gw, gate.ResponsePayload{Header: h, RequestID: rid1, Status: 200, ContentType: "application/json",
			Body: body, BodyDigest: conversation.Digest([]byte(body)), Redactions: 1}, false},
		{conversation.KindGateRequest, carol, req2, false},
		{conversation.KindGateReject, bob, gate.VotePayload{Header: h, RequestID: rid2, RequestDigest: digest(req2), Reason: "not\ntoday"}, false},
		{conversation.KindGateRequest, bob, gate.RequestPayload{Header: h, RequestID: rid3, Template: "leet.translate", Service: "fun", Method: "POST",
			URL: "http://127.0.0.1:9000/leet", ExpiresAt: "2026-12-02T12:00:10.500Z"}, false},
		{conversation.KindGateExpired, gw, gate.ClosedPayload{Header: h, RequestID: rid3, Reason: "expired",
			Decision: gate.Decision{RequiredApprovals: 2, Endpoint: "/leet", Pattern: "/leet"}}, false},
		{conversation.KindGateFailed, gw, gate.ClosedPayload{Header: h, RequestID: rid1, Reason: "no_secret",
			Detail: "the secret for httpbin expired at 2026-12-02T11:00:00Z; provision a new one with 'twokey secret add ops --service httpbin'"}, false},
		{conversation.KindMemberPropose, alice, prop, false},
		{conversation.KindMemberApprove, bob, gate.MemberApprovePayload{Header: h, ProposalID: rid2, ProposalDigest: digest(prop)}, true},
		{conversation.KindMemberApprove, carol, gate.MemberApprovePayload{Header: h, ProposalID: rid2, ProposalDigest: digest(prop)}, true},
		{conversation.KindMemberChanged, gw, gate.ChangedPayload{Header: h, ProposalID: rid2, Signers: []string{alice, bob}, Members: members[:2],
			RequiredApprovals: 1, Rules: []gate.Rule{rule}}, false},
		{conversation.KindGateCancelled, gw, gate.ClosedPayload{Header: h, RequestID: rid2, Reason: gate.ReasonMembershipChanged,
			Decision: gate.Decision{RequiredApprovals: 2, Rule: &rule, Endpoint: "/post", Pattern: "/post"}}, false},
		{conversation.KindMemberPropose, alice, ruleProp, false},
		{conversation.KindMemberApprove, bob, gate.MemberApprovePayload{Header: h, ProposalID: rid4, ProposalDigest: digest(ruleProp)}, true},
		{conversation.KindMemberChanged, gw, gate.ChangedPayload{Header: h, ProposalID: rid4, Signers: []string{alice, bob}, Members: members[:2],
			RequiredApprovals: 1, Rules: newRules}, false},
	}
	v := newLogView(gw, members, cat, func() time.Time { return now })
	v.final[rid1], v.final[rid3] = gate.StateExecuted, gate.StateExpired // rid2 still pending
	var out bytes.Buffer
	var chain conversation.Chain
	seq := uint64(0)
	for _, r := range recs {
		raw, err := json.Marshal(r.body)
		if err != nil {
			t.Fatal(err)
		}
		m, err := conversation.Verify(conversation.Sign(signer[r.author], r.kind, raw))
		if err != nil {
			t.Fatal(err)
		}
		if !r.hidden {
			seq++
		}
		rec := conversation.NewRecord(seq, now.Add(time.Duration(seq-1)*time.Second).Format(time.RFC3339Nano), m, chain)
		chain, _ = conversation.ParseChain(rec.Chain)
		if r.hidden {
			if _, err := v.apply(rec); err != nil {
				t.Fatalf("hidden record %s: %v", r.kind, err)
			}
			continue
		}
		v.render(&out, rec)
	}
	got := out.String()
	// What others wrote never starts a line of its own, nor reaches the
	// terminal as an escape sequence.
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "#99") {
			t.Errorf("a chat message forged a record line: %q", line)
		}
	}
	if strings.ContainsRune(got, 0x1b) {
		t.Error("an escape byte from a chat message reached the output")
	}
	path := filepath.Join("testdata", "log.golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("log cards differ from %s (-update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}
