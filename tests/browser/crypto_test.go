package browser_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/nacl/box"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json from Go's crypto")

const vectorsPath = "testdata/vectors.json"

// The shared vectors: made by Go's crypto (makeVectors), committed, and
// checked from both sides, Go (TestVectorsMatchGo) and the page
// (TestPageReproducesVectors).
type vectorFile struct {
	Comment      string        `json:"comment"`
	Identity     vecIdentity   `json:"identity"`
	Base64       []vecBase64   `json:"base64"`
	KeyIDs       []vecKeyID    `json:"key_ids"`
	Envelopes    []vecEnvelope `json:"envelopes"`
	Chain        []string      `json:"chain"` // chain value after each of Envelopes, as a log
	BadEnvelopes []vecBad      `json:"bad_envelopes"`
	Box          vecBox        `json:"box"`
}

type vecIdentity struct {
	Name  string `json:"name"`
	Seed  string `json:"seed"` // std base64
	KeyID string `json:"key_id"`
	File  string `json:"file"` // the identity file, as conversation.Identity.Save writes it
}

// vecBase64 is a text and what Go's strict decoders make of it: the hex of
// the bytes, or null when refused.
type vecBase64 struct {
	Text string  `json:"text"`
	Std  *string `json:"std"`
	URL  *string `json:"url"`
}

type vecKeyID struct {
	ID        string `json:"id"`
	Canonical bool   `json:"canonical"`
}

type vecEnvelope struct {
	Kind     string                `json:"kind"`
	Payload  string                `json:"payload"` // the payload text, as JSON.stringify writes it
	PAE      string                `json:"pae"`     // hex
	Digest   string                `json:"digest"`
	Envelope conversation.Envelope `json:"envelope"`
}

// vecBad is an envelope conversation.Verify refuses, with its error.
type vecBad struct {
	Name     string                `json:"name"`
	Envelope conversation.Envelope `json:"envelope"`
	GoError  string                `json:"go_error"`
}

// vecBox is a sealed box made by box.SealAnonymous with a fixed ephemeral
// key.
type vecBox struct {
	RecipientSecret string `json:"recipient_secret"` // std base64
	RecipientPublic string `json:"recipient_public"` // base64url, as a box_key
	EphemeralSecret string `json:"ephemeral_secret"` // std base64
	EphemeralPublic string `json:"ephemeral_public"` // base64url
	Message         string `json:"message"`          // std base64
	Nonce           string `json:"nonce"`            // hex of BLAKE2b-192(epk || pk)
	Key             string `json:"key"`              // hex of HSalsa20(X25519(esk, pk), 0^16)
	Sealed          string `json:"sealed"`           // std base64 of epk || box
}

var b64 = base64.StdEncoding

func label(s string) []byte { h := sha256.Sum256([]byte("twokey tests/browser " + s)); return h[:] }

func strp(s string) *string { return &s }

// nonCanonical returns another spelling of the key id: the spare bits of
// its last character set, which decodes (leniently) to the same 32 bytes.
func nonCanonical(id string) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alpha, id[len(id)-1])
	return id[:len(id)-1] + string(alpha[i^1])
}

