package conversation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/twokey/twokey"
)

// The fast paths of Open (quickEnvelope, decodeSigned, keyCache,
// quickCheck) answer exactly as the code before them did (legacy_test.go):
// the same messages, and the same errors, byte for byte.

// sameError reports how two errors differ, or "".
func sameError(got, want error) string {
	switch {
	case got == nil && want == nil:
		return ""
	case got == nil || want == nil:
		return fmt.Sprintf("error %v, legacy %v", got, want)
	case got.Error() != want.Error() || twokey.ErrorCode(got) != twokey.ErrorCode(want) ||
		twokey.ErrorMessage(got) != twokey.ErrorMessage(want):
		return fmt.Sprintf("error %q (%s), legacy %q (%s)", got, twokey.ErrorCode(got), want, twokey.ErrorCode(want))
	}
	return ""
}

// sameMessage reports how m differs from the legacy message l, or "".
func sameMessage(m, l *Message) string {
	switch {
	case !reflect.DeepEqual(m.Envelope, l.Envelope):
		return fmt.Sprintf("envelope %+v, legacy %+v", m.Envelope, l.Envelope)
	case m.Kind != l.Kind || m.Author != l.Author || !bytes.Equal(m.AuthorKey, l.AuthorKey):
		return fmt.Sprintf("kind/author %s %s %x, legacy %s %s %x", m.Kind, m.Author, m.AuthorKey, l.Kind, l.Author, l.AuthorKey)
	case !bytes.Equal(m.Payload, l.Payload) || m.Header != l.Header || !m.CreatedAt.Equal(l.CreatedAt) ||
		m.CreatedAt.Location() != l.CreatedAt.Location():
		return fmt.Sprintf("payload %q %+v %v, legacy %q %+v %v", m.Payload, m.Header, m.CreatedAt, l.Payload, l.Header, l.CreatedAt)
	case !bytes.Equal(m.SignedBytes(), legacyPAE(l.Envelope.PayloadType, l.Payload)):
		return fmt.Sprintf("signed bytes %q", m.SignedBytes())
	case m.PayloadDigest() != legacyDigest(l.Payload):
		return "digest " + m.PayloadDigest()
	}
	var prev Chain
	prev[3] = 7
	if r, lr := NewRecord(2, "t", m, prev), legacyNewRecord(2, "t", l, prev); !reflect.DeepEqual(r, lr) {
		return fmt.Sprintf("record %+v, legacy %+v", r, lr)
	}
	return ""
}

func compareOpen(t *testing.T, data []byte) {
	t.Helper()
	// Twice: the second time the signer's key is in the cache.
	for range 2 {
		m, err := Open(data)
		l, lerr := legacyOpen(data)
		if d := sameError(err, lerr); d != "" {
			t.Fatalf("Open(%q): %s", data, d)
		}
		if err == nil {
			if d := sameMessage(m, l); d != "" {
				t.Fatalf("Open(%q): %s", data, d)
			}
		}
		env, perr := ParseEnvelope(data)
		lenv, lperr := legacyParseEnvelope(data)
		if d := sameError(perr, lperr); d != "" {
			t.Fatalf("ParseEnvelope(%q): %s", data, d)
		}
		if !reflect.DeepEqual(env, lenv) {
			t.Fatalf("ParseEnvelope(%q) = %+v, legacy %+v", data, env, lenv)
		}
	}
}

func compareCheckJSON(t *testing.T, data []byte) {
	t.Helper()
	h, done, err := checkPayload(data)
	if d := sameError(err, legacyCheckJSON(data)); d != "" {
		t.Fatalf("checkPayload(%q): %s", data, d)
	}
	if d := sameError(CheckJSON(data), legacyCheckJSON(data)); d != "" {
		t.Fatalf("CheckJSON(%q): %s", data, d)
	}
	if err != nil {
		return
	}
	var want Header
	uerr := json.Unmarshal(data, &want)
	switch {
	case done && (uerr != nil || h != want):
		t.Fatalf("checkPayload(%q) read the header %+v; json.Unmarshal %+v (%v)", data, h, want, uerr)
	case !done && h != (Header{}):
		t.Fatalf("checkPayload(%q) left a header %+v it did not finish", data, h)
	}
}

