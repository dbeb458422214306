package vault

import (
	"errors"

	"github.com/twokey/twokey"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

// MaxSecretSize is the largest upstream key, in bytes, the vault accepts.
const MaxSecretSize = 8 << 10

const msgUnopenable = "sealed secret cannot be opened with this gateway's box key"

// OpenSealed opens a libsodium sealed box (crypto_box_seal, Go's
// box.SealAnonymous) addressed to the gateway's box key pair and returns the
// key it holds. A box that does not open, or holds nothing, is a bad_payload
// error; so is a key longer than MaxSecretSize. No error carries box bytes.
func OpenSealed(sealed []byte, boxPub, boxPriv *[32]byte) ([]byte, error) {
	if boxPub == nil || boxPriv == nil {
		return nil, errors.New("vault: OpenSealed without the gateway's box key pair")
	}
	if len(sealed) < box.AnonymousOverhead {
		return nil, twokey.Errorf(twokey.EBadPayload, msgUnopenable)
	}
	if len(sealed)-box.AnonymousOverhead > MaxSecretSize {
		return nil, twokey.Errorf(twokey.EBadPayload, "sealed secret is too large: a key may be at most %d bytes (8 KiB)", MaxSecretSize)
	}
	// Refuse a low-order ephemeral key, as libsodium does: its shared secret
	// is all zeros and proves nothing about the sender's key.
	if _, err := curve25519.X25519(boxPriv[:], sealed[:32]); err != nil {
		return nil, twokey.Errorf(twokey.EBadPayload, msgUnopenable)
	}
	out, ok := box.OpenAnonymous(nil, sealed, boxPub, boxPriv)
	if !ok {
		return nil, twokey.Errorf(twokey.EBadPayload, msgUnopenable)
	}
	if len(out) == 0 {
		return nil, twokey.Errorf(twokey.EBadPayload, "sealed secret is empty: seal the service's API key itself")
	}
	return out, nil
}

// checkValue reports why value cannot be a key sent in an HTTP header.
func checkValue(value []byte) error {
	if len(value) == 0 {
		return twokey.Errorf(twokey.EBadPayload, "secret value is empty")
	}
	if len(value) > MaxSecretSize {
		return twokey.Errorf(twokey.EBadPayload, "secret value is too large: a key may be at most %d bytes (8 KiB)", MaxSecretSize)
	}
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return twokey.Errorf(twokey.EBadPayload, "secret value contains a control character (such as CR, LF or NUL), so it cannot be sent in an HTTP header; seal the key without a trailing newline")
		}
	}
	return nil
}
