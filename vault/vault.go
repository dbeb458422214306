// Package vault keeps upstream API keys sealed: it opens keys sealed to the
// gateway's box key, stores them AES-256-GCM encrypted under the master key,
// and uses them only by injecting a credential into an outgoing request and
// redacting it from what comes back; it never hands out key bytes.
//
// The envelope written by [Vault.Seal] is versioned: byte 0 is the version
// (1), bytes 1..12 the random GCM nonce, the rest the ciphertext and tag. The
// associated data built by [AAD] binds each ciphertext to its record, so a
// ciphertext copied under another record does not open.
package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MasterKeySize is the size in bytes of the master key (AES-256).
const MasterKeySize = 32

const (
	envelopeVersion = 1
	nonceSize       = 12
	tagSize         = 16
	headerSize      = 1 + nonceSize
)

// ErrOpen is the error of every envelope that does not open: a wrong master
// key, wrong associated data, a changed or truncated blob, an unknown
// version. Errors wrapping it never carry the blob or plaintext bytes.
var ErrOpen = errors.New("vault: cannot open sealed data (wrong master key or tampered record)")

// Vault seals and opens data under the master key. It holds only the
// AES-256-GCM AEAD built from the key, never the key itself.
type Vault struct {
	aead cipher.AEAD
}

// New returns a Vault for the 32-byte master key. The Vault keeps no
// reference to master; the caller may zero it afterwards.
func New(master []byte) (*Vault, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("vault: master key is %d bytes, want %d", len(master), MasterKeySize)
	}
	key := make([]byte, MasterKeySize)
	copy(key, master)
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return &Vault{aead: aead}, nil
}

// Format keeps the cipher state out of every fmt verb.
func (v *Vault) Format(f fmt.State, _ rune) { io.WriteString(f, "vault.Vault{}") }

func (v *Vault) ready() error {
	if v == nil || v.aead == nil {
		return errors.New("vault: use of a Vault not made by vault.New")
	}
	return nil
}

// Seal encrypts plaintext in a versioned envelope: byte 0 is the version
// (1), then the 12-byte random nonce, then the GCM ciphertext and tag. aad
// binds the ciphertext to its record; Open needs the same aad.
func (v *Vault) Seal(plaintext, aad []byte) ([]byte, error) {
	if err := v.ready(); err != nil {
		return nil, err
	}
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = envelopeVersion
	if _, err := rand.Read(out[1:headerSize]); err != nil {
		return nil, fmt.Errorf("vault: reading a random nonce: %w", err)
	}
	return v.aead.Seal(out, out[1:headerSize], plaintext, aad), nil
}

// Open reverses Seal. A wrong key, wrong aad, a flipped bit, a truncated blob
// or an unknown version all fail with an error wrapping ErrOpen.
func (v *Vault) Open(blob, aad []byte) ([]byte, error) {
	if err := v.ready(); err != nil {
		return nil, err
	}
	if len(blob) < headerSize+tagSize {
		return nil, fmt.Errorf("%w: sealed data is truncated", ErrOpen)
	}
	if blob[0] != envelopeVersion {
		return nil, fmt.Errorf("%w: unsupported envelope version (this build reads version %d)", ErrOpen, envelopeVersion)
	}
	out, err := v.aead.Open(nil, blob[1:headerSize], blob[headerSize:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

const aadPrefix = "twokey-vault-v1"

// AAD builds associated data from parts: "twokey-vault-v1", then each part as
// a 4-byte big-endian length and its bytes, so ("ab", "c") and ("a", "bc")
// differ.
func AAD(parts ...string) []byte {
	n := len(aadPrefix)
	for _, p := range parts {
		n += 4 + len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, aadPrefix...)
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// SecretAAD is the associated data of a stored secret's value:
// AAD("secret", conversation, secretID, service).
func SecretAAD(conversation, secretID, service string) []byte {
	return AAD("secret", conversation, secretID, service)
}

const checkMarker = "twokey master key check v1"

// NewCheck returns a check value: a fixed marker sealed with
// AAD("master-check"). Stored beside the data, it lets VerifyCheck detect a
// wrong master key at start-up, before anything is changed.
func (v *Vault) NewCheck() ([]byte, error) {
	return v.Seal([]byte(checkMarker), AAD("master-check"))
}

// VerifyCheck returns nil if check was made by NewCheck under this master
// key, and otherwise an error (wrapping ErrOpen) saying the master key does
// not match this data directory.
func (v *Vault) VerifyCheck(check []byte) error {
	if err := v.ready(); err != nil {
		return err
	}
	p, err := v.Open(check, AAD("master-check"))
	if err == nil && subtle.ConstantTimeCompare(p, []byte(checkMarker)) == 1 {
		return nil
	}
	return errMasterMismatch{}
}

// errMasterMismatch is VerifyCheck's error: it is ErrOpen (errors.Is), in
// words of its own, so that "vault:" is said once.
type errMasterMismatch struct{}

func (errMasterMismatch) Error() string {
	return "vault: the master key does not match this data directory (its check value does not open)"
}

func (errMasterMismatch) Is(target error) bool { return target == ErrOpen }