// makeVectors builds the vectors from Go's crypto alone. It is
// deterministic: the same bytes every run.
func makeVectors(t *testing.T) vectorFile {
	t.Helper()
	seed := label("identity")
	id := &conversation.Identity{Name: "vector alice", Private: ed25519.NewKeyFromSeed(seed)}
	path := filepath.Join(t.TempDir(), "id.json")
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	other := &conversation.Identity{Name: "vector bob", Private: ed25519.NewKeyFromSeed(label("other"))}
	v := vectorFile{
		Comment:  "Made by Go's crypto: go test ./tests/browser -run TestVectorsMatchGo -update. Checked by Go and by web/app/crypto.js in chromium.",
		Identity: vecIdentity{Name: id.Name, Seed: b64.EncodeToString(seed), KeyID: id.KeyID(), File: string(file)},
	}

	for _, s := range []string{"", "QQ==", "QUI=", "QUJD", "QUJDRA==", "QQ", "QUI", "QR==", "QUJ=", "Q===", "QQ=", "QUJD====",
		"QUJD\n", "QU JD", " QUJD", "+/8=", "-_8=", "+/8", "-_8", "-_9", "A", "AB", "ABC", "AAAA", "////", "____", "SGVsbG8sIHdvcmxkIQ==",
		"SGVsbG8sIHdvcmxkIQ", "SGVsbG8sIHdvcmxkIR==", "8J+UkQ==", "8J-UkQ"} {
		c := vecBase64{Text: s}
		if !strings.ContainsAny(s, "\r\n") {
			if b, err := base64.StdEncoding.Strict().DecodeString(s); err == nil {
				c.Std = strp(hex.EncodeToString(b))
			}
			if b, err := base64.RawURLEncoding.Strict().DecodeString(s); err == nil {
				c.URL = strp(hex.EncodeToString(b))
			}
		}
		v.Base64 = append(v.Base64, c)
	}

	canonical := func(s string) bool {
		if len(s) != conversation.KeyIDLen {
			return false
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
		return err == nil && len(raw) == 32 && base64.RawURLEncoding.EncodeToString(raw) == s
	}
	kid := id.KeyID()
	for _, s := range []string{kid, other.KeyID(), nonCanonical(kid), kid + "=", kid[:42], kid + "A", "+" + kid[1:], "/" + kid[1:],
		strings.Repeat("A", 43), strings.Repeat("_", 43), strings.Repeat("A", 42) + "B", " " + kid[1:], kid[:42] + "\n"} {
		v.KeyIDs = append(v.KeyIDs, vecKeyID{ID: s, Canonical: canonical(s)})
	}

	// A log of envelopes, their payloads in the form JSON.stringify writes
	// (so that the page, signing JSON.parse of the text, signs these bytes).
	conv := "0b8f4a8e-5d2c-4c4e-9a57-6a4f3c1d2e10"
	at := `"created_at":"2026-11-22T13:27:06.123Z"`
	gw := other.KeyID()
	request := `{"conversation":"` + conv + `",` + at + `,"gateway":"` + gw + `","request_id":"7d1f0c52-9d53-4a0e-8f41-2b5c8e7a9d10",` +
		`"service":"httpbin","method":"POST","url":"https://httpbin.org/anything/é?q=1&r=<2>","headers":{"X-Trace":"a b"},` +
		`"body":{"n":[1,2.5,-3,1e+21,true,null],"s":"tab\tnl\nquote\"back\\slash"},"expires_at":"2026-11-22T14:27:06.123Z"}`
	payloads := []struct{ kind, text string }{
		{conversation.KindConversationCreate, `{"conversation":"` + conv + `",` + at + `,"name":"ops ✓","members":[{"key":"` + other.KeyID() + `","name":"bob"}]}`},
		{conversation.KindChatMessage, `{"conversation":"` + conv + `",` + at + `,"text":"héllo wörld 🔑 <b>&amp;</b> ` + "\u2028" + ` line \"q\" \\ é"}`},
		{conversation.KindGateRequest, request},
		{conversation.KindGateApprove, `{"conversation":"` + conv + `",` + at + `,"gateway":"` + gw + `","request_id":"7d1f0c52-9d53-4a0e-8f41-2b5c8e7a9d10","request_digest":"` + conversation.Digest([]byte(request)) + `"}`},
		{conversation.KindSessionOpen, `{` + at + `,"nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"}`},
	}
	var chain conversation.Chain
	for _, p := range payloads {
		env := conversation.Sign(id, p.kind, []byte(p.text))
		pae := conversation.PAE(env.PayloadType, []byte(p.text))
		v.Envelopes = append(v.Envelopes, vecEnvelope{Kind: p.kind, Payload: p.text, PAE: hex.EncodeToString(pae),
			Digest: conversation.Digest([]byte(p.text)), Envelope: env})
		chain = chain.Next(pae)
		v.Chain = append(v.Chain, chain.String())
	}

	chat := v.Envelopes[1].Envelope
	with := func(f func(e *conversation.Envelope)) conversation.Envelope {
		e := chat
		e.Signatures = slices.Clone(chat.Signatures)
		f(&e)
		return e
	}
	zeroKey := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	identityPoint := make([]byte, 32)
	identityPoint[0] = 1
	forged := make([]byte, 64) // R = the identity point, S = 0: "verifies" for the identity key over any message
	forged[0] = 1
	payload, _ := b64.DecodeString(chat.Payload)
	flipped := slices.Clone(payload)
	flipped[len(flipped)-5] ^= 0x01
	bads := []struct {
		name string
		env  conversation.Envelope
	}{
		{"no signature", with(func(e *conversation.Envelope) { e.Signatures = []conversation.Signature{} })},
		{"two signatures", with(func(e *conversation.Envelope) { e.Signatures = append(e.Signatures, e.Signatures[0]) })},
		{"non-canonical key id", with(func(e *conversation.Envelope) { e.Signatures[0].KeyID = nonCanonical(e.Signatures[0].KeyID) })},
		{"the all-zero key", with(func(e *conversation.Envelope) {
			e.Signatures[0] = conversation.Signature{KeyID: zeroKey, Sig: b64.EncodeToString(make([]byte, 64))}
		})},
		{"the identity point as key, forged signature", with(func(e *conversation.Envelope) {
			e.Signatures[0] = conversation.Signature{KeyID: base64.RawURLEncoding.EncodeToString(identityPoint), Sig: b64.EncodeToString(forged)}
		})},
		{"another key", with(func(e *conversation.Envelope) { e.Signatures[0].KeyID = other.KeyID() })},
		{"flipped payload byte", with(func(e *conversation.Envelope) { e.Payload = b64.EncodeToString(flipped) })},
		{"payload without padding", with(func(e *conversation.Envelope) { e.Payload = strings.TrimRight(e.Payload, "=") })},
		{"signature too short", with(func(e *conversation.Envelope) { e.Signatures[0].Sig = b64.EncodeToString(make([]byte, 63)) })},
		{"payloadType not twokey's", with(func(e *conversation.Envelope) { e.PayloadType = "application/json" })},
		{"payload not UTF-8", conversation.Sign(id, conversation.KindChatMessage, []byte(`{"conversation":"`+conv+`",`+at+`,"text":"`+"\xff"+`"}`))},
		{"payload not an object", conversation.Sign(id, conversation.KindChatMessage, []byte(`["conversation","created_at"]`))},
		{"payload not JSON", conversation.Sign(id, conversation.KindChatMessage, []byte(`{"conversation":"`+conv+`",`+at+`,"text":}`))},
	}
	for _, b := range bads {
		_, err := conversation.Verify(b.env)
		if err == nil {
			t.Fatalf("bad envelope %q: conversation.Verify accepts it", b.name)
		}
		v.BadEnvelopes = append(v.BadEnvelopes, vecBad{Name: b.name, Envelope: b.env, GoError: err.Error()})
	}

	rsk, esk := label("recipient"), label("ephemeral")
	rpub, _, err := box.GenerateKey(bytes.NewReader(rsk))
	if err != nil {
		t.Fatal(err)
	}
	epub, epriv, err := box.GenerateKey(bytes.NewReader(esk))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("sk_live_vector_7Q2mX9pL4vR8nK3w")
	sealed, err := box.SealAnonymous(nil, msg, rpub, bytes.NewReader(esk))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := blake2b.New(24, nil)
	h.Write(epub[:])
	h.Write(rpub[:])
	var key [32]byte
	box.Precompute(&key, rpub, epriv)
	v.Box = vecBox{
		RecipientSecret: b64.EncodeToString(rsk), RecipientPublic: base64.RawURLEncoding.EncodeToString(rpub[:]),
		EphemeralSecret: b64.EncodeToString(esk), EphemeralPublic: base64.RawURLEncoding.EncodeToString(epub[:]),
		Message: b64.EncodeToString(msg), Nonce: hex.EncodeToString(h.Sum(nil)), Key: hex.EncodeToString(key[:]),
		Sealed: b64.EncodeToString(sealed),
	}
	return v
}

func encodeVectors(t *testing.T, v vectorFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (make it with: go test ./tests/browser -run TestVectorsMatchGo -update)", err)
	}
	var v vectorFile
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", vectorsPath, err)
	}
	return v
}

