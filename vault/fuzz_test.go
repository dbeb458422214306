package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf16"

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

// FuzzRedactEncoded: a key, or the whole header value it is injected as,
// written in one of the forms PROTOCOL 5 lists (form picks it; where an
// encoder has choices, such as which bytes to percent-encode or how to
// escape a character in JSON, the bits of choices make them), together
// with the texts around it, cannot be read back from the redacted result
// in any of those forms (revealed decodes it each way). Keys shorter than
// 8 bytes are skipped: the oracle's misaligned decodings of random text
// would find them by chance.
func FuzzRedactEncoded(f *testing.F) {
	v := newTestVault(f, 1)
	f.Fuzz(func(t *testing.T, value string, header bool, before, after string, form uint8, choices uint64, template string) {
		if len(value) < 8 || len(before)+len(after) > 4096 {
			return
		}
		if ValidateHeader(DefaultHeaderName, template) != nil {
			template = DefaultHeaderTemplate
		}
		s := &Secret{ID: "a", HeaderTemplate: template}
		if v.Store(s, []byte(value)) != nil {
			return
		}
		req := &http.Request{}
		r, err := v.Inject(req, s)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		target := value
		if header {
			target = req.Header.Get(DefaultHeaderName)
		}
		in := []byte(encodeAs(form, before+target+after, choices))
		out, n := r.Redact(in)
		if n == 0 && !bytes.Equal(out, in) {
			t.Fatalf("no replacements but output changed: %q -> %q", in, out)
		}
		if c := bytes.Count(out, []byte(redactPlaceholder)); c < n {
			t.Fatalf("%d replacements but %d markers in %q", n, c, out)
		}
		if how := revealed(out, []byte(value)); how != "" {
			t.Fatalf("form %d: the key %q survives (%s) in %q\nredacted from %q", form%encodedFormCount, value, how, out, in)
		}
	})
}

const encodedFormCount = 16

// encodeAs writes s in form (modulo encodedFormCount), taking an encoder's
// free choices from the bits of choices, one bit (or two) per character,
// reused cyclically.
func encodeAs(form uint8, s string, choices uint64) string {
	bit := 0
	next := func() bool {
		b := choices>>(bit%64)&1 == 1
		bit++
		return b
	}
	pct := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == ' ' && next():
				b.WriteByte('+')
			case c != '%' && c != '+' && c > ' ' && c < 0x7f && next():
				b.WriteByte(c)
			default:
				digits := "0123456789ABCDEF"
				if next() {
					digits = "0123456789abcdef"
				}
				b.WriteByte('%')
				b.WriteByte(digits[c>>4])
				b.WriteByte(digits[c&15])
			}
		}
		return b.String()
	}
	jsonEsc := func(s string) string {
		var b strings.Builder
		for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
			switch {
			case r == '/' && next():
				b.WriteString(`\/`)
			case r == '"' || r == '\\' || r < ' ' || next():
				f := `\u%04x`
				if next() {
					f = `\u%04X`
				}
				for _, u := range utf16.Encode([]rune{r}) {
					fmt.Fprintf(&b, f, u)
				}
			default:
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	switch form % encodedFormCount {
	case 1:
		return pct(s)
	case 2:
		return jsonEsc(s)
	case 3:
		return base64.StdEncoding.EncodeToString([]byte(s))
	case 4:
		return base64.RawStdEncoding.EncodeToString([]byte(s))
	case 5:
		return base64.URLEncoding.EncodeToString([]byte(s))
	case 6:
		return base64.RawURLEncoding.EncodeToString([]byte(s))
	case 7:
		return hex.EncodeToString([]byte(s))
	case 8:
		return strings.ToUpper(hex.EncodeToString([]byte(s)))
	case 9:
		return string(utf16Bytes(s, false))
	case 10:
		return string(utf16Bytes(s, true))
	case 11:
		return pct(base64.StdEncoding.EncodeToString([]byte(s)))
	case 12:
		return strings.ReplaceAll(base64.StdEncoding.EncodeToString([]byte(s)), "/", `\/`)
	case 13:
		return jsonEsc(pct(s))
	case 14:
		return pct(hex.EncodeToString([]byte(s)))
	case 15:
		return jsonEsc(base64.RawURLEncoding.EncodeToString([]byte(s)))
	}
	return s
}
