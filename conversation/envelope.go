package conversation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/twokey/twokey"
)

// TypePrefix and TypeSuffix frame a kind into a DSSE payloadType.
const (
	TypePrefix = "application/vnd.twokey."
	TypeSuffix = "+json"
)

// PayloadType returns the payloadType of a kind.
func PayloadType(kind string) string { return TypePrefix + kind + TypeSuffix }

// KindOf returns the kind named by a payloadType, or "" if it is not one of ours.
func KindOf(payloadType string) string {
	if !strings.HasPrefix(payloadType, TypePrefix) || !strings.HasSuffix(payloadType, TypeSuffix) {
		return ""
	}
	return payloadType[len(TypePrefix) : len(payloadType)-len(TypeSuffix)]
}

// PAE is DSSE's pre-authentication encoding: the bytes a signature covers.
func PAE(payloadType string, payload []byte) []byte {
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

// Digest returns "sha256:" and the lower-case hex of SHA-256 of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Signature is one DSSE signature.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// Envelope is a DSSE v1 envelope as it travels on the wire. Payload holds
// the standard base64 text exactly as received; Open decodes and checks it.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Sign makes an envelope of kind over payload, signed by id.
func Sign(id *Identity, kind string, payload []byte) Envelope {
	pt := PayloadType(kind)
	sig := ed25519.Sign(id.Private, PAE(pt, payload))
	return Envelope{
		PayloadType: pt,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []Signature{{KeyID: id.KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)}},
	}
}

// SignJSON marshals v and signs it as kind.
func SignJSON(id *Identity, kind string, v any) (Envelope, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return Envelope{}, err
	}
	return Sign(id, kind, payload), nil
}

// Header holds the fields every payload carries.
type Header struct {
	Conversation string `json:"conversation"`
	CreatedAt    string `json:"created_at"`
	Gateway      string `json:"gateway,omitempty"`
}

// Message is an envelope whose signature has been checked: its author, its
// kind and its payload bytes exactly as signed.
type Message struct {
	Envelope  Envelope
	Kind      string
	Author    string // the signer's canonical key id
	AuthorKey ed25519.PublicKey
	Payload   []byte // the payload bytes, exactly as signed
	Header    Header
	CreatedAt time.Time
}

// PayloadDigest is the digest of the payload bytes (request_digest and
// proposal_digest in PROTOCOL 4).
func (m *Message) PayloadDigest() string { return Digest(m.Payload) }

// Decode unmarshals the payload into v. The payload was already checked by
// CheckJSON, so v sees no duplicate or case-shifted keys.
func (m *Message) Decode(v any) error {
	if err := json.Unmarshal(m.Payload, v); err != nil {
		return &twokey.Error{Code: twokey.EBadPayload, Message: m.Kind + " payload has a field of the wrong type: " + err.Error(), Err: err}
	}
	return nil
}

// ParseEnvelope decodes envelope JSON without verifying it.
func ParseEnvelope(data []byte) (Envelope, error) {
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

// Open parses envelope JSON and verifies it: a known payloadType, exactly one
// signature by a canonical key id over PAE of the payload bytes received, a
// payload that is one strict JSON object with a created_at.
func Open(data []byte) (*Message, error) {
	env, err := ParseEnvelope(data)
	if err != nil {
		return nil, err
	}
	return Verify(env)
}

// Verify checks an already parsed envelope (see Open).
func Verify(env Envelope) (*Message, error) {
	kind := KindOf(env.PayloadType)
	if !KnownKind(kind) {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "payloadType %q is not a twokey kind", twokey.Clip(env.PayloadType))
	}
	if len(env.Signatures) != 1 {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "envelope has %d signatures; exactly one is required", len(env.Signatures))
	}
	payload, err := decodeStd(env.Payload)
	if err != nil {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "payload is not standard padded base64")
	}
	s := env.Signatures[0]
	pub, err := ParseKeyID(s.KeyID)
	if err != nil {
		return nil, err
	}
	sig, err := decodeStd(s.Sig)
	if err != nil {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "signature is not standard padded base64")
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, twokey.Errorf(twokey.EBadSignature, "signature is %d bytes; Ed25519 signatures are %d", len(sig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, PAE(env.PayloadType, payload), sig) {
		return nil, twokey.Errorf(twokey.EBadSignature, "signature does not verify for key %s over this payload", s.KeyID)
	}
	if err := CheckJSON(payload); err != nil {
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

// decodeStd decodes standard padded base64 and nothing else. Go's decoder
// skips CR and LF even in strict mode, which would let one payload or
// signature travel under many spellings that other clients refuse.
func decodeStd(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("base64 text contains a line break")
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// ParseTime parses an RFC 3339 time, which must be in UTC ("Z").
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, twokey.Errorf(twokey.EBadPayload, "%q is not an RFC 3339 time", twokey.Clip(s))
	}
	if !strings.HasSuffix(s, "Z") {
		return time.Time{}, twokey.Errorf(twokey.EBadPayload, "%q is not in UTC; end it with Z", twokey.Clip(s))
	}
	return t, nil
}

// FormatTime writes t as RFC 3339 UTC with milliseconds.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// PAEOf returns the signed bytes of an envelope whose payload decodes.
func PAEOf(env Envelope) ([]byte, error) {
	payload, err := decodeStd(env.Payload)
	if err != nil {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "payload is not standard padded base64")
	}
	return PAE(env.PayloadType, payload), nil
}