// envelopeVariants are envelopes in and around quickEnvelope's form.
func envelopeVariants(t testing.TB) [][]byte {
	good := Sign(alice, KindChatMessage, chatPayload("hello!"))
	pt, pl, k, sg := good.PayloadType, good.Payload, good.Signatures[0].KeyID, good.Signatures[0].Sig
	sig := `{"keyid":"` + k + `","sig":"` + sg + `"}`
	out := [][]byte{}
	for _, s := range []string{
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]}`,
		` { "signatures" : [ ` + sig + ` ] , "payload":"` + pl + `" ,"payloadType":"` + pt + "\"}\n",
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]}` + strings.Repeat(" ", 600),
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + "," + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[{}]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[{"sig":"` + sg + `"}]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":null}`,
		`{"payloadType":null,"payload":"` + pl + `","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `"}`,
		`{"PayloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","PAYLOAD":"` + pl + `","signatures":[{"KeyID":"` + k + `","Sig":"` + sg + `"}]}`,
		`{"payloadType":"x","payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[{"keyid":"x","keyid":"` + k + `","sig":"` + sg + `"}]}`,
		`{"payloadType":"` + strings.Replace(pt, "a", `\u0061`, 1) + `","payload":"` + pl + `","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `],"extra":1}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[{"keyid":"` + k + `","sig":"` + sg + `","x":[]}]}`,
		`{"payloadType":"` + pt + "\xff" + `","payload":"` + pl + `","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `é","payload":"` + pl + `","signatures":[` + sig + `]}`,
		`{"payloadType":1,"payload":"` + pl + `","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[1]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]}{}`,
		`[{"payloadType":"` + pt + `"}]`,
		`{"payloadType":"` + pt + `","payload":"` + pl[:len(pl)-4] + `","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `=","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `====","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"====","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"A===","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"AA=A","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"AAA=AAAA","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[{"keyid":"` + k + `","sig":"` + sg + sg + `"}]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[{"keyid":"` + k + `","sig":"` + sg[:84] + `"}]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `],}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `,]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[{"keyid":"` + k + `","sig":"` + sg + `",}]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + ``,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `] x`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]}}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]} ,`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `" "signatures":[` + sig + `]}`,
		`{"payloadType" "` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + "\t" + `","payload":"` + pl + `","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + "\x7f" + `","payload":"` + pl + `","signatures":[` + sig + `]}`,
		"\ufeff" + `{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]}`,
		"\v" + `{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]}`,
		`{"payloadType":"` + pt + `","payload":"` + pl + `","signatures":[` + sig + `]}` + "\x00",
	} {
		out = append(out, []byte(s))
	}
	return out
}

