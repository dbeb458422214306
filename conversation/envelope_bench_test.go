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
	return benchApprovalBy(b, id)
}

func benchApprovalBy(b *testing.B, id *Identity) []byte {
	b.Helper()
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

// votePayload is gate.VotePayload (gate imports this package).
type votePayload struct {
	Header
	RequestID     string `json:"request_id"`
	RequestDigest string `json:"request_digest"`
	Reason        string `json:"reason,omitempty"`
}

// BenchmarkVerifyApproval is one posted gate.approve as this package
// serves it to the engine: Open (parse, verify, strict JSON, header) and
// the engine's Decode into the vote payload. "before" is the code as it
// was (legacy_test.go), "after" the current one, in the same run; the
// signer's key is cached after the first iteration, as for a signer who
// approves again. "after/uncached" cycles through twice keyCacheSize
// signers, so that every key misses the cache.
func BenchmarkVerifyApproval(b *testing.B) {
	raw := benchApproval(b)
	run := func(b *testing.B, open func([]byte) (*Message, error), raws ...[]byte) {
		b.SetBytes(int64(len(raws[0])))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m, err := open(raws[i%len(raws)])
			if err != nil {
				b.Fatal(err)
			}
			var p votePayload
			if err := m.Decode(&p); err != nil || p.RequestID == "" {
				b.Fatal(err)
			}
			i++
		}
	}
	b.Run("before", func(b *testing.B) { run(b, legacyOpen, raw) })
	b.Run("after", func(b *testing.B) { run(b, Open, raw) })
	b.Run("after/uncached", func(b *testing.B) {
		raws := make([][]byte, 2*keyCacheSize)
		for i := range raws {
			id, err := NewIdentity("bench")
			if err != nil {
				b.Fatal(err)
			}
			raws[i] = benchApprovalBy(b, id)
		}
		run(b, Open, raws...)
	})
}

// BenchmarkApprovalRecord is everything this package does for one posted
// approval: BenchmarkVerifyApproval, then the two digests the engine's
// replay check takes, the record with its chain value, and the chain
// parsed back (engine's change.append).
func BenchmarkApprovalRecord(b *testing.B) {
	raw := benchApproval(b)
	var prev Chain
	prev[0] = 1
	type path struct {
		open   func([]byte) (*Message, error)
		digest func(*Message) string
		record func(uint64, string, *Message, Chain) Record
		parse  func(string) (Chain, error)
	}
	run := func(b *testing.B, p path) {
		b.ReportAllocs()
		for b.Loop() {
			m, err := p.open(raw)
			if err != nil {
				b.Fatal(err)
			}
			var v votePayload
			if err := m.Decode(&v); err != nil {
				b.Fatal(err)
			}
			if p.digest(m) != p.digest(m) {
				b.Fatal("digest")
			}
			r := p.record(7, "2026-01-01T00:00:00.000Z", m, prev)
			if _, err := p.parse(r.Chain); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("before", func(b *testing.B) {
		run(b, path{legacyOpen, func(m *Message) string { return legacyDigest(m.Payload) }, legacyNewRecord, legacyParseChain})
	})
	b.Run("after", func(b *testing.B) {
		run(b, path{Open, (*Message).PayloadDigest, NewRecord, ParseChain})
	})
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
