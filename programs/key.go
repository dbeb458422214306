package programs

// Program keys: their form, how they are made and hashed, and how a
// presented key is checked and rotated.

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/twokey/twokey"
)

// KeyPrefix starts every program key, so that a leaked one is recognisable
// (and secret scanners can find it).
const KeyPrefix = "tk_"

// KeyBytes is the entropy of a key; KeyChars its base62 length.
const (
	KeyBytes = 32
	KeyChars = 43 // 62^43 > 2^256
	// DisplayLen is how much of a key is kept and shown: the prefix and
	// six characters, e.g. "tk_AbC12x".
	DisplayLen = len(KeyPrefix) + 6
	// MaxOldKeys bounds the rotated-out keys kept per program.
	MaxOldKeys = 4
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewKey returns a fresh key: KeyPrefix and 32 random bytes in base62.
func NewKey() string {
	b := make([]byte, KeyBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	n := new(big.Int).SetBytes(b)
	clear(b)
	out := make([]byte, KeyChars)
	base, mod := big.NewInt(62), new(big.Int)
	for i := KeyChars - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = base62[mod.Int64()]
	}
	return KeyPrefix + string(out)
}

// LooksLikeKey reports whether s has the form of a program key.
func LooksLikeKey(s string) bool {
	if len(s) != len(KeyPrefix)+KeyChars || !strings.HasPrefix(s, KeyPrefix) {
		return false
	}
	for i := len(KeyPrefix); i < len(s); i++ {
		if strings.IndexByte(base62, s[i]) < 0 {
			return false
		}
	}
	return true
}

// Hash is the stored form of a key: hex SHA-256 of the whole key.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Display is the part of a key that may be shown and logged.
func Display(key string) string {
	if len(key) < DisplayLen {
		return key
	}
	return key[:DisplayLen]
}

// Key is one hashed key of a program.
type Key struct {
	Hash      string    `json:"hash"`   // hex SHA-256 of the whole key
	Prefix    string    `json:"prefix"` // the first DisplayLen characters
	CreatedAt time.Time `json:"created_at"`
	// Until is set when the key was rotated out: it stays valid until then.
	Until time.Time `json:"until,omitzero"`
}

// Rotate gives the program a new key. The old one stays valid for grace
// (zero: it stops at once). It returns the new key, shown once. The new key
// is indexed (and the keys it pushes out unindexed) only once the change
// is saved, so a failed save leaves every key as it was.
func (r *Registry) Rotate(name string, grace time.Duration) (*Program, string, error) {
	if grace < 0 || grace > MaxGrace {
		return nil, "", twokey.Errorf(twokey.EBadPayload, "grace must be between 0 and 30d")
	}
	now := r.now()
	key := NewKey()
	var dropped []string
	p, err := r.change(name, func(p *Program) error {
		dropped = nil
		old := slices.Clone(p.Keys)
		for i := range old {
			if old[i].Until.IsZero() || old[i].Until.After(now.Add(grace)) {
				old[i].Until = now.Add(grace)
			}
		}
		p.Keys = append([]Key{{Hash: Hash(key), Prefix: Display(key), CreatedAt: now}}, old...)
		if len(p.Keys) > 1+MaxOldKeys {
			for _, k := range p.Keys[1+MaxOldKeys:] {
				dropped = append(dropped, k.Hash)
			}
			p.Keys = p.Keys[:1+MaxOldKeys]
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	if r.byName[name] != nil { // not deleted meanwhile
		r.byHash[Hash(key)] = name
		for _, h := range dropped {
			if r.byHash[h] == name {
				delete(r.byHash, h)
			}
		}
	}
	r.mu.Unlock()
	return p, key, nil
}

// MaxGrace is the longest a rotated-out key may stay valid.
const MaxGrace = 30 * 24 * time.Hour

// DefaultGrace is how long a rotated-out key stays valid when the caller
// does not say (the CLI's --grace default and the management API's): none,
// so that rotating a key that leaked ends it at once; a grace for the
// programs still holding it is the caller's choice.
const DefaultGrace time.Duration = 0

// Authenticate returns the program a key belongs to, or unauthorized: for
// a key that is malformed, unknown (never issued, or deleted), rotated out,
// disabled or expired, each with a message saying which.
func (r *Registry) Authenticate(key string) (*Program, error) {
	if !LooksLikeKey(key) {
		return nil, twokey.Errorf(twokey.EUnauthorized, "no program key: send Authorization: Bearer %s... (an operator makes one with 'twokey keys create')", KeyPrefix)
	}
	h := Hash(key)
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.byName[r.byHash[h]]
	if p == nil {
		return nil, twokey.Errorf(twokey.EUnauthorized, "program key %s is not known here: it was never issued or has been deleted", Display(key))
	}
	var k *Key
	for i := range p.Keys {
		if subtle.ConstantTimeCompare([]byte(p.Keys[i].Hash), []byte(h)) == 1 {
			k = &p.Keys[i]
		}
	}
	switch {
	case k == nil:
		return nil, twokey.Errorf(twokey.EUnauthorized, "program key %s is not known here", Display(key))
	case !k.Until.IsZero() && !now.Before(k.Until):
		return nil, twokey.Errorf(twokey.EUnauthorized, "program key %s of %q was rotated out at %s; use its new key", k.Prefix, p.Name, k.Until.UTC().Format(time.RFC3339))
	}
	if err := usable(p, now); err != nil {
		return nil, err
	}
	p.LastUsed = now
	out := p.Clone()
	out.Keys = []Key{*k} // the key that was used
	return out, nil
}
