package conversation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/twokey/twokey"
)

// Record is one numbered entry of a conversation's log (PROTOCOL 3).
type Record struct {
	Seq        uint64          `json:"seq"`
	ReceivedAt string          `json:"received_at"`
	Kind       string          `json:"kind"`
	Author     string          `json:"author"`
	Envelope   Envelope        `json:"envelope"`
	Body       json.RawMessage `json:"body"`
	Chain      string          `json:"chain"`
}

// Chain is a value of the log's hash chain.
type Chain [32]byte

// String writes the chain value as a digest.
func (c Chain) String() string {
	var b [len("sha256:") + 2*len(c)]byte
	copy(b[:], "sha256:")
	hex.Encode(b[len("sha256:"):], c[:])
	return string(b[:])
}

// ParseChain reads a digest written by Chain.String.
func ParseChain(s string) (Chain, error) {
	var c Chain
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return c, fmt.Errorf("chain %q lacks the sha256: prefix", twokey.Clip(s))
	}
	if len(h) != 2*len(c) || !lowerHex(h) {
		return c, fmt.Errorf("chain %q is not 64 lower-case hex digits", twokey.Clip(s))
	}
	hex.Decode(c[:], []byte(h)) // cannot fail: 64 hex digits
	return c, nil
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Next returns chain(n) = SHA-256(chain(n-1) || SHA-256(PAE(envelope n))).
func (c Chain) Next(pae []byte) Chain {
	var b [2 * sha256.Size]byte
	copy(b[:], c[:])
	inner := sha256.Sum256(pae)
	copy(b[sha256.Size:], inner[:])
	return sha256.Sum256(b[:])
}

// NewRecord builds the record for a verified message.
func NewRecord(seq uint64, receivedAt string, m *Message, prev Chain) Record {
	return Record{
		Seq: seq, ReceivedAt: receivedAt, Kind: m.Kind, Author: m.Author,
		Envelope: m.Envelope, Body: json.RawMessage(m.Payload),
		Chain: prev.Next(m.SignedBytes()).String(),
	}
}

// ChainVerifier checks a stream of records, in order, from some trusted
// starting point: each signature, the kind, the author, that the body is
// the signed payload, gap-free seq and the chain.
type ChainVerifier struct {
	Seq   uint64
	Chain Chain
	// Gateway, when set, is the gateway's key id: records of gateway kinds
	// must be signed by it and no other record may be.
	Gateway string
}

// Check verifies the next record and advances the verifier.
func (v *ChainVerifier) Check(r Record) error {
	if r.Seq != v.Seq+1 {
		return fmt.Errorf("record %d: expected seq %d (a record is missing or out of order)", r.Seq, v.Seq+1)
	}
	m, err := Verify(r.Envelope)
	if err != nil {
		return fmt.Errorf("record %d: %w", r.Seq, err)
	}
	if m.Kind != r.Kind {
		return fmt.Errorf("record %d: kind %q does not match its envelope's %q", r.Seq, r.Kind, m.Kind)
	}
	if m.Author != r.Author {
		return fmt.Errorf("record %d: author does not match its envelope's signer", r.Seq)
	}
	if !SameJSON(r.Body, m.Payload) {
		return fmt.Errorf("record %d: body does not match its envelope's signed payload", r.Seq)
	}
	if v.Gateway != "" {
		if GatewayKind(m.Kind) && m.Author != v.Gateway {
			return fmt.Errorf("record %d: %s claims to be the gateway's but is signed by %s", r.Seq, m.Kind, m.Author)
		}
		if !GatewayKind(m.Kind) && m.Author == v.Gateway && !ProgramRequest(m) {
			return fmt.Errorf("record %d: %s is signed by the gateway, which writes only gateway kinds", r.Seq, m.Kind)
		}
	}
	next := v.Chain.Next(m.SignedBytes())
	if next.String() != r.Chain {
		return fmt.Errorf("record %d: chain value does not match (the log before it was changed)", r.Seq)
	}
	v.Seq, v.Chain = r.Seq, next
	return nil
}

// ProgramRequest reports whether m is a gate.request the gateway wrote on
// a program key's behalf (docs/protocol.md E): the one member kind the
// gateway signs, always naming the program.
func ProgramRequest(m *Message) bool {
	if m.Kind != KindGateRequest {
		return false
	}
	var p struct {
		Program string `json:"program"`
	}
	return json.Unmarshal(m.Payload, &p) == nil && p.Program != ""
}

// SameJSON reports whether body is payload as a JSON encoder may re-encode
// it: encoding a json.RawMessage compacts it (or indents it) and may escape
// <, >, &, U+2028 and U+2029. Anything more is an edit.
func SameJSON(body, payload []byte) bool {
	norm := func(b []byte) ([]byte, bool) {
		var c, h bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			return nil, false
		}
		json.HTMLEscape(&h, c.Bytes())
		return h.Bytes(), true
	}
	a, ok1 := norm(body)
	b, ok2 := norm(payload)
	return ok1 && ok2 && bytes.Equal(a, b)
}

// MarshalText writes the chain as a digest.
func (c Chain) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a digest.
func (c *Chain) UnmarshalText(b []byte) error {
	v, err := ParseChain(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}
