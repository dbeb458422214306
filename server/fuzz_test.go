package server

import (
	"encoding/json"
	"testing"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
)

// FuzzClientFrame feeds parseClientFrame, the WebSocket read loop's
// decoder, arbitrary frames. It must never panic; what it accepts has a
// known op and what that op needs; what it refuses is bad_envelope with a
// short message; and the error frame answering a refusal always encodes
// (an unencodable ref would cost the client its socket).
func FuzzClientFrame(f *testing.F) {
	for _, seed := range []string{
		`{"op":"subscribe","conversation":"0b4f5bfe-3a59-4f0e-9d6e-2b1b8f0e7c11","after":0}`,
		`{"op":"unsubscribe","conversation":"0b4f5bfe-3a59-4f0e-9d6e-2b1b8f0e7c11"}`,
		`{"op":"post","ref":"r1","envelope":{"payloadType":"application/vnd.twokey.chat.message+json","payload":"e30=","signatures":[]}}`,
		`{"op":"ping","ref":{"n":[1,2]}}`,
		`{"op":"subscribe","ref":7,"after":-1}`,
		`{"op":"post","ref":"r2","envelope":null}`,
		`{"op":"dance"}`,
		`[1,2,3]`,
		`{"op":`,
		"\x00\xff",
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := parseClientFrame(data)
		if err == nil {
			switch fr.Op {
			case opSubscribe, opUnsubscribe:
				if fr.Conversation == "" {
					t.Fatalf("%s without a conversation accepted: %q", fr.Op, data)
				}
			case opPost:
				if !json.Valid(fr.Envelope) || string(fr.Envelope) == "null" {
					t.Fatalf("post with envelope %q accepted", fr.Envelope)
				}
			case opPing:
			default:
				t.Fatalf("unknown op %q accepted", fr.Op)
			}
			return
		}
		if code := twokey.ErrorCode(err); code != twokey.EBadEnvelope {
			t.Fatalf("code %q for %q: %v", code, data, err)
		}
		if msg := twokey.ErrorMessage(err); msg == "" || len(msg) > 400 {
			t.Fatalf("message of %d bytes: %q", len(msg), msg)
		}
		out, merr := json.Marshal(api.ServerFrame{Op: "error", Ref: fr.Ref, Conversation: fr.Conversation,
			Error: &api.ErrorDetail{Code: twokey.ErrorCode(err), Message: twokey.ErrorMessage(err)}})
		if merr != nil || !json.Valid(out) {
			t.Fatalf("the error frame for %q does not encode: %v", data, merr)
		}
	})
}