// TestVectorsMatchGo holds the committed vectors to Go's crypto: Go makes
// them again, byte for byte, and the envelopes verify in Go (with -update,
// it writes them instead).
func TestVectorsMatchGo(t *testing.T) {
	got := encodeVectors(t, makeVectors(t))
	if *update {
		if err := os.WriteFile(vectorsPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", vectorsPath)
		return
	}
	want, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what Go's crypto makes; if the change is meant, run: go test ./tests/browser -run TestVectorsMatchGo -update", vectorsPath)
	}
	v := loadVectors(t)
	for i, e := range v.Envelopes {
		m, err := conversation.Verify(e.Envelope)
		if err != nil {
			t.Errorf("envelope %d (%s): %v", i, e.Kind, err)
			continue
		}
		if string(m.Payload) != e.Payload || m.Author != v.Identity.KeyID {
			t.Errorf("envelope %d (%s): payload or author differ", i, e.Kind)
		}
	}
}

// pageVectorResult is what the page makes of the vectors.
type pageVectorResult struct {
	KeyID  string `json:"keyId"`
	Base64 []struct {
		Std      *string `json:"std"`
		URL      *string `json:"url"`
		StdAgain *string `json:"stdAgain"`
		URLAgain *string `json:"urlAgain"`
	} `json:"base64"`
	KeyIDs    []bool `json:"keyIds"`
	Envelopes []struct {
		PAE          string          `json:"pae"`
		Digest       string          `json:"digest"`
		Stringified  string          `json:"stringified"`
		Signed       json.RawMessage `json:"signed"`
		SignedDigest string          `json:"signedDigest"`
		Verify       struct {
			OK      bool   `json:"ok"`
			Reason  string `json:"reason"`
			Kind    string `json:"kind"`
			KeyID   string `json:"keyId"`
			Payload string `json:"payloadHex"`
		} `json:"verify"`
	} `json:"envelopes"`
	Chain []string `json:"chain"`
	Bad   []struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
	} `json:"bad"`
	Box struct {
		EphemeralPublic string `json:"ephemeralPublic"`
		Nonce           string `json:"nonce"`
		Sealed          string `json:"sealed"`
	} `json:"box"`
}

const pageVectorsJS = `
const v = args;
const fromHex = (h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
const out = {};
const id = await m.importIdentityFile(v.identity.file);
out.keyId = id.keyId;
out.base64 = v.base64.map((c) => {
	const r = { std: null, url: null, stdAgain: null, urlAgain: null };
	try { const b = m.b64decode(c.text); r.std = m.hex(b); r.stdAgain = m.b64encode(b); } catch {}
	try { const b = m.b64urlDecode(c.text); r.url = m.hex(b); r.urlAgain = m.b64urlEncode(b); } catch {}
	return r;
});
out.keyIds = v.key_ids.map((k) => m.isCanonicalKeyId(k.id));
out.envelopes = [];
for (const e of v.envelopes) {
	const bytes = m.utf8(e.payload);
	const s = await m.signEnvelope(id, e.kind, JSON.parse(e.payload));
	const ver = await m.verifyEnvelope(e.envelope);
	out.envelopes.push({
		pae: m.hex(m.pae(e.envelope.payloadType, bytes)),
		digest: await m.digestOf(bytes),
		stringified: JSON.stringify(JSON.parse(e.payload)),
		signed: s.envelope,
		signedDigest: s.digest,
		verify: { ok: ver.ok, reason: ver.reason, kind: ver.kind, keyId: ver.keyId, payloadHex: ver.payloadBytes ? m.hex(ver.payloadBytes) : '' },
	});
}
out.chain = [];
let prev = null;
for (const e of v.envelopes) { prev = await m.chainStep(prev, e.envelope); out.chain.push(prev); }
out.bad = [];
for (const b of v.bad_envelopes) { const r = await m.verifyEnvelope(b.envelope); out.bad.push({ ok: r.ok, reason: r.reason }); }
const x25519Pkcs8 = fromHex('302e020100300506032b656e04220420');
const esk = m.b64decode(v.box.ephemeral_secret);
const pk8 = new Uint8Array([...x25519Pkcs8, ...esk]);
const once = await crypto.subtle.importKey('pkcs8', pk8, { name: 'X25519' }, true, ['deriveBits']);
const epk = m.b64urlDecode((await crypto.subtle.exportKey('jwk', once)).x);
const ephemeral = {
	privateKey: await crypto.subtle.importKey('pkcs8', pk8, { name: 'X25519' }, false, ['deriveBits']),
	publicKey: await crypto.subtle.importKey('raw', epk, { name: 'X25519' }, true, []),
};
const rpk = m.b64urlDecode(v.box.recipient_public);
out.box = {
	ephemeralPublic: m.b64urlEncode(epk),
	nonce: m.hex(noble.blake2b(new Uint8Array([...epk, ...rpk]), { dkLen: 24 })),
	sealed: await m.sealBoxWith(m.b64decode(v.box.message), v.box.recipient_public, ephemeral),
};
return out;
`

