package conversation

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"

	"github.com/twokey/twokey"
)

// testLog returns three records: a conversation.create by alice, a chat
// message by bob and a gate.enabled by the gateway, chained from zero.
func testLog(t testing.TB) []Record {
	t.Helper()
	envs := []Envelope{
		Sign(alice, KindConversationCreate, []byte(`{"conversation":"`+testConv+`","created_at":"`+testCreated+`","name":"ops","members":[{"key":"`+bob.KeyID()+`","name":"bob"}]}`)),
		Sign(bob, KindChatMessage, chatPayload("hi <all> & you")),
		Sign(gateway, KindGateEnabled, []byte(`{"conversation":"`+testConv+`","created_at":"`+testCreated+`","signers":["`+alice.KeyID()+`"],"required_approvals":1}`)),
	}
	var recs []Record
	var prev Chain
	for i, env := range envs {
		m, err := Verify(env)
		wantCode(t, err)
		r := NewRecord(uint64(i+1), testCreated, m, prev)
		prev, err = ParseChain(r.Chain)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestChainByHand(t *testing.T) {
	recs := testLog(t)
	var prev [32]byte // chain(0): 32 zero bytes
	for _, r := range recs {
		payload, err := decodeStd(r.Envelope.Payload)
		if err != nil {
			t.Fatal(err)
		}
		pae := []byte("DSSEv1 " + itoa(len(r.Envelope.PayloadType)) + " " + r.Envelope.PayloadType + " " + itoa(len(payload)) + " " + string(payload))
		inner := sha256.Sum256(pae)
		prev = sha256.Sum256(append(prev[:], inner[:]...))
		want := "sha256:" + hexString(prev[:])
		if r.Chain != want {
			t.Fatalf("record %d chain %s, want %s", r.Seq, r.Chain, want)
		}
		if Chain(prev).String() != want {
			t.Fatalf("Chain.String %s", Chain(prev).String())
		}
	}
	v := &ChainVerifier{Gateway: gateway.KeyID()}
	for _, r := range recs {
		if err := v.Check(r); err != nil {
			t.Fatal(err)
		}
	}
	if v.Seq != 3 || v.Chain != Chain(prev) {
		t.Fatalf("verifier at seq %d chain %s", v.Seq, v.Chain)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestChainVerifierDetects(t *testing.T) {
	resign := func(r *Record, id *Identity, kind string, payload []byte) {
		r.Envelope = Sign(id, kind, payload)
		r.Body = json.RawMessage(payload)
	}
	tests := []struct {
		name    string
		gateway string
		edit    func(recs []Record) []Record
		failAt  int // index of the first record Check refuses; -1 none
		code    string
	}{
		{"intact", gateway.KeyID(), func(r []Record) []Record { return r }, -1, ""},
		{"intact without a gateway key", "", func(r []Record) []Record { return r }, -1, ""},
		{"records re-encoded by a JSON round trip", gateway.KeyID(), func(r []Record) []Record {
			b, _ := json.Marshal(r)
			var out []Record
			if err := json.Unmarshal(b, &out); err != nil {
				panic(err)
			}
			return out
		}, -1, ""},
		{"body indented by a server", gateway.KeyID(), func(r []Record) []Record {
			r[1].Body = json.RawMessage("{\n  \"text\": \"hi \\u003call> \\u0026 you\",\n  \"created_at\": \"" + testCreated + "\",\n  \"conversation\": \"" + testConv + "\"\n}")
			return r
		}, -1, ""},
		{"edited byte in a payload", gateway.KeyID(), func(r []Record) []Record {
			p, _ := decodeStd(r[1].Envelope.Payload)
			p[len(p)-8] ^= 1
			r[1].Envelope.Payload = b64(p)
			return r
		}, 1, twokey.EBadSignature},
		{"edited body, envelope intact", gateway.KeyID(), func(r []Record) []Record {
			r[1].Body = json.RawMessage(strings.Replace(string(r[1].Body), "hi", "yo", 1))
			return r
		}, 1, ""},
		{"body replaced by another signed payload", gateway.KeyID(), func(r []Record) []Record {
			r[1].Body = json.RawMessage(chatPayload("approve it"))
			return r
		}, 1, ""},
		{"body missing", gateway.KeyID(), func(r []Record) []Record { r[1].Body = nil; return r }, 1, ""},
		{"dropped record", gateway.KeyID(), func(r []Record) []Record { return []Record{r[0], r[2]} }, 1, ""},
		{"dropped record, renumbered", gateway.KeyID(), func(r []Record) []Record {
			r[2].Seq = 2
			return []Record{r[0], r[2]}
		}, 1, ""},
		{"two records swapped", gateway.KeyID(), func(r []Record) []Record { return []Record{r[0], r[2], r[1]} }, 1, ""},
		{"two records swapped, renumbered", gateway.KeyID(), func(r []Record) []Record {
			r[1].Seq, r[2].Seq = 3, 2
			return []Record{r[0], r[2], r[1]}
		}, 1, ""},
		{"record inserted, renumbered", gateway.KeyID(), func(r []Record) []Record {
			extra := r[1]
			resign(&extra, bob, KindChatMessage, chatPayload("inserted"))
			r[1].Seq, r[2].Seq = 3, 4
			extra.Seq = 2
			return []Record{r[0], extra, r[1], r[2]}
		}, 1, ""},
		{"record replaced by another validly signed one", gateway.KeyID(), func(r []Record) []Record {
			resign(&r[1], bob, KindChatMessage, chatPayload("something else"))
			return r
		}, 1, ""},
		{"chain value edited", gateway.KeyID(), func(r []Record) []Record {
			r[1].Chain = Chain{1}.String()
			return r
		}, 1, ""},
		{"gateway kind signed by a member", gateway.KeyID(), func(r []Record) []Record {
			resign(&r[2], alice, KindGateEnabled, r[2].Body)
			r[2].Author = alice.KeyID()
			return r
		}, 2, ""},
		{"member kind signed by the gateway", gateway.KeyID(), func(r []Record) []Record {
			resign(&r[1], gateway, KindChatMessage, r[1].Body)
			r[1].Author = gateway.KeyID()
			return r
		}, 1, ""},
		{"kind field disagrees with the envelope", gateway.KeyID(), func(r []Record) []Record {
			r[1].Kind = KindMemberAdd
			return r
		}, 1, ""},
		{"author field disagrees with the envelope", gateway.KeyID(), func(r []Record) []Record {
			r[1].Author = alice.KeyID()
			return r
		}, 1, ""},
		{"unsigned record", gateway.KeyID(), func(r []Record) []Record {
			r[1].Envelope.Signatures = nil
			return r
		}, 1, twokey.EBadEnvelope},
		{"seq zero", gateway.KeyID(), func(r []Record) []Record { r[0].Seq = 0; return r }, 0, ""},
		{"repeated record", gateway.KeyID(), func(r []Record) []Record { return []Record{r[0], r[1], r[1]} }, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := tt.edit(testLog(t))
			v := &ChainVerifier{Gateway: tt.gateway}
			failed := -1
			var err error
			for i, r := range recs {
				if err = v.Check(r); err != nil {
					failed = i
					break
				}
			}
			if failed != tt.failAt {
				t.Fatalf("first refusal at index %d (%v), want %d", failed, err, tt.failAt)
			}
			if tt.code != "" {
				wantCode(t, err, tt.code)
			}
			if failed >= 0 && v.Seq != uint64(failed) {
				t.Fatalf("a refused record advanced the verifier to %d", v.Seq)
			}
		})
	}
}

func TestChainVerifierFromTrustedPoint(t *testing.T) {
	recs := testLog(t)
	c1, _ := ParseChain(recs[0].Chain)
	v := &ChainVerifier{Seq: 1, Chain: c1, Gateway: gateway.KeyID()}
	for _, r := range recs[1:] {
		if err := v.Check(r); err != nil {
			t.Fatal(err)
		}
	}
	// A wrong trusted value refuses the next record.
	bad := &ChainVerifier{Seq: 1, Chain: Chain{}, Gateway: gateway.KeyID()}
	if err := bad.Check(recs[1]); err == nil {
		t.Fatal("accepted a record after a wrong chain value")
	}
}

func TestParseChain(t *testing.T) {
	var c Chain
	for i := range c {
		c[i] = byte(i * 7)
	}
	tests := []struct {
		in string
		ok bool
	}{
		{c.String(), true},
		{Chain{}.String(), true},
		{strings.ToUpper(c.String()), false},
		{"sha256:" + strings.ToUpper(c.String()[7:]), false},
		{c.String()[7:], false},
		{"sha512:" + c.String()[7:], false},
		{c.String()[:70], false},
		{c.String() + "00", false},
		{"sha256:" + strings.Repeat("g", 64), false},
		{"", false},
	}
	for _, tt := range tests {
		got, err := ParseChain(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseChain(%q): %v", tt.in, err)
		}
		if tt.ok && got.String() != tt.in {
			t.Errorf("ParseChain(%q).String() = %q", tt.in, got)
		}
	}
	b, err := json.Marshal(struct{ C Chain }{c})
	if err != nil || string(b) != `{"C":"`+c.String()+`"}` {
		t.Fatalf("marshal %s %v", b, err)
	}
	var back struct{ C Chain }
	if err := json.Unmarshal(b, &back); err != nil || back.C != c {
		t.Fatalf("unmarshal %v %v", back.C, err)
	}
	if err := json.Unmarshal([]byte(`{"C":"sha256:00"}`), &back); err == nil {
		t.Fatal("unmarshal of a short chain")
	}
}
