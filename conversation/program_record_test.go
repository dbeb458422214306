package conversation

import "testing"

// A program's request is a gate.request the gateway writes and signs on
// the program's behalf (docs/protocol.md E): 'twokey log' and the TUI must
// accept it, while any other member kind signed by the gateway, and a
// gateway-signed gate.request naming no program, is still refused.
func TestChainVerifierAcceptsProgramRequests(t *testing.T) {
	gw := gateway.KeyID()
	sign := func(kind, payload string) Record {
		m, err := Verify(Sign(gateway, kind, []byte(payload)))
		if err != nil {
			t.Fatal(err)
		}
		return NewRecord(1, testCreated, m, Chain{})
	}
	hdr := `"conversation":"` + testConv + `","created_at":"` + testCreated + `","gateway":"` + gw + `"`
	for name, tc := range map[string]struct {
		kind, payload string
		ok            bool
	}{
		"program request":          {KindGateRequest, `{` + hdr + `,"request_id":"r","program":"ci"}`, true},
		"gateway request, no name": {KindGateRequest, `{` + hdr + `,"request_id":"r"}`, false},
		"empty program name":       {KindGateRequest, `{` + hdr + `,"request_id":"r","program":""}`, false},
		"gateway approval":         {KindGateApprove, `{` + hdr + `,"request_id":"r","program":"ci"}`, false},
		"gateway chat":             {KindChatMessage, `{` + hdr + `,"text":"hi","program":"ci"}`, false},
	} {
		v := &ChainVerifier{Gateway: gw}
		err := v.Check(sign(tc.kind, tc.payload))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", name, err, tc.ok)
		}
	}
}
