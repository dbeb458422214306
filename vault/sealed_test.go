package vault

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/twokey/twokey"
	"golang.org/x/crypto/nacl/box"
)

func boxKeys(t testing.TB) (pub, priv *[32]byte) {
	t.Helper()
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestOpenSealedRoundTrip(t *testing.T) {
	pub, priv := boxKeys(t)
	for _, value := range [][]byte{
		[]byte("k"),
		[]byte("sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
		bytes.Repeat([]byte("x"), MaxSecretSize),
	} {
		sealed, err := box.SealAnonymous(nil, value, pub, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		got, err := OpenSealed(sealed, pub, priv)
		if err != nil {
			t.Fatalf("%d-byte value: %v", len(value), err)
		}
		if !bytes.Equal(got, value) {
			t.Fatalf("OpenSealed = %q, want %q", got, value)
		}
	}
}

func TestOpenSealedRefuses(t *testing.T) {
	pub, priv := boxKeys(t)
	otherPub, _ := boxKeys(t)
	value := []byte("sk_test_SEALEDVALUE")
	toOther, _ := box.SealAnonymous(nil, value, otherPub, rand.Reader)
	empty, _ := box.SealAnonymous(nil, nil, pub, rand.Reader)
	tooBig, _ := box.SealAnonymous(nil, bytes.Repeat([]byte("x"), MaxSecretSize+1), pub, rand.Reader)
	good, _ := box.SealAnonymous(nil, value, pub, rand.Reader)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	lowOrder := bytes.Clone(good)
	clear(lowOrder[:32]) // the all-zero point has order 1

	tests := []struct {
		name   string
		sealed []byte
		msg    string
	}{
		{"another key", toOther, "cannot be opened with this gateway's box key"},
		{"nil", nil, "cannot be opened"},
		{"empty", []byte{}, "cannot be opened"},
		{"garbage", []byte("this is not a sealed box, just some bytes of garbage here"), "cannot be opened"},
		{"overhead only", make([]byte, box.AnonymousOverhead), "cannot be opened"},
		{"truncated", good[:len(good)-1], "cannot be opened"},
		{"flipped", flipped, "cannot be opened"},
		{"low-order key", lowOrder, "cannot be opened"},
		{"empty value", empty, "empty"},
		{"too big", tooBig, "8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OpenSealed(tt.sealed, pub, priv)
			if err == nil {
				t.Fatalf("OpenSealed succeeded with %q", got)
			}
			if code := twokey.ErrorCode(err); code != twokey.EBadPayload {
				t.Errorf("code %q, want bad_payload", code)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), string(value)) {
				t.Errorf("error %q carries the value", err)
			}
		})
	}
	if _, err := OpenSealed(good, nil, nil); err == nil {
		t.Error("OpenSealed without keys succeeded")
	}
}
