package conversation

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	b := make([]byte, 0, paeHeaderLen(payloadType, len(payload))+len(payload))
	return append(appendPAEHeader(b, payloadType, len(payload)), payload...)
}

// paeHeaderLen is the length of PAE's bytes before the payload.
func paeHeaderLen(payloadType string, n int) int {
	return len("DSSEv1 ") + decimalLen(len(payloadType)) + 1 + len(payloadType) + 1 + decimalLen(n) + 1
}

// appendPAEHeader appends PAE's bytes before a payload of n bytes.
func appendPAEHeader(b []byte, payloadType string, n int) []byte {
	b = append(b, "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(payloadType)), 10)
	b = append(b, ' ')
	b = append(b, payloadType...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, ' ')
}

func decimalLen(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// Digest returns "sha256:" and the lower-case hex of SHA-256 of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	var out [len("sha256:") + 2*sha256.Size]byte
	copy(out[:], "sha256:")
	hex.Encode(out[len("sha256:"):], sum[:])
	return string(out[:])
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

	// Set by Verify, so that a posted message's signed bytes are built and
	// its digest computed once (the record's chain and the replay check
	// read them again). Each is used only while it still belongs to
	// Envelope and Payload (see signed); Payload's bytes are never changed.
	pae     []byte // PAE(paeType, Payload); Payload is its tail
	paeType string
	digest  string // Digest(Payload)
}

// PayloadDigest is the digest of the payload bytes (request_digest and
// proposal_digest in PROTOCOL 4).
func (m *Message) PayloadDigest() string {
	if m.digest != "" && m.signed() != nil {
		return m.digest
	}
	return Digest(m.Payload)
}

// signed returns the PAE bytes Verify built for m, or nil when m was not
// made by Verify or its Envelope's payloadType or Payload was replaced
// since.
func (m *Message) signed() []byte {
	p, n := m.pae, len(m.Payload)
	if n == 0 || len(p) < n || &p[len(p)-n] != &m.Payload[0] || m.paeType != m.Envelope.PayloadType {
		return nil
	}
	return p
}

// SignedBytes returns PAE of m's payloadType and payload: the bytes its
// signature covers and its record's chain hashes.
func (m *Message) SignedBytes() []byte {
	if p := m.signed(); p != nil {
		return p
	}
	return PAE(m.Envelope.PayloadType, m.Payload)
}

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
	if env, ok := quickEnvelope(data); ok {
		return env, nil
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

// quickEnvelope is ParseEnvelope's fast path for an envelope in the form
// clients write: one JSON object with payloadType, payload and signatures
// each once and spelled exactly so, signatures an array of objects of
// keyid and sig (each at most once, exactly so spelled), every string
// printable ASCII without escapes, nothing else (whitespace aside). Such
// text is valid JSON, and quickEnvelope returns what json.Unmarshal would;
// for anything else it answers false and ParseEnvelope unmarshals as
// before, syntax errors and all.
func quickEnvelope(data []byte) (Envelope, bool) {
	q := envScan{data: data}
	var pt, pl [2]int
	var sigBuf [1][2][2]int
	var sigs [][2][2]int // per signature: the spans of keyid and sig
	seen := 0
	if !q.open('{') {
		return Envelope{}, false
	}
	for more := !q.close('}'); more; more = q.next('}') {
		key, ok := q.str()
		if !ok || !q.colon() {
			return Envelope{}, false
		}
		var bit int
		switch string(data[key[0]:key[1]]) {
		case "payloadType":
			bit = 1
			pt, ok = q.str()
		case "payload":
			bit = 2
			pl, ok = q.str()
		case "signatures":
			bit = 4
			sigs, ok = q.signatures(sigBuf[:0])
		default:
			return Envelope{}, false
		}
		if !ok || seen&bit != 0 {
			return Envelope{}, false
		}
		seen |= bit
	}
	if q.space(); seen != 7 || q.bad || q.i != len(data) {
		return Envelope{}, false
	}
	// The fields are cut from one copy of the envelope, unless that copy
	// would keep much more than them alive (an envelope padded with
	// whitespace up to the size limit).
	text := func(sp [2]int) string { return string(data[sp[0]:sp[1]]) }
	size := pt[1] - pt[0] + pl[1] - pl[0]
	for _, sg := range sigs {
		size += sg[0][1] - sg[0][0] + sg[1][1] - sg[1][0]
	}
	if len(data)-size <= 512 {
		all := string(data)
		text = func(sp [2]int) string { return all[sp[0]:sp[1]] }
	}
	env := Envelope{PayloadType: text(pt), Payload: text(pl), Signatures: make([]Signature, len(sigs))}
	for i, sg := range sigs {
		env.Signatures[i] = Signature{KeyID: text(sg[0]), Sig: text(sg[1])}
	}
	return env, true
}

// envScan reads JSON of quickEnvelope's form, and nothing else.
type envScan struct {
	data []byte
	i    int
	bad  bool // a list ended without its closing delimiter
}

func (q *envScan) space() {
	for q.i < len(q.data) && (q.data[q.i] == ' ' || q.data[q.i] == '\t' || q.data[q.i] == '\n' || q.data[q.i] == '\r') {
		q.i++
	}
}

// open consumes the delimiter c.
func (q *envScan) open(c byte) bool {
	q.space()
	if q.i < len(q.data) && q.data[q.i] == c {
		q.i++
		return true
	}
	return false
}

// close consumes the closing delimiter c if it comes next.
func (q *envScan) close(c byte) bool { return q.open(c) }

// next consumes a ',' (and reports true) or the closing delimiter c
// (else the text is not of the form: bad).
func (q *envScan) next(c byte) bool {
	if q.open(',') {
		return true
	}
	if !q.open(c) {
		q.bad = true
	}
	return false
}

func (q *envScan) colon() bool { return q.open(':') }

// str reads a string of printable ASCII without escapes and returns the
// span of its contents.
func (q *envScan) str() ([2]int, bool) {
	if !q.open('"') {
		return [2]int{}, false
	}
	start := q.i
	for ; q.i < len(q.data); q.i++ {
		switch c := q.data[q.i]; {
		case c == '"':
			q.i++
			return [2]int{start, q.i - 1}, true
		case c == '\\' || c < ' ' || c >= utf8.RuneSelf:
			return [2]int{}, false
		}
	}
	return [2]int{}, false
}

// signatures reads the signatures array, appending to sigs the spans of
// each one's keyid and sig (empty when absent).
func (q *envScan) signatures(sigs [][2][2]int) ([][2][2]int, bool) {
	if !q.open('[') {
		return nil, false
	}
	for more := !q.close(']'); more; more = q.next(']') {
		sg := [2][2]int{}
		var seen int
		if !q.open('{') {
			return nil, false
		}
		for more := !q.close('}'); more; more = q.next('}') {
			key, ok := q.str()
			if !ok || !q.colon() {
				return nil, false
			}
			var f int
			switch string(q.data[key[0]:key[1]]) {
			case "keyid":
				f = 0
			case "sig":
				f = 1
			default:
				return nil, false
			}
			if seen&(1<<f) != 0 {
				return nil, false
			}
			seen |= 1 << f
			if sg[f], ok = q.str(); !ok {
				return nil, false
			}
		}
		sigs = append(sigs, sg)
	}
	return sigs, true
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
//
// Each envelope is verified once, on the bytes received: the payload is
// decoded once, straight into the PAE buffer the signature is checked
// over (which the record's chain hashes again, see NewRecord), the
// signer's key is parsed once per key (keyCache), and the payload's JSON
// is walked once for the strict rules and its header (checkPayload).
//
// Signatures are verified one at a time with crypto/ed25519: neither the
// standard library nor golang.org/x/crypto offers Ed25519 batch
// verification, and a batch check elsewhere need not accept exactly the
// signatures that ed25519.Verify accepts, which every client and auditor
// relies on.
func Verify(env Envelope) (*Message, error) {
	kind := KindOf(env.PayloadType)
	if !KnownKind(kind) {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "payloadType %q is not a twokey kind", twokey.Clip(env.PayloadType))
	}
	if len(env.Signatures) != 1 {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "envelope has %d signatures; exactly one is required", len(env.Signatures))
	}
	// One allocation holds the author's key (32 bytes), then PAE, whose
	// tail is the payload.
	buf, pae, payload, ok := decodeSigned(ed25519.PublicKeySize, env.PayloadType, env.Payload)
	if !ok {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "payload is not standard padded base64")
	}
	s := env.Signatures[0]
	pub, cached := keys.get(s.KeyID)
	if pub == nil {
		parsed, err := ParseKeyID(s.KeyID)
		if err != nil {
			return nil, err
		}
		pub = (*[ed25519.PublicKeySize]byte)(parsed)
	}
	var sigBuf [ed25519.SignatureSize + 2]byte // DecodedLen of 88 characters
	sig, err := decodeSig(s.Sig, &sigBuf)
	if err != nil {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "signature is not standard padded base64")
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, twokey.Errorf(twokey.EBadSignature, "signature is %d bytes; Ed25519 signatures are %d", len(sig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub[:], pae, sig) {
		return nil, twokey.Errorf(twokey.EBadSignature, "signature does not verify for key %s over this payload", s.KeyID)
	}
	if !cached {
		// Only a key that has verified a signature is kept.
		keys.add(s.KeyID, pub)
	}
	hdr, hdrDone, err := checkPayload(payload)
	if err != nil {
		return nil, err
	}
	author := buf[:ed25519.PublicKeySize:ed25519.PublicKeySize]
	copy(author, pub[:])
	m := &Message{Envelope: env, Kind: kind, Author: s.KeyID, AuthorKey: author, Payload: payload,
		Header: hdr, pae: pae, paeType: env.PayloadType}
	if !hdrDone {
		if err := json.Unmarshal(payload, &m.Header); err != nil {
			return nil, twokey.Errorf(twokey.EBadPayload, "payload header fields have the wrong type: %v", err)
		}
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
	m.digest = Digest(payload)
	return m, nil
}

// decodeSigned decodes the standard padded base64 b64 (as decodeStd does)
// into one new buffer: prefix spare bytes, then PAE of payloadType and the
// payload. pae and payload are capped sub-slices of buf.
func decodeSigned(prefix int, payloadType, b64 string) (buf, pae, payload []byte, ok bool) {
	if len(b64)%4 != 0 || strings.ContainsAny(b64, "\r\n") {
		return nil, nil, nil, false // not padded base64 (decodeStd refuses it)
	}
	n := len(b64) / 4 * 3
	for i := 1; i <= 2 && i <= len(b64) && b64[len(b64)-i] == '='; i++ {
		n--
	}
	h := paeHeaderLen(payloadType, n)
	// Room for the most Decode may write, DecodedLen(len(b64)), though a
	// well-formed payload is n bytes.
	buf = make([]byte, prefix+h+len(b64)/4*3)
	appendPAEHeader(buf[prefix:prefix], payloadType, n)
	got, err := stdStrict.Decode(buf[prefix+h:], []byte(b64))
	if err != nil || got != n {
		return nil, nil, nil, false
	}
	end := prefix + h + n
	return buf, buf[prefix:end:end], buf[prefix+h : end : end], true
}

// decodeSig decodes a signature as decodeStd does, into tmp when it fits.
func decodeSig(s string, tmp *[ed25519.SignatureSize + 2]byte) ([]byte, error) {
	if len(s) > base64.StdEncoding.EncodedLen(ed25519.SignatureSize) {
		return decodeStd(s)
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("base64 text contains a line break")
	}
	n, err := stdStrict.Decode(tmp[:], []byte(s))
	return tmp[:n], err
}

// stdStrict and rawURLStrict are made once: Strict returns a new Encoding.
var (
	stdStrict    = base64.StdEncoding.Strict()
	rawURLStrict = base64.RawURLEncoding.Strict()
)

// decodeStd decodes standard padded base64 and nothing else. Go's decoder
// skips CR and LF even in strict mode, which would let one payload or
// signature travel under many spellings that other clients refuse.
func decodeStd(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("base64 text contains a line break")
	}
	return stdStrict.DecodeString(s)
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
