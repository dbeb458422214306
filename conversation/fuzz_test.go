package conversation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/twokey/twokey"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/, so that plain `go
// test` replays them. `go test -run TestFuzzSeeds -update-seeds` rewrites
// the generated ones from the tables of the unit tests; inputs the fuzzer
// found stay beside them.
var updateSeeds = flag.Bool("update-seeds", false, "rewrite the generated fuzz seed corpora in testdata/fuzz")

func seedCorpora(t testing.TB) map[string][]string {
	c := map[string][]string{}
	for _, tc := range openCases(t) {
		c["FuzzOpen"] = append(c["FuzzOpen"], string(tc.data()))
	}
	for _, id := range []*Identity{alice, bob, gateway} {
		for _, env := range []Envelope{
			Sign(id, KindGateRequest, []byte(`{"conversation":"`+testConv+`","created_at":"`+testCreated+`","gateway":"`+gateway.KeyID()+`","request_id":"r1","service":"github","method":"GET","url":"https://api.github.com/user","headers":{"Accept":"x"},"body":{"Q":[1,{"a":null}]},"expires_at":"2026-11-23T00:00:00Z"}`)),
			Sign(id, KindSessionOpen, []byte(`{"created_at":"`+testCreated+`","nonce":"3q2+7w3q2+7w3q2+7w3q2w=="}`)),
			Sign(id, KindGateEnabled, []byte(`{"conversation":"`+testConv+`","created_at":"`+testCreated+`","signers":[],"required_approvals":1,"box_key":"x"}`)),
		} {
			c["FuzzOpen"] = append(c["FuzzOpen"], string(mustJSON(t, env)))
		}
	}
	for _, tc := range checkJSONCases() {
		c["FuzzCheckJSON"] = append(c["FuzzCheckJSON"], tc.in)
		c["FuzzVerifyPayload"] = append(c["FuzzVerifyPayload"], tc.in)
	}
	for _, kind := range []string{KindChatMessage, KindSessionOpen, KindGateRequest} {
		c["FuzzVerifyPayload"] = append(c["FuzzVerifyPayload"], string(mustJSON(t, ChatPayload{Header: hdr(), Text: kind})))
	}
	urlID := keyWithURLChars(t).KeyID()
	for _, id := range []string{
		alice.KeyID(), urlID, alice.KeyID() + "=", strings.NewReplacer("-", "+", "_", "/").Replace(urlID),
		setSpareBits(alice.KeyID()), alice.KeyID()[:42], "", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "7f___________________________________________",
		"7P___________________________________________x", "7f_________________________________________38",
		"JuiVj8KyJ7BFw_SJ8u-Y8NXfrAXTxjM5sTgCiG1T_AU", alice.KeyID()[:20] + "\n" + alice.KeyID()[21:],
	} {
		c["FuzzParseKeyID"] = append(c["FuzzParseKeyID"], id)
	}
	recs := testLog(t)
	logJSON := string(mustJSON(t, recs))
	c["FuzzChainParse"] = append(c["FuzzChainParse"], logJSON, string(mustJSON(t, recs[:1])),
		strings.Replace(logJSON, `"seq":2`, `"seq":3`, 1), strings.Replace(logJSON, "hi \\u003call\\u003e", "yo", 1),
		recs[0].Chain, Chain{}.String(), strings.ToUpper(recs[0].Chain), recs[0].Chain[7:], "sha256:", "[]", "[{}]", "null")
	return c
}

func seedFile(v string) (name string, data []byte) {
	body := "go test fuzz v1\n[]byte(" + strconv.Quote(v) + ")\n"
	sum := sha256.Sum256([]byte(body))
	return "seed-" + hex.EncodeToString(sum[:8]), []byte(body)
}

