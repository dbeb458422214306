package engine

import (
	"encoding/json"
	"testing"

	"github.com/twokey/twokey/conversation"
)

// signed returns payload p signed by id as kind, as the JSON a client
// posts, and the payload's digest.
func signed(tb testing.TB, id *conversation.Identity, kind string, p any) ([]byte, string) {
	tb.Helper()
	payload, err := json.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := json.Marshal(conversation.Sign(id, kind, payload))
	if err != nil {
		tb.Fatal(err)
	}
	return raw, conversation.Digest(payload)
}
