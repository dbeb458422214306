package conversation

// The verification path as it was before the hot-path work (commit
// b18504a), kept under test-only names: the benchmarks measure it beside
// the current code in one run, and the differential tests hold the
// current code to its every answer, error messages included.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/twokey/twokey"
)

func legacyPAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(payloadType) + len(payload) + 32)
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

func legacyDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func legacyOpen(data []byte) (*Message, error) {
	env, err := legacyParseEnvelope(data)
	if err != nil {
		return nil, err
	}
	return legacyVerify(env)
}

func legacyParseEnvelope(data []byte) (Envelope, error) {
	if len(data) > twokey.MaxEnvelopeBytes {
		return Envelope{}, twokey.Errorf(twokey.ETooLarge, "envelope is %d bytes; the limit is %d", len(data), twokey.MaxEnvelopeBytes)
	}
	var raw struct {
		PayloadType *string     `json:"payloadType"`
		Payload     *string     `json:"payload"`
		Signatures  []Signature `json:"signatures"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Envelope{}, &twokey.Error{Code: twokey.EBadEnvelope, Message: "envelope is not valid DSSE JSON: " + err.Error(), Err: err}
	}
	if raw.PayloadType == nil || raw.Payload == nil || raw.Signatures == nil {
		return Envelope{}, twokey.Errorf(twokey.EBadEnvelope, "envelope needs payloadType, payload and signatures")
	}
	return Envelope{PayloadType: *raw.PayloadType, Payload: *raw.Payload, Signatures: raw.Signatures}, nil
}

func legacyVerify(env Envelope) (*Message, error) {
	kind := KindOf(env.PayloadType)
	if !KnownKind(kind) {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "payloadType %q is not a twokey kind", twokey.Clip(env.PayloadType))
	}
	if len(env.Signatures) != 1 {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "envelope has %d signatures; exactly one is required", len(env.Signatures))
	}
	payload, err := legacyDecodeStd(env.Payload)
	if err != nil {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "payload is not standard padded base64")
	}
	s := env.Signatures[0]
	pub, err := legacyParseKeyID(s.KeyID)
	if err != nil {
		return nil, err
	}
	sig, err := legacyDecodeStd(s.Sig)
	if err != nil {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "signature is not standard padded base64")
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, twokey.Errorf(twokey.EBadSignature, "signature is %d bytes; Ed25519 signatures are %d", len(sig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, legacyPAE(env.PayloadType, payload), sig) {
		return nil, twokey.Errorf(twokey.EBadSignature, "signature does not verify for key %s over this payload", s.KeyID)
	}
	if err := legacyCheckJSON(payload); err != nil {
		return nil, err
	}
	m := &Message{Envelope: env, Kind: kind, Author: s.KeyID, AuthorKey: pub, Payload: payload}
	if err := json.Unmarshal(payload, &m.Header); err != nil {
		return nil, twokey.Errorf(twokey.EBadPayload, "payload header fields have the wrong type: %v", err)
	}
	if m.Header.CreatedAt == "" {
		return nil, twokey.Errorf(twokey.EBadPayload, "payload needs created_at (RFC 3339 UTC)")
	}
	m.CreatedAt, err = ParseTime(m.Header.CreatedAt)
	if err != nil {
		return nil, twokey.Errorf(twokey.EBadPayload, "created_at: %v", err)
	}
	if kind != KindSessionOpen && m.Header.Conversation == "" {
		return nil, twokey.Errorf(twokey.EBadPayload, "payload needs conversation")
	}
	return m, nil
}

func legacyDecodeStd(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("base64 text contains a line break")
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

func legacyParseKeyID(id string) (ed25519.PublicKey, error) {
	if len(id) != KeyIDLen {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "key id %q is not 43 characters of base64url", twokey.Clip(id))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(id)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "key id %q is not a base64url-encoded 32-byte key", twokey.Clip(id))
	}
	if KeyID(raw) != id {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "key id %q is not in canonical form", twokey.Clip(id))
	}
	if !usableKey(raw) {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "key id %q is not a usable Ed25519 public key (not a canonical curve point, or one of small order)", twokey.Clip(id))
	}
	return ed25519.PublicKey(raw), nil
}

// legacyCheckJSON is CheckJSON as it was: the UTF-8 test, then the token
// walk (which checkJSON still is).
func legacyCheckJSON(data []byte) error {
	if !utf8.Valid(data) {
		return twokey.Errorf(twokey.EBadPayload, "payload is not valid UTF-8 (byte %d); send text as UTF-8", invalidAt(data))
	}
	return checkJSON(data)
}

func legacyNext(c Chain, pae []byte) Chain {
	inner := sha256.Sum256(pae)
	h := sha256.New()
	h.Write(c[:])
	h.Write(inner[:])
	var out Chain
	copy(out[:], h.Sum(nil))
	return out
}

func legacyChainString(c Chain) string { return "sha256:" + hex.EncodeToString(c[:]) }

func legacyParseChain(s string) (Chain, error) {
	var c Chain
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return c, fmt.Errorf("chain %q lacks the sha256: prefix", twokey.Clip(s))
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 || hex.EncodeToString(b) != h {
		return c, fmt.Errorf("chain %q is not 64 lower-case hex digits", twokey.Clip(s))
	}
	copy(c[:], b)
	return c, nil
}

func legacyNewRecord(seq uint64, receivedAt string, m *Message, prev Chain) Record {
	return Record{
		Seq: seq, ReceivedAt: receivedAt, Kind: m.Kind, Author: m.Author,
		Envelope: m.Envelope, Body: json.RawMessage(m.Payload),
		Chain: legacyChainString(legacyNext(prev, legacyPAE(m.Envelope.PayloadType, m.Payload))),
	}
}