// TestFuzzSeeds checks that every generated seed is on disk (or, with
// -update-seeds, writes them).
func TestFuzzSeeds(t *testing.T) {
	for target, inputs := range seedCorpora(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateSeeds {
			old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
			for _, f := range old {
				os.Remove(f)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, in := range inputs {
			name, data := seedFile(in)
			path := filepath.Join(dir, name)
			if *updateSeeds {
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
				t.Errorf("seed %s is missing or stale; run go test -run TestFuzzSeeds -update-seeds ./conversation", path)
			}
		}
	}
}

var protocolCodes = []string{twokey.EBadEnvelope, twokey.EBadPayload, twokey.EBadSignature, twokey.ETooLarge}

// FuzzOpen: Open never panics, refuses only with a protocol code, and what
// it accepts really is one strict JSON object signed by its author.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Open(data)
		if err != nil {
			if code := twokey.ErrorCode(err); !slices.Contains(protocolCodes, code) {
				t.Fatalf("refused with code %q: %v", code, err)
			}
			if m != nil {
				t.Fatal("a message returned with an error")
			}
			return
		}
		checkOpened(t, m)
		// Its envelope, written again, opens to the same message.
		m2, err := Open(mustJSON(t, m.Envelope))
		if err != nil || !bytes.Equal(m2.Payload, m.Payload) || m2.Author != m.Author || m2.Kind != m.Kind {
			t.Fatalf("re-encoded envelope: %v", err)
		}
	})
}

func checkOpened(t *testing.T, m *Message) {
	t.Helper()
	env := m.Envelope
	if len(env.Signatures) != 1 {
		t.Fatalf("%d signatures", len(env.Signatures))
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil || !ed25519.Verify(m.AuthorKey, PAE(env.PayloadType, m.Payload), sig) {
		t.Fatal("payload does not re-verify")
	}
	if err := CheckJSON(m.Payload); err != nil {
		t.Fatalf("CheckJSON refuses an opened payload: %v", err)
	}
	if !utf8.Valid(m.Payload) {
		t.Fatalf("opened a payload that is not UTF-8: %q", m.Payload)
	}
	if base64.StdEncoding.EncodeToString(m.Payload) != env.Payload {
		t.Fatalf("payload %q travelled as %q, not its one base64 spelling", m.Payload, env.Payload)
	}
	if KeyID(m.AuthorKey) != m.Author || m.Author != env.Signatures[0].KeyID || !usableKey(m.AuthorKey) {
		t.Fatalf("author %q key %x", m.Author, m.AuthorKey)
	}
	if PayloadType(m.Kind) != env.PayloadType || !KnownKind(m.Kind) {
		t.Fatalf("kind %q of %q", m.Kind, env.PayloadType)
	}
	if m.Header.CreatedAt == "" || m.CreatedAt.IsZero() || m.CreatedAt.Location().String() != "UTC" {
		t.Fatalf("created_at %q -> %v", m.Header.CreatedAt, m.CreatedAt)
	}
	if m.Kind != KindSessionOpen && m.Header.Conversation == "" {
		t.Fatal("no conversation")
	}
}

// FuzzVerifyPayload signs arbitrary payload bytes properly, so that the
// fuzzer reaches the payload checks behind the signature.
func FuzzVerifyPayload(f *testing.F) {
	kinds := []string{KindChatMessage, KindSessionOpen, KindGateRequest}
	f.Fuzz(func(t *testing.T, payload []byte) {
		kind := kinds[len(payload)%len(kinds)]
		m, err := Verify(Sign(alice, kind, payload))
		if err != nil {
			if code := twokey.ErrorCode(err); code != twokey.EBadPayload {
				t.Fatalf("a properly signed payload refused with %q: %v", code, err)
			}
			return
		}
		if !bytes.Equal(m.Payload, payload) {
			t.Fatal("payload changed")
		}
		checkOpened(t, m)
	})
}

// knownFieldProbe returns a struct type with one json.RawMessage field per
// name, to ask encoding/json which key it would take for each.
func knownFieldProbe(names []string) reflect.Type {
	var fields []reflect.StructField
	for _, name := range names {
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("F%d", len(fields)), Type: reflect.TypeFor[json.RawMessage](),
			Tag: reflect.StructTag(`json:"` + name + `"`),
		})
	}
	return reflect.StructOf(fields)
}

