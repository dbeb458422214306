package conversation

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// benchApproval returns the JSON of a signed gate.approve, the envelope
// the server verifies most often.
func benchApproval(b *testing.B) []byte {
	b.Helper()
	id, err := NewIdentity("bench")
	if err != nil {
		b.Fatal(err)
	}
	env, err := SignJSON(id, KindGateApprove, map[string]string{
		"conversation": "5b0e7a52-2f0f-4e43-9d7c-0f3a8f2a6c11", "created_at": FormatTime(time.Now()),
		"gateway": id.KeyID(), "request_id": "0c6f0f5e-8a43-4a35-9f55-1b1f0d2d7e90",
		"request_digest": Digest([]byte("the request")),
	})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkOpen is envelope verification as the server does it: parse the
// DSSE JSON, decode, check the key id, verify Ed25519 over PAE, check the
// payload is strict JSON and read its header.
func BenchmarkOpen(b *testing.B) {
	raw := benchApproval(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Verify is the signature check alone: the floor under
// BenchmarkOpen.
func BenchmarkEd25519Verify(b *testing.B) {
	id, _ := NewIdentity("bench")
	msg := PAE(PayloadType(KindGateApprove), []byte(`{"conversation":"c","created_at":"2026-01-01T00:00:00.000Z"}`))
	sig := ed25519.Sign(id.Private, msg)
	pub := id.Public()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("does not verify")
		}
	}
}

// BenchmarkHubPublish is one record published to a conversation with n
// subscribers: the engine's cost of fan-out (a window append and a
// non-blocking poke per subscriber; the sockets do the rest).
func BenchmarkHubPublish(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h := NewHub(256)
			for range n {
				s := h.Subscribe("c", nil)
				<-s.C
			}
			var seq uint64
			b.ReportAllocs()
			for b.Loop() {
				seq++
				h.Publish("c", Record{Seq: seq})
			}
		})
	}
}
