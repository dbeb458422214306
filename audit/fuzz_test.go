package audit_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/conversation"
)

// FuzzVerify feeds arbitrary bytes to Parse and Verify, the decoder an
// auditor points at a file someone handed them: neither may panic, and a
// failure always names a check.
func FuzzVerify(f *testing.F) {
	b := newBuilder(&testing.T{}, 3)
	b.gated(2, nil)
	_, d := b.request(0, r1, "/a", time.Hour)
	b.approve(1, r1, d)
	b.executed(r1, 0, 1)
	b.add(2, conversation.KindChatMessage, map[string]any{"text": "hi"})
	good, err := b.export().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":"twokey-audit/1","conversation":"x","gateway":"","checkpoint":{"seq":1},"records":[{"seq":1}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := audit.Parse(data)
		if err != nil {
			if _, ok := err.(*audit.Failure); !ok {
				t.Fatalf("Parse error is not a Failure: %v", err)
			}
			return
		}
		rep, err := audit.Verify(x, audit.Options{})
		if err != nil {
			f, ok := err.(*audit.Failure)
			if !ok || f.Check == "" || f.Reason == "" {
				t.Fatalf("Verify error is not a named Failure: %v", err)
			}
			return
		}
		if rep.Records != uint64(len(x.Records)) {
			t.Fatalf("verified %d records of %d", rep.Records, len(x.Records))
		}
	})
}

// FuzzParseCheckpoint feeds arbitrary bytes to the decoder of a kept
// checkpoint (audit verify --checkpoint FILE) and what it accepts to
// Verify: no panic, and what it accepts has a seq, a well-formed chain
// value and a signed envelope.
func FuzzParseCheckpoint(f *testing.F) {
	b := newBuilder(&testing.T{}, 2)
	b.gated(1, nil)
	x := b.export()
	cp, err := json.Marshal(x.Checkpoint)
	if err != nil {
		f.Fatal(err)
	}
	whole, err := x.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp)
	f.Add(whole)
	f.Add([]byte(`{"format":"twokey-audit/1"}`))
	f.Add([]byte(`{"seq":1,"chain":"sha256:00","envelope":{"payload":"e30=","signatures":[{}]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := audit.ParseCheckpoint(data)
		if err != nil {
			if cp != nil || err.Error() == "" {
				t.Fatalf("a refusal with a checkpoint or without a reason: %v", err)
			}
			return
		}
		if cp.Seq == 0 || len(cp.Chain) != len("sha256:")+64 || len(cp.Envelope.Signatures) == 0 {
			t.Fatalf("accepted a checkpoint without seq, chain or signature: %+v", cp)
		}
		// Whatever it is, checking the log against it must not panic, and
		// a failure must name a check.
		if _, err := audit.Verify(x, audit.Options{Checkpoints: []audit.Checkpoint{*cp}}); err != nil {
			if f, ok := err.(*audit.Failure); !ok || f.Check == "" {
				t.Fatalf("not a named failure: %v", err)
			}
		}
	})
}

// FuzzParseAnchor feeds arbitrary text to the decoder of a kept chain
// value (audit verify --anchor SEQ=sha256:HEX): no panic, and what it
// accepts prints back as it was written.
func FuzzParseAnchor(f *testing.F) {
	for _, s := range []string{"17=sha256:" + strings.Repeat("ab", 32), "0=sha256:", "x", "=", "18446744073709551616=sha256:00",
		"+1=sha256:" + strings.Repeat("00", 32), "01=sha256:" + strings.Repeat("00", 32), "3=sha256:" + strings.Repeat("AB", 32)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := audit.ParseAnchor(s)
		if err != nil {
			return
		}
		if a.Seq == 0 || fmt.Sprintf("%d=%s", a.Seq, a.Chain) != s {
			t.Fatalf("%q accepted as seq %d chain %s", s, a.Seq, a.Chain)
		}
	})
}