// payloadVariants are payloads in and around quickCheck's form.
func payloadVariants() []string {
	h := `"conversation":"` + testConv + `","created_at":"` + testCreated + `"`
	many := func(n int, dup bool) string {
		var b strings.Builder
		b.WriteString("{" + h)
		for i := range n {
			fmt.Fprintf(&b, `,"k%d":%d`, i, i)
		}
		if dup {
			b.WriteString(`,"K3":0`)
		}
		return b.String() + "}"
	}
	return []string{
		`{` + h + `}`,
		`{` + h + `,"gateway":"gw"}`,
		`{` + h + `,"gateway":null}`,
		`{"conversation":null,"created_at":"` + testCreated + `"}`,
		`{"conversation":7,"created_at":"` + testCreated + `"}`,
		`{"conversation":{"a":1},"created_at":"` + testCreated + `"}`,
		`{"conversation":["x"],"created_at":"` + testCreated + `"}`,
		`{"conversation":true,"created_at":"` + testCreated + `"}`,
		`{"conversation":"a\"b","created_at":"` + testCreated + `"}`,
		`{"conversation":"\u00e9","created_at":"\ud800"}`,
		`{"conversation":"é","created_at":"` + testCreated + `"}`,
		`{"created\u005fat":"` + testCreated + `","conversation":"c"}`,
		`{"a":{"conversation":5}, ` + h + `}`,
		`{"body":{"conversation":1,"URL":2},"headers":{"Url":"x"},"params":{"KEY":"k"}}`,
		`{"members":[{"key":"x","name":"y"},{"KEY":"x"}]}`,
		`{"body":[{"x":1,"X":2}]}`,
		`{"ſervice":1}`, `{"ſx":1,"SX":2}`, `{"\u212ax":1,"kx":2}`, `{"ǅ":1,"ǆ":2}`, `{"ǅ":1,"Ǆ":2}`,
		`{"Ω":1,"ω":2}`, `{"Ω":1,"ω":2}`, `{"İ":1,"i":2}`, `{"ı":1,"I":2}`,
		`{"` + strings.Repeat("a", 70) + `":1,"` + strings.Repeat("A", 70) + `":2}`,
		`{"` + strings.Repeat("x", 65) + `":1}`, `{"SERVICE` + strings.Repeat(" ", 60) + `":1}`,
		many(15, false), many(16, false), many(40, false), many(15, true), many(40, true),
		`{"a":` + strings.Repeat(`{"a":`, twokey.MaxJSONDepth-1) + "1" + strings.Repeat("}", twokey.MaxJSONDepth) + `}`,
		`{"a":` + strings.Repeat(`[`, twokey.MaxJSONDepth-1) + strings.Repeat("]", twokey.MaxJSONDepth-1) + `}`,
		`{"a":` + strings.Repeat(`[`, twokey.MaxJSONDepth) + strings.Repeat("]", twokey.MaxJSONDepth) + `}`,
		`{"a":[{"b":[{"c":{}}]}],"n":-0.5e+7,"t":true,"f":false,"z":null,"s":"\\\"\/\b\f\n\r\t\u0000"}`,
		" \t\r\n{ \"a\" :\n[ 1 , 2 ] , \"b\" : { } } \n",
		`{}`, `{ }`, `{"a":1}x`, `{"a":1,}`, `{"a" 1}`, `[]`, ``, `"x"`, `{"a":"` + "\x01" + `"}`,
	}
}

func TestOpenMatchesLegacy(t *testing.T) {
	for _, tc := range openCases(t) {
		t.Run(tc.name, func(t *testing.T) { compareOpen(t, tc.data()) })
	}
	for _, data := range envelopeVariants(t) {
		compareOpen(t, data)
	}
	for _, p := range payloadVariants() {
		compareOpen(t, mustJSON(t, Sign(alice, KindChatMessage, []byte(p))))
	}
}

func TestCheckJSONMatchesLegacy(t *testing.T) {
	for _, tc := range checkJSONCases() {
		t.Run(tc.name, func(t *testing.T) { compareCheckJSON(t, []byte(tc.in)) })
	}
	for _, p := range payloadVariants() {
		compareCheckJSON(t, []byte(p))
	}
}

// TestQuickPathsTaken: the fast paths serve the envelopes and payloads
// clients write (else the benchmarks measure the fallback).
func TestQuickPathsTaken(t *testing.T) {
	for _, p := range []string{
		`{"conversation":"` + testConv + `","created_at":"` + testCreated + `","gateway":"gw","request_id":"r","request_digest":"sha256:00"}`,
		`{"a":{"b":[1,{"c":"d"}]},"body":{"URL":1}}`,
	} {
		if q := (quickCheck{data: []byte(p), hdr: new(Header), hdrOK: true}); !json.Valid(q.data) || !q.top() || !q.hdrOK {
			t.Errorf("quickCheck does not take %s", p)
		}
	}
	if _, ok := quickEnvelope(mustJSON(t, Sign(alice, KindGateApprove, chatPayload("x")))); !ok {
		t.Error("quickEnvelope does not take a signed envelope")
	}
}

func FuzzOpenMatchesLegacy(f *testing.F) {
	for _, tc := range openCases(f) {
		f.Add(tc.data())
	}
	for _, data := range envelopeVariants(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { compareOpen(t, data) })
}

func FuzzCheckJSONMatchesLegacy(f *testing.F) {
	for _, tc := range checkJSONCases() {
		f.Add([]byte(tc.in))
	}
	for _, p := range payloadVariants() {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareCheckJSON(t, data)
		// Signed properly, so that the payload checks are reached.
		compareOpen(t, mustJSON(t, Sign(alice, KindGateApprove, data)))
	})
}