// TestPageReproducesVectors holds web/app/crypto.js to the vectors Go
// made: key id, strict base64 both alphabets, canonical key ids, PAE,
// digests, deterministic Ed25519 signatures, verification and refusals,
// the chain, and the sealed box byte for byte.
func TestPageReproducesVectors(t *testing.T) {
	v := loadVectors(t)
	srv := startServer(t)
	tab := newTab(t, newBrowser(t))
	open(t, tab, srv.URL()+"/")
	got := withCrypto[pageVectorResult](t, tab, v, pageVectorsJS)

	if got.KeyID != v.Identity.KeyID {
		t.Errorf("key id of the seed: page %s, Go %s", got.KeyID, v.Identity.KeyID)
	}
	show := func(p *string) string {
		if p == nil {
			return "refused"
		}
		return *p
	}
	for i, c := range v.Base64 {
		g := got.Base64[i]
		if show(g.Std) != show(c.Std) {
			t.Errorf("b64decode(%q): page %s, Go %s", c.Text, show(g.Std), show(c.Std))
		}
		if show(g.URL) != show(c.URL) {
			t.Errorf("b64urlDecode(%q): page %s, Go %s", c.Text, show(g.URL), show(c.URL))
		}
		if c.Std != nil && show(g.StdAgain) != c.Text {
			t.Errorf("b64encode(b64decode(%q)) = %s", c.Text, show(g.StdAgain))
		}
		if c.URL != nil && show(g.URLAgain) != c.Text {
			t.Errorf("b64urlEncode(b64urlDecode(%q)) = %s", c.Text, show(g.URLAgain))
		}
	}
	for i, k := range v.KeyIDs {
		if got.KeyIDs[i] != k.Canonical {
			t.Errorf("isCanonicalKeyId(%q): page %v, Go %v", k.ID, got.KeyIDs[i], k.Canonical)
		}
	}
	for i, e := range v.Envelopes {
		g := got.Envelopes[i]
		if g.PAE != e.PAE {
			t.Errorf("%s: PAE differs:\npage %s\nGo   %s", e.Kind, g.PAE, e.PAE)
		}
		if g.Digest != e.Digest || g.SignedDigest != e.Digest {
			t.Errorf("%s: digest: page %s (signEnvelope %s), Go %s", e.Kind, g.Digest, g.SignedDigest, e.Digest)
		}
		if g.Stringified != e.Payload {
			t.Errorf("%s: JSON.stringify(JSON.parse(payload)) is not the payload:\n%s", e.Kind, g.Stringified)
		}
		want, _ := json.Marshal(e.Envelope)
		if !bytes.Equal(g.Signed, want) {
			t.Errorf("%s: the page's envelope is not Go's:\npage %s\nGo   %s", e.Kind, g.Signed, want)
		}
		vr := g.Verify
		if !vr.OK || vr.Kind != e.Kind || vr.KeyID != v.Identity.KeyID || vr.Payload != hex.EncodeToString([]byte(e.Payload)) {
			t.Errorf("%s: verifyEnvelope of Go's envelope: %+v", e.Kind, vr)
		}
	}
	if !slices.Equal(got.Chain, v.Chain) {
		t.Errorf("chain:\npage %q\nGo   %q", got.Chain, v.Chain)
	}
	for i, b := range v.BadEnvelopes {
		if g := got.Bad[i]; g.OK || g.Reason == "" {
			t.Errorf("%s: the page accepts what Go refuses (%s): %+v", b.Name, b.GoError, g)
		} else {
			t.Logf("%-44s Go: %s | page: %s", b.Name, b.GoError, g.Reason)
		}
	}
	if got.Box.EphemeralPublic != v.Box.EphemeralPublic {
		t.Errorf("X25519 public key of the ephemeral secret: page %s, Go %s", got.Box.EphemeralPublic, v.Box.EphemeralPublic)
	}
	if got.Box.Nonce != v.Box.Nonce {
		t.Errorf("BLAKE2b-192 nonce: page %s, Go %s", got.Box.Nonce, v.Box.Nonce)
	}
	if got.Box.Sealed != v.Box.Sealed {
		t.Errorf("sealed box:\npage %s\nGo   %s", got.Box.Sealed, v.Box.Sealed)
	}
	noPageErrors(t, tab)
}

// TestPageSignaturesVerifyInGo: what the page signs, with a key WebCrypto
// made and will never export, verifies in Go, and the real server accepts
// it: a conversation.create POSTed by the page, and a chat.message the
// page signed and a Go client posted.
func TestPageSignaturesVerifyInGo(t *testing.T) {
	srv := startServer(t)
	ctx := testutil.Ctx(t)
	goID := testutil.Identity(t, "go")
	gc := testutil.Client(srv.URL(), goID, nil)
	gw, err := gc.Gateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tab := newTab(t, newBrowser(t))
	open(t, tab, srv.URL()+"/")

	const text = "signed in the page: héllo 🔑 <&> \u2028"
	got := withCrypto[struct {
		KeyID       string                `json:"keyId"`
		Extractable bool                  `json:"extractable"`
		Conv        string                `json:"conv"`
		Chat        conversation.Envelope `json:"chat"`
		ChatPayload string                `json:"chatPayload"`
		ChatDigest  string                `json:"chatDigest"`
		Status      int                   `json:"status"`
		Record      json.RawMessage       `json:"record"`
		Verified    struct {
			OK     bool   `json:"ok"`
			Reason string `json:"reason"`
			Chain  string `json:"chain"`
		} `json:"verified"`
	}](t, tab, map[string]string{"text": text, "goKey": goID.KeyID()}, `
		const id = await m.generateIdentity('page');
		const gw = await (await fetch('/v1/gateway')).json();
		const conv = crypto.randomUUID();
		const now = new Date().toISOString();
		const chat = await m.signEnvelope(id, 'chat.message', { conversation: conv, created_at: now, text: args.text });
		const create = await m.signEnvelope(id, 'conversation.create',
			{ conversation: conv, created_at: now, name: 'from the page', members: [{ key: args.goKey, name: 'go' }] });
		const resp = await fetch('/v1/conversations', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(create.envelope) });
		const record = await resp.json();
		const v = await m.verifyRecord(record, null, gw.signing_key);
		return { keyId: id.keyId, extractable: id.privateKey.extractable, conv, chat: chat.envelope,
			chatPayload: m.b64encode(chat.payloadBytes), chatDigest: chat.digest, status: resp.status, record,
			verified: { ok: v.ok, reason: v.reason, chain: v.chain } };
	`)

	if got.Extractable {
		t.Error("generateIdentity made an extractable private key by default")
	}
	m, err := conversation.Verify(got.Chat)
	if err != nil {
		t.Fatalf("Go refuses the page's envelope: %v", err)
	}
	var p conversation.ChatPayload
	if err := m.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if m.Author != got.KeyID || p.Text != text || b64.EncodeToString(m.Payload) != got.ChatPayload || m.PayloadDigest() != got.ChatDigest {
		t.Errorf("Go reads the page's envelope differently: author %s (page %s), text %q, digest %s (page %s)", m.Author, got.KeyID, p.Text, m.PayloadDigest(), got.ChatDigest)
	}
	if got.Status != 201 {
		t.Fatalf("the server answered the page's conversation.create with %d: %s", got.Status, got.Record)
	}
	if !got.Verified.OK {
		t.Errorf("the page refuses the record the server wrote for it: %s", got.Verified.Reason)
	}

	// A Go member reads the log: the page's record, and then the page's
	// chat.message, posted by Go, verify in Go's chain verifier.
	if _, err := gc.PostEnvelope(ctx, got.Conv, got.Chat); err != nil {
		t.Fatalf("the server refuses the page's chat.message: %v", err)
	}
	recs, err := gc.Records(ctx, got.Conv, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	cv := conversation.ChainVerifier{Gateway: gw.SigningKey}
	for _, r := range recs {
		if err := cv.Check(r); err != nil {
			t.Errorf("Go's chain verifier: %v", err)
		}
	}
	if len(recs) != 2 || recs[0].Author != got.KeyID || recs[0].Chain != got.Verified.Chain || recs[1].Kind != conversation.KindChatMessage {
		t.Errorf("the log is not the page's two records: %d records, first by %s with chain %s (page computed %s)",
			len(recs), recs[0].Author, recs[0].Chain, got.Verified.Chain)
	}
	noPageErrors(t, tab)
}

// TestPageSealedBoxOpensInGo: a box the page seals to a Go key opens with
// box.OpenAnonymous, each with a fresh ephemeral key.
func TestPageSealedBoxOpensInGo(t *testing.T) {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t)
	tab := newTab(t, newBrowser(t))
	open(t, tab, srv.URL()+"/")
	msgs := []string{"", "k", "sk_live_browser_7Q2mX9pL4vR8nK3w", strings.Repeat("0123456789abcdef", 257) + "é"}
	args := map[string]any{"key": base64.RawURLEncoding.EncodeToString(pub[:]), "msgs": msgs}
	got := withCrypto[struct {
		Sealed  []string `json:"sealed"`
		Again   string   `json:"again"`
		BadKeys []string `json:"badKeys"`
	}](t, tab, args, `
		const sealed = [];
		for (const s of args.msgs) sealed.push(await m.sealBox(m.utf8(s), args.key));
		const badKeys = [];
		for (const k of [args.key + '=', args.key.slice(1), 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
			try { await m.sealBox(m.utf8('x'), k); badKeys.push(''); } catch (e) { badKeys.push(e.message); }
		}
		return { sealed, again: await m.sealBox(m.utf8(args.msgs[2]), args.key), badKeys };
	`)
	for i, s := range got.Sealed {
		raw, err := b64.Strict().DecodeString(s)
		if err != nil {
			t.Fatalf("sealed box %d is not standard base64: %v", i, err)
		}
		if len(raw) != box.AnonymousOverhead+len(msgs[i]) {
			t.Errorf("sealed box %d is %d bytes; want %d", i, len(raw), box.AnonymousOverhead+len(msgs[i]))
		}
		out, ok := box.OpenAnonymous(nil, raw, pub, priv)
		if !ok {
			t.Errorf("box.OpenAnonymous cannot open the page's box %d", i)
		} else if string(out) != msgs[i] {
			t.Errorf("box %d opens to %q; want %q", i, out, msgs[i])
		}
	}
	if got.Again == got.Sealed[2] {
		t.Error("two boxes of one message are equal: the ephemeral key is not fresh")
	}
	for i, e := range got.BadKeys {
		if e == "" {
			t.Errorf("sealBox accepts bad box key %d", i)
		}
	}
	noPageErrors(t, tab)
}

