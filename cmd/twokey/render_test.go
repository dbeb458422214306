package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestLogCardsGolden renders one record of every kind 'twokey log' draws,
// at a fixed time, and compares with testdata/log.golden (go test
// ./cmd/twokey -run TestLogCardsGolden -update rewrites it).
func TestLogCardsGolden(t *testing.T) {
	const (
		alice = "AbgXoQYlfvwliUzZdF6UgCl9Fs7d5RRzIsXUSSzmjjg"
		bob   = "mP00sRK5ZPwQ3EePYQphRYIcH8ZCV2vpDOG7brlrHRs"
		carol = "C2KZO3MVW9WPck634svu8jDnbcOOdieitTYHGFA3VXA"
		gw    = "Bzphy3LpJnKBntvgZayj4MkowNvxpcoYtcqhDDt0mHo"
		conv  = "c7c5c3d7-02ef-4c95-9c7d-dfbce921c234"
		rid1  = "3533d5c2-262b-43b5-815f-dd726b01ab22"
		rid2  = "5288beb3-5171-497e-8510-016feaf5d2d2"
		rid3  = "4504a606-1bc0-4f4b-be66-34213c1e028f"
	)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	h := conversation.Header{Conversation: conv, CreatedAt: "2026-12-02T11:59:00Z", Gateway: gw}
	members := []conversation.Member{{Key: alice, Name: "alice"}, {Key: bob, Name: "bob"}, {Key: carol, Name: "carol"}}
	type rec struct {
		kind, author string
		body         any
	}
	recs := []rec{
		{conversation.KindConversationCreate, alice, conversation.CreatePayload{Header: h, Name: "ops", Members: members}},
		{conversation.KindChatMessage, bob, conversation.ChatPayload{Header: h, Text: "two lines\n#99 gateway EXECUTED forged \x1b[31mred"}},
		{conversation.KindGateEnabled, gw, gate.EnabledPayload{Header: h, Signers: []string{alice, bob, carol}, RequiredApprovals: 2,
			Rules: []gate.Rule{{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 3}}}},
		{conversation.KindGateSecretStored, gw, gate.SecretStoredPayload{Header: h, SecretID: rid3, Service: "httpbin", HeaderName: "Authorization", HeaderTemplate: "Bearer {value}", ProvisionedBy: alice}},
		{conversation.KindGateRequest, alice, gate.RequestPayload{Header: h, RequestID: rid1, Template: "httpbin.headers", Service: "httpbin", Method: "GET",
			URL: "http://127.0.0.1:9000/httpbin/headers", ExpiresAt: "2026-12-02T13:00:00Z"}},
		{conversation.KindGateApprove, bob, gate.VotePayload{Header: h, RequestID: rid1, RequestDigest: "sha256:00"}},
		{conversation.KindGateExecuted, gw, gate.ExecutedPayload{Header: h, RequestID: rid1, Status: 200, DurationMS: 3, Approvers: []string{alice, bob}}},
		{conversation.KindGateResponse, gw, gate.ResponsePayload{Header: h, RequestID: rid1, Status: 200, ContentType: "application/json",
			Body: `{"headers":{"Authorization":["[redacted]"]}}`, BodyDigest: "sha256:00", Redactions: 1}},
		{conversation.KindGateRequest, carol, gate.RequestPayload{Header: h, RequestID: rid2, Template: "httpbin.echo", Service: "httpbin", Method: "POST",
			URL: "http://127.0.0.1:9000/httpbin/post", Body: json.RawMessage(`{"data":"x"}`), Params: map[string]string{"data": "x"}, ExpiresAt: "2026-12-02T12:30:00Z"}},
		{conversation.KindGateReject, bob, gate.VotePayload{Header: h, RequestID: rid2, RequestDigest: "sha256:00", Reason: "not\ntoday"}},
		{conversation.KindGateRequest, bob, gate.RequestPayload{Header: h, RequestID: rid3, Template: "leet.translate", Service: "fun", Method: "POST",
			URL: "http://127.0.0.1:9000/leet", ExpiresAt: "2026-12-02T12:45:00Z"}},
		{conversation.KindGateExpired, gw, gate.ClosedPayload{Header: h, RequestID: rid3, Reason: "expired"}},
		{conversation.KindGateFailed, gw, gate.ClosedPayload{Header: h, RequestID: rid1, Reason: "no_secret",
			Detail: "the secret for httpbin expired at 2026-12-02T11:00:00Z; provision a new one with 'twokey secret add ops --service httpbin'"}},
		{conversation.KindMemberPropose, alice, gate.ProposePayload{Header: h, ProposalID: rid2, Remove: []string{carol}, RequiredApprovals: 1}},
		{conversation.KindMemberChanged, gw, gate.ChangedPayload{Header: h, ProposalID: rid2, Signers: []string{alice, bob}, RequiredApprovals: 1}},
	}
	v := newLogView(gw, members, func() time.Time { return now })
	v.required[rid1], v.required[rid2], v.required[rid3] = 2, 3, 2
	v.final[rid1], v.final[rid3] = gate.StateExecuted, gate.StateExpired // rid2 still pending
	var out bytes.Buffer
	for i, r := range recs {
		body, err := json.Marshal(r.body)
		if err != nil {
			t.Fatal(err)
		}
		v.render(&out, conversation.Record{Seq: uint64(i + 1), ReceivedAt: now.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
			Kind: r.kind, Author: r.author, Body: body})
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