func TestParseChainMatchesLegacy(t *testing.T) {
	c := Chain{1, 2, 0xab}
	s := c.String()
	if s != legacyChainString(c) {
		t.Fatalf("String %s, legacy %s", s, legacyChainString(c))
	}
	for _, in := range []string{s, strings.ToUpper(s), "sha256:" + strings.ToUpper(s[7:]), s[:len(s)-1], s + "0", s[7:], "sha256:",
		"sha256:" + strings.Repeat("g", 64), "sha256:" + strings.Repeat("0", 63) + " ", "SHA256:" + s[7:], ""} {
		got, err := ParseChain(in)
		want, lerr := legacyParseChain(in)
		if d := sameError(err, lerr); d != "" || got != want {
			t.Errorf("ParseChain(%q) = %v %v, legacy %v %v", in, got, err, want, lerr)
		}
	}
	if n, l := c.Next([]byte("x")), legacyNext(c, []byte("x")); n != l {
		t.Fatalf("Next %v, legacy %v", n, l)
	}
}

// TestKeyCacheBounded: however many keys verify, the cache holds at most
// its size, forgetting the oldest first.
func TestKeyCacheBounded(t *testing.T) {
	c := newKeyCache(4)
	var k [32]byte
	for i := range 10 {
		k[0] = byte(i)
		c.add(fmt.Sprint(i), &k)
		c.add(fmt.Sprint(i), &k) // again: no second entry
		if c.len() > 4 {
			t.Fatalf("%d entries after %d keys", c.len(), i+1)
		}
	}
	for i := range 10 {
		got, ok := c.get(fmt.Sprint(i))
		if ok != (i >= 6) || (ok && got[0] != byte(i)) {
			t.Errorf("key %d: %v %v", i, got, ok)
		}
	}
	k[0] = 99 // the cache kept its own copy
	if got, _ := c.get("9"); got[0] != 9 {
		t.Fatal("the cache shares its caller's array")
	}
	// Concurrent use (run with -race).
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			var k [32]byte
			for i := range 200 {
				id := fmt.Sprint(w*1000 + i%7)
				if _, ok := c.get(id); !ok {
					c.add(id, &k)
				}
			}
		})
	}
	wg.Wait()
	if c.len() > 4 {
		t.Fatalf("%d entries", c.len())
	}
}

// TestOpenKeyCacheIsSafe: a cached key is only ever the key of its own id,
// the message's AuthorKey is its own copy, and a key that fails to verify is
// not kept.
func TestOpenKeyCacheIsSafe(t *testing.T) {
	env := Sign(carol, KindChatMessage, chatPayload("cache"))
	bad := env
	bad.Signatures = []Signature{{KeyID: carol.KeyID(), Sig: Sign(bob, KindChatMessage, chatPayload("cache")).Signatures[0].Sig}}
	old := keys
	keys = newKeyCache(8)
	defer func() { keys = old }()
	if _, err := Verify(bad); twokey.ErrorCode(err) != twokey.EBadSignature {
		t.Fatalf("bad signature: %v", err)
	}
	if _, ok := keys.get(carol.KeyID()); ok {
		t.Fatal("a key that verified nothing was cached")
	}
	m, err := Verify(env)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := keys.get(carol.KeyID()); !ok || !bytes.Equal(got[:], carol.Public()) {
		t.Fatal("the verified key was not cached")
	}
	m.AuthorKey[0] ^= 0xff // a careless caller
	if got, _ := keys.get(carol.KeyID()); !bytes.Equal(got[:], carol.Public()) {
		t.Fatal("AuthorKey shares the cached key")
	}
	if _, err := Verify(env); err != nil {
		t.Fatal(err)
	}
}

// TestMatchesLegacyOnCorpora runs the differential checks over every
// stored fuzz input of the payload and envelope fuzz targets, the ones the
// fuzzer found included.
func TestMatchesLegacyOnCorpora(t *testing.T) {
	for target, compare := range map[string]func(*testing.T, []byte){
		"FuzzCheckJSON": compareCheckJSON, "FuzzVerifyPayload": compareCheckJSON, "FuzzOpen": compareOpen,
	} {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no corpus for %s: %v", target, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitN(string(b), "\n", 3)
			if len(lines) < 2 || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
				t.Fatalf("%s: not a []byte corpus entry", f)
			}
			data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			compare(t, []byte(data))
		}
	}
}