func sortedKnownFields() []string {
	var out []string
	for _, f := range knownFields {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// FuzzCheckJSON: CheckJSON never panics, and what it accepts is one JSON
// object no deeper than MaxJSONDepth, in which Go's decoder fills each
// protocol field from the key of exactly that name and from no other.
func FuzzCheckJSON(f *testing.F) {
	names := sortedKnownFields()
	probeType := knownFieldProbe(names)
	if probeType.NumField() < 40 {
		f.Fatalf("only %d known fields", probeType.NumField())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckJSON(data)
		if err != nil {
			if code := twokey.ErrorCode(err); code != twokey.EBadPayload {
				t.Fatalf("refused with code %q: %v", code, err)
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("accepted a payload that is not UTF-8: %q", data)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
			t.Fatalf("accepted, but not a JSON object: %v", err)
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		if d := jsonDepth(v); d > twokey.MaxJSONDepth {
			t.Fatalf("accepted at depth %d", d)
		}
		probe := reflect.New(probeType)
		if err := json.Unmarshal(data, probe.Interface()); err != nil {
			t.Fatal(err)
		}
		for i, name := range names {
			got := probe.Elem().Field(i).Bytes()
			if want, ok := obj[name]; !bytes.Equal(got, want) || (got == nil) == ok {
				t.Fatalf("encoding/json fills %q with %q; the key %q holds %q", name, got, name, want)
			}
		}
	})
}

func jsonDepth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			d = max(d, jsonDepth(e))
		}
	case []any:
		for _, e := range v {
			d = max(d, jsonDepth(e))
		}
	default:
		return 0
	}
	return d + 1
}

// FuzzParseKeyID: ParseKeyID accepts exactly the canonical base64url
// spelling of a usable 32-byte key, and KeyID gives the input back.
func FuzzParseKeyID(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		id := string(data)
		key, err := ParseKeyID(id)
		raw, rawErr := base64.RawURLEncoding.DecodeString(id)
		canonical := rawErr == nil && len(raw) == 32 && KeyID(raw) == id && usableKey(raw)
		if err != nil {
			if code := twokey.ErrorCode(err); code != twokey.EBadEnvelope {
				t.Fatalf("refused with code %q", code)
			}
			if canonical {
				t.Fatalf("refused the canonical id %q: %v", id, err)
			}
			return
		}
		if KeyID(key) != id || len(key) != ed25519.PublicKeySize || !canonical {
			t.Fatalf("accepted %q as %x (KeyID %q)", id, key, KeyID(key))
		}
	})
}

// FuzzChainParse: ParseChain accepts only the digest form Chain.String
// writes; and a ChainVerifier fed any records never panics, and where it
// accepts one, the record's chain is the verifier's new value.
func FuzzChainParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s := string(data)
		c, err := ParseChain(s)
		if err == nil && c.String() != s {
			t.Fatalf("ParseChain(%q) = %s", s, c)
		}
		var c2 Chain
		if err2 := c2.UnmarshalText(data); (err2 == nil) != (err == nil) || c2 != c {
			t.Fatalf("UnmarshalText disagrees with ParseChain: %v %v", err2, err)
		}
		var recs []Record
		if json.Unmarshal(data, &recs) != nil {
			return
		}
		v := &ChainVerifier{Gateway: gateway.KeyID()}
		for _, r := range recs {
			before := *v
			if err := v.Check(r); err != nil {
				if *v != before {
					t.Fatal("a refused record moved the verifier")
				}
				return
			}
			if v.Seq != before.Seq+1 || v.Chain.String() != r.Chain {
				t.Fatalf("accepted record %d with chain %s; verifier at %d %s", r.Seq, r.Chain, v.Seq, v.Chain)
			}
		}
	})
}
