package conversation

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twokey/twokey"
)

const (
	testConv    = "0b4f5bfe-3a59-4f0e-9d6e-2b1b8f0e7c11"
	testCreated = "2026-11-22T13:27:06.123Z"
)

// fixedIdentity returns a deterministic identity, so that envelopes (Ed25519
// signatures are deterministic) and seed corpora are reproducible.
func fixedIdentity(n byte) *Identity {
	return &Identity{Name: fmt.Sprintf("id%d", n), Private: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))}
}

var (
	alice   = fixedIdentity(1)
	bob     = fixedIdentity(2)
	carol   = fixedIdentity(3)
	gateway = fixedIdentity(9)
)

// chatPayload is a chat.message payload with odd whitespace and key order:
// verification must keep these bytes exactly.
func chatPayload(text string) []byte {
	return []byte(" {\"text\" : " + strconvQuote(text) + ",\n\t\"created_at\":\"" + testCreated + "\",   \"conversation\":\"" + testConv + "\"}\r\n")
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// wantCode fails unless err carries one of the codes (none means success).
func wantCode(t testing.TB, err error, codes ...string) {
	t.Helper()
	if len(codes) == 0 {
		if err != nil {
			t.Fatalf("unexpected error %q (code %s)", err, twokey.ErrorCode(err))
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted; want %s", strings.Join(codes, " or "))
	}
	if got := twokey.ErrorCode(err); !slices.Contains(codes, got) {
		t.Fatalf("code %s (%v); want %s", got, err, strings.Join(codes, " or "))
	}
}

// keyWithURLChars returns an identity whose key id contains '-' or '_', the
// characters where base64url and standard base64 differ.
func keyWithURLChars(t testing.TB) *Identity {
	t.Helper()
	for n := 10; n < 256; n++ {
		id := fixedIdentity(byte(n))
		if strings.ContainsAny(id.KeyID(), "-_") {
			return id
		}
	}
	t.Fatal("no fixed identity has '-' or '_' in its key id")
	return nil
}
