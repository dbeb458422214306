package audit_test

import (
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
