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

// checkValue reports why value cannot be stored as an upstream API key.
// API keys are visible printable ASCII, so that is all the vault takes:
// bytes 0x21 to 0x7e except the double quote and the backslash. A control
// character could split the header it is sent in; a space, a non-ASCII
// byte, a quote or a backslash is no part of any real key (usually a
// pasting mistake), and the last two change when a response escapes them.
// The message never quotes the value.
func checkValue(value []byte) error {
	if err := checkSize(value); err != nil {
		return err
	}
	for _, c := range value {
		switch {
		case c < ' ' || c == 0x7f:
			return errControl
		case c == ' ':
			return twokey.Errorf(twokey.EBadPayload, "secret value contains a space; API keys have none: seal the key itself, without its header's prefix (such as \"Bearer \") or surrounding blanks")
		case c >= 0x80:
			return twokey.Errorf(twokey.EBadPayload, "secret value contains a non-ASCII byte; API keys are printable ASCII: check that you pasted the key itself (no curly quotes or other typographic characters)")
		case c == '"' || c == '\\':
			return twokey.Errorf(twokey.EBadPayload, "secret value contains a double quote or a backslash; API keys are letters, digits and punctuation without these: check that you pasted the key itself, not a quoted or escaped string")
		}
	}
	return nil
}

// checkInjectable reports why a stored value cannot be sent in an HTTP
// header. It is looser than checkValue, so that a key stored under an
// older rule keeps working: only control characters are refused.
func checkInjectable(value []byte) error {
	if err := checkSize(value); err != nil {
		return err
	}
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return errControl
		}
	}
	return nil
}

var errControl = twokey.Errorf(twokey.EBadPayload, "secret value contains a control character (such as CR, LF, tab or NUL), so it cannot be sent in an HTTP header; seal the key without a trailing newline")

func checkSize(value []byte) error {
	if len(value) == 0 {
		return twokey.Errorf(twokey.EBadPayload, "secret value is empty")
	}
	if len(value) > MaxSecretSize {
		return twokey.Errorf(twokey.EBadPayload, "secret value is too large: a key may be at most %d bytes (8 KiB)", MaxSecretSize)
	}
	return nil
}
