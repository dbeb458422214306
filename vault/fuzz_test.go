package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/twokey/twokey"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

// FuzzOpen: no blob opens under the fuzz key unless Seal made it (the one
// sealed seed, knownBlob), Open never panics, and its errors are ErrOpen
// with a fixed message. Each input is also sealed and must round-trip.
func FuzzOpen(f *testing.F) {
	v := newTestVault(f, 0x42)
	known, err := hex.DecodeString(knownBlob)
	if err != nil {
		f.Fatal(err)
	}
	knownAAD := AAD("compat")
	f.Add(known, knownAAD)
	f.Add(known[:13], knownAAD)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, blob, aad []byte) {
		got, err := v.Open(blob, aad)
		if err == nil {
			if !bytes.Equal(blob, known) || !bytes.Equal(aad, knownAAD) || string(got) != "envelope v1" {
				t.Fatalf("a blob not made by Seal opened: %x (aad %x) -> %q", blob, aad, got)
			}
		} else {
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("err = %v, want ErrOpen", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, ErrOpen.Error()) || len(msg) > len(ErrOpen.Error())+80 {
				t.Fatalf("unexpected error text %q", msg)
			}
		}

		// The input as plaintext: seal, open, and refuse a changed copy.
		sealed, err := v.Seal(blob, aad)
		if err != nil {
			t.Fatal(err)
		}
		back, err := v.Open(sealed, aad)
		if err != nil || !bytes.Equal(back, blob) {
			t.Fatalf("round trip: %v", err)
		}
		i := len(blob) % len(sealed)
		sealed[i] ^= 0x80
		if _, err := v.Open(sealed, aad); !errors.Is(err, ErrOpen) {
			t.Fatalf("byte %d changed: err = %v", i, err)
		}
		sealed[i] ^= 0x80
		if _, err := v.Open(sealed, append(bytes.Clone(aad), 0)); !errors.Is(err, ErrOpen) {
			t.Fatalf("longer aad: err = %v", err)
		}
	})
}

// fuzzBoxKeys is the gateway box key pair of FuzzOpenSealed; the seed
// corpus holds a box sealed to it.
func fuzzBoxKeys(t testing.TB) (pub, priv *[32]byte) {
	t.Helper()
	priv = new([32]byte)
	for i := range priv {
		priv[i] = byte(i + 1)
	}
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		t.Fatal(err)
	}
	pub = (*[32]byte)(p)
	return pub, priv
}

var sealedMessages = []string{
	"sealed secret cannot be opened with this gateway's box key",
	"sealed secret is empty: seal the service's API key itself",
	"sealed secret is too large: a key may be at most 8192 bytes (8 KiB)",
}

// FuzzOpenSealed: OpenSealed never panics; what it opens is within the
// size limit; what it refuses is bad_payload with a fixed message; and a box
// sealed from the input round-trips.
func FuzzOpenSealed(f *testing.F) {
	pub, priv := fuzzBoxKeys(f)
	f.Add([]byte{})
	f.Add(make([]byte, box.AnonymousOverhead))
	f.Fuzz(func(t *testing.T, sealed []byte) {
		got, err := OpenSealed(sealed, pub, priv)
		if err == nil {
			if len(got) == 0 || len(got) > MaxSecretSize || len(sealed) != len(got)+box.AnonymousOverhead {
				t.Fatalf("opened %d bytes from a %d-byte box", len(got), len(sealed))
			}
		} else {
			if code := twokey.ErrorCode(err); code != twokey.EBadPayload {
				t.Fatalf("code %q: %v", code, err)
			}
			found := false
			for _, m := range sealedMessages {
				found = found || err.Error() == m
			}
			if !found {
				t.Fatalf("unexpected message %q", err)
			}
		}

		box2, err := box.SealAnonymous(nil, sealed, pub, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		back, err := OpenSealed(box2, pub, priv)
		switch {
		case len(sealed) == 0 || len(sealed) > MaxSecretSize:
			if twokey.ErrorCode(err) != twokey.EBadPayload {
				t.Fatalf("%d-byte value: err = %v, want bad_payload", len(sealed), err)
			}
		case err != nil || !bytes.Equal(back, sealed):
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzValidateHeader: a header that passes ValidateHeader injects exactly
// one well-formed header line.
func FuzzValidateHeader(f *testing.F) {
	v := newTestVault(f, 1)
	for _, seed := range [][2]string{
		{DefaultHeaderName, DefaultHeaderTemplate},
		{"x-api-key", "{value}"},
		{"X-Key", "a\r\n{value}"},
		{"Host", "{value}"},
		{"X Key", "{value}{value}"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, template string) {
		err := ValidateHeader(name, template)
		if err != nil {
			if twokey.ErrorCode(err) != twokey.EBadPayload {
				t.Fatalf("code %q", twokey.ErrorCode(err))
			}
			return
		}
		if name == "" || strings.ContainsAny(name, " \t\r\n:\x00") || strings.ContainsAny(template, "\r\n\x00") || len(template) > 256 || strings.Count(template, "{value}") != 1 {
			t.Fatalf("accepted %q: %q", name, template)
		}
		s := &Secret{ID: "a", HeaderName: name, HeaderTemplate: template}
		if err := v.Store(s, []byte(testValue)); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", "https://example.com/", nil)
		r, err := v.Inject(req, s)
		if err != nil {
			t.Fatalf("Inject after ValidateHeader passed: %v", err)
		}
		defer r.Close()
		want := strings.Replace(template, "{value}", testValue, 1)
		if got := req.Header.Values(name); len(got) != 1 || got[0] != want {
			t.Fatalf("header %q = %q, want %q", name, got, want)
		}
	})
}

// FuzzRedact: a key without '[' or ']' that is not part of "[redacted]"
// never survives redaction, whatever surrounds it.
func FuzzRedact(f *testing.F) {
	v := newTestVault(f, 1)
	f.Add("sk_test_123", "pre sk_test_123 Bearer sk_test_123 c2tfdGVzdF8xMjM= 736b5f746573745f313233")
	f.Add("e", "see [redacted]")
	f.Add("d]", "[redacted]")
	f.Fuzz(func(t *testing.T, value, body string) {
		s := &Secret{ID: "a"}
		if v.Store(s, []byte(value)) != nil {
			return
		}
		r, err := v.Inject(&http.Request{}, s)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		out, n := r.RedactString(body)
		if n == 0 && out != body {
			t.Fatalf("no replacements but output changed: %q -> %q", body, out)
		}
		if strings.Count(out, "[redacted]") < n {
			t.Fatalf("%d replacements but fewer markers in %q", n, out)
		}
		if !strings.ContainsAny(value, "[]") && !strings.Contains("[redacted]", value) && strings.Contains(out, value) {
			t.Fatalf("value %q survived in %q", value, out)
		}
	})
}
