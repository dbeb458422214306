package conversation

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/twokey/twokey"
)

// KeyIDLen is the length of a key id: 32 bytes in unpadded base64url.
const KeyIDLen = 43

// KeyID returns the canonical key id of an Ed25519 public key.
func KeyID(pub ed25519.PublicKey) string {
	return base64.RawURLEncoding.EncodeToString(pub)
}

// ParseKeyID decodes a key id and insists on its canonical spelling: another
// encoding of the same 32 bytes (padding, standard alphabet, non-zero spare
// bits) is refused, so that one key can never be counted under two names,
// and so is a key no signature can be trusted for (see usableKey).
func ParseKeyID(id string) (ed25519.PublicKey, error) {
	if len(id) != KeyIDLen {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "key id %q is not 43 characters of base64url", twokey.Clip(id))
	}
	raw, err := rawURLStrict.DecodeString(id)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "key id %q is not a base64url-encoded 32-byte key", twokey.Clip(id))
	}
	if KeyID(raw) != id {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "key id %q is not in canonical form", twokey.Clip(id))
	}
	if !usableKey(raw) {
		return nil, twokey.Errorf(twokey.EBadEnvelope, "key id %q is not a usable Ed25519 public key (not a canonical curve point, or one of small order)", twokey.Clip(id))
	}
	return ed25519.PublicKey(raw), nil
}

// keyCacheSize bounds keyCache. Key ids are chosen by whoever posts, so the
// cache may never grow with them: past this many keys, the oldest is
// forgotten (and parsed again when it comes back).
const keyCacheSize = 4096

// keys remembers the parsed key of each key id that has verified a
// signature, so that a signer's key id is decoded and checked (canonical
// spelling, usableKey) once, not per envelope. crypto/ed25519 takes the
// key as bytes and decodes the curve point itself on every Verify.
var keys = newKeyCache(keyCacheSize)

// keyCache is a bounded map from key id to key: lookups take no lock;
// additions are serialized and evict in first-in, first-out order.
type keyCache struct {
	m    sync.Map // key id -> *[ed25519.PublicKeySize]byte, never changed once stored
	mu   sync.Mutex
	ring []string // the ids in m, in the order they were added
	next int      // where the next id goes in ring
}

func newKeyCache(size int) *keyCache { return &keyCache{ring: make([]string, 0, size)} }

// get returns the key of id and true, or nil and false if id is not kept.
// The key is shared: it must not be changed.
func (c *keyCache) get(id string) (*[ed25519.PublicKeySize]byte, bool) {
	if v, ok := c.m.Load(id); ok {
		return v.(*[ed25519.PublicKeySize]byte), true
	}
	return nil, false
}

// add keeps a copy of pub, the key id's parsed key, evicting the oldest
// id when the cache is full.
func (c *keyCache) add(id string, pub *[ed25519.PublicKeySize]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m.Load(id); ok {
		return
	}
	k := *pub
	if len(c.ring) < cap(c.ring) {
		c.ring = append(c.ring, id)
	} else {
		c.m.Delete(c.ring[c.next])
		c.ring[c.next] = id
		c.next = (c.next + 1) % len(c.ring)
	}
	c.m.Store(id, &k)
}

// len returns the number of keys kept.
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ring)
}

// Identity is an Ed25519 key pair held by a person or a program.
type Identity struct {
	Name    string
	Private ed25519.PrivateKey
}

// NewIdentity makes a fresh identity.
func NewIdentity(name string) (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Identity{Name: name, Private: priv}, nil
}

// Public returns the identity's public key.
func (id *Identity) Public() ed25519.PublicKey { return id.Private.Public().(ed25519.PublicKey) }

// KeyID returns the identity's key id.
func (id *Identity) KeyID() string { return KeyID(id.Public()) }

// identityVersion is the version of the identity file format that Save
// writes and LoadIdentity reads; LoadIdentity refuses any other.
const identityVersion = 1

// identityFile is the on-disk form of an identity.
type identityFile struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	KeyID   string `json:"key_id"`
	Seed    string `json:"seed"` // base64 of the 32-byte Ed25519 seed
}

// Save writes the identity to path with mode 0600, refusing to overwrite.
func (id *Identity) Save(path string) error {
	data, err := json.MarshalIndent(identityFile{Version: identityVersion, Name: id.Name, KeyID: id.KeyID(),
		Seed: base64.StdEncoding.EncodeToString(id.Private.Seed())}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if os.IsExist(err) {
			return fmt.Errorf("identity file %s already exists; choose another --out or remove it first", path)
		}
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadIdentity reads an identity file, refusing one readable by others.
func LoadIdentity(path string) (*Identity, error) {
	st, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("no identity at %s; make one with 'twokey id new --name NAME' or choose one with --identity FILE", path)
		}
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity file %s is readable by others (mode %o); fix it with 'chmod 600 %s'", path, st.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		identityFile
		Version *int `json:"version"` // absent is not version 0
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("identity file %s is not valid: %v", path, err)
	}
	if f.Version == nil || *f.Version != identityVersion {
		had := "has no version"
		if f.Version != nil {
			had = fmt.Sprintf("has version %d", *f.Version)
		}
		return nil, fmt.Errorf("identity file %s %s; this twokey reads version %d identity files (one written by a newer twokey needs that twokey)", path, had, identityVersion)
	}
	seed, err := base64.StdEncoding.DecodeString(f.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity file %s has no valid seed", path)
	}
	id := &Identity{Name: f.Name, Private: ed25519.NewKeyFromSeed(seed)}
	if f.KeyID != "" && f.KeyID != id.KeyID() {
		return nil, fmt.Errorf("identity file %s is corrupt: its key_id does not match its seed", path)
	}
	return id, nil
}