// logCase is a record for the page to verify after prev.
type logCase struct {
	Name    string              `json:"name"`
	Rec     conversation.Record `json:"rec"`
	Prev    *prevRec            `json:"prev"`
	Gateway string              `json:"gateway"`
	Want    string              `json:"-"` // in the page's reason
}

type prevRec struct {
	Seq   uint64 `json:"seq"`
	Chain string `json:"chain"`
}

// TestPageVerifiesRealLog: a log made by Go clients and the page against a
// real server (a gate enabled, a secret the page sealed to the gateway, a
// request approved and executed) is read by the page over HTTP with its
// own bearer token and verifies record by record, gateway-signed records
// included; the upstream got the page's secret, so the gateway opened the
// page's box. Tampered copies are refused, each with its reason, by the
// page and by Go's chain verifier alike.
func TestPageVerifiesRealLog(t *testing.T) {
	srv := startServer(t)
	ctx := testutil.Ctx(t)
	tab := newTab(t, newBrowser(t))
	open(t, tab, srv.URL()+"/")
	page := withCrypto[string](t, tab, nil, `
		globalThis.me = await m.generateIdentity('browser');
		return me.keyId;
	`)

	ids, cs, members := testutil.Signers(t, srv.URL(), 2, nil)
	rec, err := cs[0].CreateConversation(ctx, "ops", append(members, conversation.Member{Key: page, Name: "browser"}))
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	if err := json.Unmarshal(rec.Body, &cp); err != nil {
		t.Fatal(err)
	}
	conv := cp.Conversation
	if _, err := cs[0].Say(ctx, conv, "hello from Go <&> é"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs[0].EnableGate(ctx, conv, 2, nil); err != nil {
		t.Fatal(err)
	}
	gw, err := cs[0].Gateway(ctx)
	if err != nil {
		t.Fatal(err)
	}

	const secret = "sk_live_sealed_in_the_page_4vR8nK3w"
	stored := withCrypto[struct {
		Status int             `json:"status"`
		Record json.RawMessage `json:"record"`
	}](t, tab, map[string]string{"conv": conv, "secret": secret}, `
		const gw = await (await fetch('/v1/gateway')).json();
		const s = await m.signEnvelope(me, 'gate.secret', {
			conversation: args.conv, created_at: new Date().toISOString(), gateway: gw.signing_key,
			secret_id: crypto.randomUUID(), service: 'httpbin', sealed: await m.sealBox(m.utf8(args.secret), gw.box_key) });
		const resp = await fetch('/v1/conversations/' + args.conv + '/messages',
			{ method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(s.envelope) });
		return { status: resp.status, record: await resp.json() };
	`)
	if stored.Status != 201 || !strings.Contains(string(stored.Record), conversation.KindGateSecretStored) {
		t.Fatalf("the server refused the page's gate.secret: %d %s", stored.Status, stored.Record)
	}

	up := srv.Upstream
	sub, err := cs[0].Submit(ctx, conv, gate.RequestPayload{Service: "httpbin", Method: "GET", URL: up.URL + "/httpbin/headers",
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	var rp gate.RequestPayload
	if err := json.Unmarshal(sub.Body, &rp); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cs[1].Vote(ctx, conv, rp.RequestID, true, ""); err != nil {
		t.Fatal(err)
	}
	if st, err := cs[0].WaitRequest(ctx, conv, rp.RequestID); err != nil || st.State != gate.StateExecuted {
		t.Fatalf("request: %v %+v", err, st)
	}
	sent := false
	for _, r := range up.Requests() {
		if r.Path == "/httpbin/headers" {
			sent = r.Header.Get("Authorization") == "Bearer "+secret
		}
	}
	if !sent {
		t.Error("the upstream did not get the secret the page sealed: the gateway did not open the page's box")
	}

	// The page reads the log with its own session and verifies it.
	type verified struct {
		Seq    uint64 `json:"seq"`
		Kind   string `json:"kind"`
		Author string `json:"author"`
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
		Chain  string `json:"chain"`
		Body   string `json:"body"`
	}
	read := withCrypto[struct {
		Session int        `json:"session"`
		Status  int        `json:"status"`
		Records []verified `json:"records"`
	}](t, tab, map[string]string{"conv": conv}, `
		const gw = await (await fetch('/v1/gateway')).json();
		const open = await m.signEnvelope(me, 'session.open', { created_at: new Date().toISOString(), nonce: m.randomNonce() });
		const sresp = await fetch('/v1/sessions', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(open.envelope) });
		const { token } = await sresp.json();
		const resp = await fetch('/v1/conversations/' + args.conv + '/messages?after=0&limit=1000', { headers: { Authorization: 'Bearer ' + token } });
		const page = await resp.json();
		const out = [];
		let prev = null;
		for (const rec of page.records) {
			const v = await m.verifyRecord(rec, prev, gw.signing_key);
			out.push({ seq: rec.seq, kind: v.kind || rec.kind, author: v.author || '', ok: v.ok, reason: v.reason, chain: v.chain || '',
				body: v.ok && v.kind === 'gate.response' ? String(v.payload.body) : '' });
			if (!v.ok) break;
			prev = { seq: v.seq, chain: v.chain };
		}
		return { session: sresp.status, status: resp.status, records: out };
	`)
	if read.Session != 201 || read.Status != 200 {
		t.Fatalf("the page's session: %d, its read of the log: %d", read.Session, read.Status)
	}
	goRecs, err := cs[0].Records(ctx, conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(read.Records) != len(goRecs) {
		t.Fatalf("the page verified %d records; the log has %d", len(read.Records), len(goRecs))
	}
	var kinds []string
	for i, r := range read.Records {
		kinds = append(kinds, r.Kind)
		if !r.OK {
			t.Errorf("record %d (%s): the page refuses it: %s", r.Seq, r.Kind, r.Reason)
			continue
		}
		if r.Chain != goRecs[i].Chain {
			t.Errorf("record %d: the page's chain %s, the log's %s", r.Seq, r.Chain, goRecs[i].Chain)
		}
		if conversation.GatewayKind(r.Kind) != (r.Author == gw.SigningKey) {
			t.Errorf("record %d (%s) by %s: the gateway is %s", r.Seq, r.Kind, r.Author, gw.SigningKey)
		}
		if r.Kind == conversation.KindGateResponse && (!strings.Contains(r.Body, "[redacted]") || strings.Contains(r.Body, secret)) {
			t.Errorf("gate.response as the page decoded it does not redact the secret: %s", r.Body)
		}
	}
	for _, k := range []string{conversation.KindConversationCreate, conversation.KindChatMessage, conversation.KindGateEnable,
		conversation.KindGateEnabled, conversation.KindGateSecretStored, conversation.KindGateRequest, conversation.KindGateApprove,
		conversation.KindGateExecuted, conversation.KindGateResponse} {
		if !slices.Contains(kinds, k) {
			t.Errorf("the log has no %s: %v", k, kinds)
		}
	}

	// Tampered copies of that log.
	find := func(kind string) int {
		for i, r := range goRecs {
			if r.Kind == kind {
				return i
			}
		}
		t.Fatalf("no %s in the log", kind)
		return 0
	}
	prevOf := func(i int) *prevRec {
		if i == 0 {
			return nil
		}
		return &prevRec{Seq: goRecs[i-1].Seq, Chain: goRecs[i-1].Chain}
	}
	chat := find(conversation.KindChatMessage)
	enable := find(conversation.KindGateEnable)
	last := len(goRecs) - 1
	edit := func(i int, f func(r *conversation.Record)) conversation.Record {
		r := goRecs[i]
		r.Envelope.Signatures = slices.Clone(r.Envelope.Signatures)
		r.Body = slices.Clone(r.Body)
		f(&r)
		return r
	}
	payload, _ := b64.DecodeString(goRecs[chat].Envelope.Payload)
	flipped := slices.Clone(payload)
	flipped[len(flipped)-3] ^= 0x01
	otherBody, _ := json.Marshal(conversation.ChatPayload{Header: conversation.Header{Conversation: conv, CreatedAt: conversation.FormatTime(time.Now())}, Text: "not what was signed"})

	// A gate.executed written by a signer, chained correctly after the last
	// record: only who signed it is wrong.
	forged, err := conversation.SignJSON(ids[1], conversation.KindGateExecuted, gate.ExecutedPayload{
		Header:    conversation.Header{Conversation: conv, CreatedAt: conversation.FormatTime(time.Now())},
		RequestID: rp.RequestID, Status: 200, DurationMS: 1, Approvers: []string{ids[0].KeyID(), ids[1].KeyID()}})
	if err != nil {
		t.Fatal(err)
	}
	fm, err := conversation.Verify(forged)
	if err != nil {
		t.Fatal(err)
	}
	lastChain, err := conversation.ParseChain(goRecs[last].Chain)
	if err != nil {
		t.Fatal(err)
	}
	forgedRec := conversation.NewRecord(goRecs[last].Seq+1, conversation.FormatTime(time.Now()), fm, lastChain)

	cases := []logCase{
		{Name: "flipped payload byte", Rec: edit(chat, func(r *conversation.Record) { r.Envelope.Payload = b64.EncodeToString(flipped) }),
			Prev: prevOf(chat), Want: "signature does not verify"},
		{Name: "changed chain value", Rec: edit(chat, func(r *conversation.Record) { r.Chain = conversation.Digest([]byte("another log")) }),
			Prev: prevOf(chat), Want: "chain does not match the previous record"},
		{Name: "changed previous chain", Rec: goRecs[chat], Prev: &prevRec{Seq: goRecs[chat-1].Seq, Chain: conversation.Digest([]byte("x"))},
			Want: "chain does not match the previous record"},
		{Name: "gateway kind signed by a signer", Rec: forgedRec, Prev: prevOf(last + 1), Want: "gateway's to write but is signed by another key"},
		{Name: "member kind signed by the gateway", Rec: goRecs[chat], Prev: prevOf(chat), Gateway: ids[0].KeyID(),
			Want: "signed by the gateway, which writes only gateway kinds"},
		{Name: "non-canonical key id", Rec: edit(chat, func(r *conversation.Record) {
			r.Envelope.Signatures[0].KeyID = nonCanonical(r.Envelope.Signatures[0].KeyID)
			r.Author = r.Envelope.Signatures[0].KeyID
		}), Prev: prevOf(chat), Want: "key id is not in canonical form"},
		{Name: "body is not the payload", Rec: edit(chat, func(r *conversation.Record) { r.Body = otherBody }), Prev: prevOf(chat),
			Want: "body does not match its envelope's signed payload"},
		{Name: "gap in seq", Rec: goRecs[enable], Prev: prevOf(enable - 1), Want: "a record is missing or out of order"},
		{Name: "kind is not the envelope's", Rec: edit(enable, func(r *conversation.Record) { r.Kind = conversation.KindChatMessage }),
			Prev: prevOf(enable), Want: "kind does not match its envelope's"},
		{Name: "author is not the signer", Rec: edit(chat, func(r *conversation.Record) { r.Author = ids[1].KeyID() }), Prev: prevOf(chat),
			Want: "author is not its envelope's signer"},
	}
	for i := range cases {
		if cases[i].Gateway == "" {
			cases[i].Gateway = gw.SigningKey
		}
	}
	res := withCrypto[[]struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
	}](t, tab, cases, `
		const out = [];
		for (const c of args) { const v = await m.verifyRecord(c.rec, c.prev, c.gateway); out.push({ ok: v.ok, reason: v.reason }); }
		return out;
	`)
	for i, c := range cases {
		if res[i].OK {
			t.Errorf("%s: the page accepts the tampered record", c.Name)
		} else if !strings.Contains(res[i].Reason, c.Want) {
			t.Errorf("%s: the page's reason %q does not say %q", c.Name, res[i].Reason, c.Want)
		}
		cv := conversation.ChainVerifier{Gateway: c.Gateway}
		if c.Prev != nil {
			cv.Seq = c.Prev.Seq
			if cv.Chain, err = conversation.ParseChain(c.Prev.Chain); err != nil {
				t.Fatal(err)
			}
		}
		if err := cv.Check(c.Rec); err == nil {
			t.Errorf("%s: Go's chain verifier accepts the tampered record", c.Name)
		}
		t.Logf("%-34s page: %s", c.Name, res[i].Reason)
	}
	noPageErrors(t, tab)
}

// TestIdentityFileImportExport: a `twokey id` file made by Go imports in
// the page as a non-extractable identity with the same key id, whose
// signatures are Go's own (Ed25519 is deterministic); the page refuses to
// export it and refuses broken files by name; an identity made
// extractable exports to a file Go loads.
func TestIdentityFileImportExport(t *testing.T) {
	dir := t.TempDir()
	id := testutil.Identity(t, "alice")
	path := filepath.Join(dir, "alice.json")
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(file, &f); err != nil {
		t.Fatal(err)
	}
	broken := func(k string, v any) string {
		g := map[string]any{}
		for kk, vv := range f {
			g[kk] = vv
		}
		if v == nil {
			delete(g, k)
		} else {
			g[k] = v
		}
		b, _ := json.Marshal(g)
		return string(b)
	}
	other := testutil.Identity(t, "mallory")
	bad := []struct {
		Text string `json:"text"`
		Want string `json:"-"`
	}{
		{"not json", "not JSON"},
		{"[1]", "not a JSON object"},
		{broken("version", 2.0), "version 2 is not supported"},
		{broken("seed", nil), "has no seed"},
		{broken("seed", "not base64!"), "seed that is not standard base64"},
		{broken("seed", b64.EncodeToString(make([]byte, 31))), "seed of 31 bytes"},
		{broken("key_id", other.KeyID()), "key_id does not match its seed"},
		{broken("key_id", "short"), "key_id that is not a key id"},
	}

	srv := startServer(t)
	tab := newTab(t, newBrowser(t))
	open(t, tab, srv.URL()+"/")
	payload := `{"conversation":"8a6b1f0e-1d8e-4c1b-9a3f-2e7d5c4b3a21","created_at":"2026-11-22T13:27:06.123Z","text":"from a Go identity file"}`
	args := map[string]any{"file": string(file), "payload": payload, "bad": bad}
	got := withCrypto[struct {
		KeyID              string                `json:"keyId"`
		Name               string                `json:"name"`
		Extractable        bool                  `json:"extractable"`
		PrivateExtractable bool                  `json:"privateExtractable"`
		Env                conversation.Envelope `json:"env"`
		ExportErr          string                `json:"exportErr"`
		FreshExportErr     string                `json:"freshExportErr"`
		BadErrs            []string              `json:"badErrs"`
		Exported           string                `json:"exported"`
		ExportedKeyID      string                `json:"exportedKeyId"`
		ExportedEnv        conversation.Envelope `json:"exportedEnv"`
		Reimported         string                `json:"reimported"`
	}](t, tab, args, `
		const id = await m.importIdentityFile(args.file);
		const s = await m.signEnvelope(id, 'chat.message', JSON.parse(args.payload));
		const err = async (f) => { try { await f(); return ''; } catch (e) { return e.message || String(e); } };
		const fresh = await m.generateIdentity('bob');
		const badErrs = [];
		for (const b of args.bad) badErrs.push(await err(() => m.importIdentityFile(b.text)));
		const carol = await m.generateIdentity('carol', { extractable: true });
		const exported = await m.exportIdentityFile(carol);
		const es = await m.signEnvelope(carol, 'chat.message', JSON.parse(args.payload));
		return { keyId: id.keyId, name: id.name, extractable: id.extractable, privateExtractable: id.privateKey.extractable,
			env: s.envelope, exportErr: await err(() => m.exportIdentityFile(id)), freshExportErr: await err(() => m.exportIdentityFile(fresh)),
			badErrs, exported, exportedKeyId: carol.keyId, exportedEnv: es.envelope,
			reimported: (await m.importIdentityFile(exported)).keyId };
	`)

	if got.KeyID != id.KeyID() || got.Name != "alice" {
		t.Errorf("imported identity: key id %s name %q; Go's is %s %q", got.KeyID, got.Name, id.KeyID(), id.Name)
	}
	if got.Extractable || got.PrivateExtractable {
		t.Errorf("an imported identity is extractable (identity %v, privateKey %v)", got.Extractable, got.PrivateExtractable)
	}
	m, err := conversation.Verify(got.Env)
	if err != nil || m.Author != id.KeyID() {
		t.Fatalf("Go refuses what the imported identity signed: %v", err)
	}
	if want := conversation.Sign(id, conversation.KindChatMessage, []byte(payload)); got.Env.Signatures[0].Sig != want.Signatures[0].Sig {
		t.Error("the imported key signs differently from Go's key of the same seed")
	}
	for _, e := range []string{got.ExportErr, got.FreshExportErr} {
		if !strings.Contains(e, "non-extractable") {
			t.Errorf("exportIdentityFile of a non-extractable identity: %q; want a refusal saying non-extractable", e)
		}
	}
	for i, b := range bad {
		if !strings.Contains(got.BadErrs[i], b.Want) {
			t.Errorf("importIdentityFile(%.40q): %q; want it to say %q", b.Text, got.BadErrs[i], b.Want)
		}
	}
	// The exported file loads in Go, as the same key.
	out := filepath.Join(dir, "carol.json")
	if err := os.WriteFile(out, []byte(got.Exported), 0o600); err != nil {
		t.Fatal(err)
	}
	carol, err := conversation.LoadIdentity(out)
	if err != nil {
		t.Fatalf("Go cannot load the page's identity file: %v\n%s", err, got.Exported)
	}
	if carol.KeyID() != got.ExportedKeyID || carol.Name != "carol" || got.Reimported != got.ExportedKeyID {
		t.Errorf("exported identity: Go loads %s %q, page made %s, page re-imports %s", carol.KeyID(), carol.Name, got.ExportedKeyID, got.Reimported)
	}
	if want := conversation.Sign(carol, conversation.KindChatMessage, []byte(payload)); got.ExportedEnv.Signatures[0].Sig != want.Signatures[0].Sig {
		t.Error("the exported seed is not the key the page signs with")
	}
	noPageErrors(t, tab)
}

// TestIdentityStore: identities saved in IndexedDB survive a reload as
// CryptoKeys that still sign (a non-extractable one stays so), the active
// one is remembered, another browser context sees none of them, and
// deleting the active one leaves none active.
func TestIdentityStore(t *testing.T) {
	id := testutil.Identity(t, "dana")
	path := filepath.Join(t.TempDir(), "dana.json")
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t)
	browser := newBrowser(t)
	tab := newTab(t, browser)
	open(t, tab, srv.URL()+"/")
	saved := withCrypto[[]string](t, tab, map[string]string{"file": string(file)}, `
		const a = await ids.saveIdentity(await m.importIdentityFile(args.file));
		const b = await ids.saveIdentity(await m.generateIdentity('erin'));
		await ids.setActive(a.keyId);
		return [a.keyId, b.keyId];
	`)
	if saved[0] != id.KeyID() {
		t.Fatalf("saved %s; the file's key is %s", saved[0], id.KeyID())
	}

	open(t, tab, srv.URL()+"/") // a reload: only IndexedDB remains
	payload := `{"conversation":"8a6b1f0e-1d8e-4c1b-9a3f-2e7d5c4b3a21","created_at":"2026-11-22T13:27:06.123Z","text":"after a reload"}`
	after := withCrypto[struct {
		List        []string              `json:"list"`
		Active      string                `json:"active"`
		IsKey       bool                  `json:"isKey"`
		Extractable bool                  `json:"extractable"`
		Env         conversation.Envelope `json:"env"`
	}](t, tab, map[string]string{"payload": payload}, `
		const list = await ids.listIdentities();
		const a = await ids.getActive();
		const s = await m.signEnvelope(a, 'chat.message', JSON.parse(args.payload));
		return { list: list.map((i) => i.keyId), active: a.keyId, isKey: a.privateKey instanceof CryptoKey,
			extractable: a.privateKey.extractable, env: s.envelope };
	`)
	if !slices.Equal(after.List, saved) || after.Active != id.KeyID() || !after.IsKey || after.Extractable {
		t.Errorf("after a reload: %+v; saved %v", after, saved)
	}
	if want := conversation.Sign(id, conversation.KindChatMessage, []byte(payload)); after.Env.Signatures[0].Sig != want.Signatures[0].Sig {
		t.Error("the stored key does not sign as the identity file's key")
	}

	other := newTab(t, browser)
	open(t, other, srv.URL()+"/")
	if n := withCrypto[int](t, other, nil, `return (await ids.listIdentities()).length;`); n != 0 {
		t.Errorf("another browser context sees %d identities", n)
	}
	if p := screenshot(t, other, "empty-profile"); p == "" {
		t.Error("no screenshot")
	} else if png, err := os.ReadFile(p); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot %s is not a PNG (%v)", p, err)
	}

	gone := withCrypto[struct {
		List      []string `json:"list"`
		Active    *string  `json:"active"`
		SetErr    string   `json:"setErr"`
		SetActive string   `json:"setActive"`
	}](t, tab, map[string]string{"a": saved[0], "b": saved[1]}, `
		await ids.deleteIdentity(args.a);
		const list = (await ids.listIdentities()).map((i) => i.keyId);
		const a = await ids.getActive();
		let setErr = '';
		try { await ids.setActive(args.a); } catch (e) { setErr = e.message; }
		await ids.setActive(args.b);
		return { list, active: a ? a.keyId : null, setErr, setActive: (await ids.getActive()).keyId };
	`)
	if !slices.Equal(gone.List, saved[1:]) || gone.Active != nil || !strings.Contains(gone.SetErr, "no identity") || gone.SetActive != saved[1] {
		t.Errorf("after deleting the active identity: %+v", gone)
	}
	noPageErrors(t, tab)
	noPageErrors(t, other)
}
