package vault

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// testKey returns a master key whose bytes are all b.
func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, MasterKeySize) }

func newTestVault(t testing.TB, b byte) *Vault {
	t.Helper()
	v, err := New(testKey(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNewKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New with a %d-byte key: want an error", n)
		}
	}
	key := testKey(7)
	v, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	// The vault keeps no reference to the caller's slice.
	blob, err := v.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	clear(key)
	if _, err := v.Open(blob, nil); err != nil {
		t.Fatalf("Open after the caller zeroed its key: %v", err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	v := newTestVault(t, 1)
	tests := []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"empty", nil, nil},
		{"short", []byte("sk_test_123"), AAD("x")},
		{"binary", []byte{0, 1, 2, 255, 254}, SecretAAD("c1", "a", "github")},
		{"large", bytes.Repeat([]byte("k"), 64<<10), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blob, err := v.Seal(tt.plaintext, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if want := 1 + 12 + len(tt.plaintext) + 16; len(blob) != want {
				t.Errorf("blob is %d bytes, want %d", len(blob), want)
			}
			if blob[0] != 1 {
				t.Errorf("version byte %d, want 1", blob[0])
			}
			if len(tt.plaintext) > 4 && bytes.Contains(blob, tt.plaintext) {
				t.Error("blob contains the plaintext")
			}
			got, err := v.Open(blob, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open = %q, want %q", got, tt.plaintext)
			}
		})
	}
}

func TestSealNoncesDiffer(t *testing.T) {
	v := newTestVault(t, 1)
	a, _ := v.Seal([]byte("same"), nil)
	b, _ := v.Seal([]byte("same"), nil)
	if bytes.Equal(a[1:13], b[1:13]) {
		t.Fatal("two seals used the same nonce")
	}
}

func TestOpenFailures(t *testing.T) {
	v := newTestVault(t, 1)
	plaintext := []byte("sk_live_abcdef0123456789")
	aad := SecretAAD("c1", "a", "github")
	blob, err := v.Seal(plaintext, aad)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(blob)) }
	tests := []struct {
		name  string
		vault *Vault
		blob  []byte
		aad   []byte
	}{
		{"wrong key", newTestVault(t, 2), blob, aad},
		{"wrong aad", v, blob, SecretAAD("c1", "b", "github")},
		{"nil aad", v, blob, nil},
		{"version 0", v, with(func(b []byte) []byte { b[0] = 0; return b }), aad},
		{"version 2", v, with(func(b []byte) []byte { b[0] = 2; return b }), aad},
		{"truncated by one", v, blob[:len(blob)-1], aad},
		{"no tag", v, blob[:len(blob)-16], aad},
		{"header only", v, blob[:13], aad},
		{"version only", v, blob[:1], aad},
		{"empty", v, nil, aad},
		{"extended", v, append(bytes.Clone(blob), 0), aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.vault.Open(tt.blob, tt.aad)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open: err = %v, want ErrOpen", err)
			}
			if got != nil {
				t.Errorf("Open returned %d bytes with an error", len(got))
			}
			if strings.Contains(err.Error(), string(plaintext)) || strings.Contains(err.Error(), hex.EncodeToString(blob)) {
				t.Errorf("error %q carries secret bytes", err)
			}
		})
	}
}

func TestOpenEveryBitFlip(t *testing.T) {
	v := newTestVault(t, 1)
	aad := AAD("flip")
	blob, err := v.Seal([]byte("sk_test_flipme"), aad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(blob) * 8 {
		b := bytes.Clone(blob)
		b[i/8] ^= 1 << (i % 8)
		if _, err := v.Open(b, aad); !errors.Is(err, ErrOpen) {
			t.Fatalf("bit %d flipped: err = %v, want ErrOpen", i, err)
		}
	}
}

// knownBlob was sealed by version 1 of the envelope under testKey(0x42)
// with AAD("compat"); it must open forever.
const knownBlob = "016045ba3459f4d40de3393d1e851957103955c3065b490ad4d5c72dbafb3fee4b38b4aa422e68e9"

func TestOpenKnownEnvelope(t *testing.T) {
	blob, err := hex.DecodeString(knownBlob)
	if err != nil {
		t.Fatal(err)
	}
	got, err := newTestVault(t, 0x42).Open(blob, AAD("compat"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "envelope v1" {
		t.Fatalf("Open = %q, want %q", got, "envelope v1")
	}
}

func TestAAD(t *testing.T) {
	tests := []struct {
		a, b []string
	}{
		{[]string{"ab", "c"}, []string{"a", "bc"}},
		{[]string{"a", ""}, []string{"a"}},
		{[]string{""}, nil},
		{[]string{"secret", "c1", "a", "github"}, []string{"secret", "c1a", "", "github"}},
	}
	for _, tt := range tests {
		if bytes.Equal(AAD(tt.a...), AAD(tt.b...)) {
			t.Errorf("AAD(%q) == AAD(%q)", tt.a, tt.b)
		}
	}
	want := []byte("twokey-vault-v1\x00\x00\x00\x02ab\x00\x00\x00\x00")
	if got := AAD("ab", ""); !bytes.Equal(got, want) {
		t.Errorf("AAD(ab, \"\") = %q, want %q", got, want)
	}
	if !bytes.Equal(SecretAAD("c", "i", "s"), AAD("secret", "c", "i", "s")) {
		t.Error("SecretAAD differs from AAD(secret, ...)")
	}
}

func TestVerifyCheck(t *testing.T) {
	v := newTestVault(t, 1)
	check, err := v.NewCheck()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyCheck(check); err != nil {
		t.Fatalf("VerifyCheck with the right key: %v", err)
	}
	if err := newTestVault(t, 1).VerifyCheck(check); err != nil {
		t.Fatalf("VerifyCheck with the same key, another Vault: %v", err)
	}
	// A blob sealed by the right key but not a check value.
	other, _ := v.Seal([]byte("twokey master key check v1"), AAD("other"))
	wrongMarker, _ := v.Seal([]byte("not the marker"), AAD("master-check"))
	tests := []struct {
		name  string
		vault *Vault
		check []byte
	}{
		{"wrong key", newTestVault(t, 2), check},
		{"empty check", v, nil},
		{"other aad", v, other},
		{"wrong marker", v, wrongMarker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.vault.VerifyCheck(tt.check)
			if err == nil {
				t.Fatal("VerifyCheck succeeded")
			}
			if !strings.Contains(err.Error(), "master key does not match this data directory") {
				t.Errorf("error %q does not say the master key does not match", err)
			}
			if n := strings.Count(err.Error(), "vault:"); n != 1 {
				t.Errorf("error %q says vault: %d times", err, n)
			}
			if !errors.Is(err, ErrOpen) {
				t.Errorf("error %v does not wrap ErrOpen", err)
			}
		})
	}
}

func TestZeroVault(t *testing.T) {
	var v *Vault
	if _, err := v.Seal(nil, nil); err == nil {
		t.Error("Seal on a nil Vault succeeded")
	}
	if _, err := (&Vault{}).Open(nil, nil); err == nil {
		t.Error("Open on a zero Vault succeeded")
	}
}
