// Package keyring owns the master key and the gateway's own keys: it
// checks the master key against the data directory, unseals the vault, and
// makes (on first start) or opens the gateway's signing, box and token
// keys, kept sealed in the store.
//
// It is the one package that handles the master key: the server asks it
// for a Keyring and runs with the keys it holds, and never reads the
// master key, its check value or the sealed keys itself. The master key
// is dropped as soon as the vault is built from it.
package keyring

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"golang.org/x/crypto/curve25519"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/store"
	"github.com/twokey/twokey/vault"
)

// The keyring's entries in the store's Meta bucket. Each sealed entry is
// bound to its name by the vault's associated data, so one copied under
// another name does not open.
const (
	metaMasterCheck = "master_check" // vault.NewCheck: detects a wrong master key before anything changes
	metaGateway     = "gateway_keys" // the signing seed and the box private key, sealed
	metaTokenKey    = "token_key"    // the key that signs session tokens, sealed
)

// MasterKeyFileName is the master key file's name in the data directory,
// used when Source.File is empty.
const MasterKeyFileName = "master.key"

// Source says where the master key comes from.
type Source struct {
	// Key is the master key itself, base64 of 32 bytes (TWOKEY_MASTER_KEY
	// or master_key); it wins over File.
	Key string
	// File holds the key (master_key_file); default
	// <DataDir>/master.key, made with mode 0600 on first start.
	File string
	// DataDir is the data directory the store lives in; errors name it.
	DataDir string
}

// Keyring is the opened keys of one data directory. It never holds the
// master key: only the vault built from it.
type Keyring struct {
	vault    *vault.Vault
	gateway  *conversation.Identity
	boxPub   *[32]byte
	boxPriv  *[32]byte
	tokenKey []byte

	created     bool   // the gateway's keys were made by this Open
	createdFile string // the master key file this Open wrote, or ""
}

// gatewayKeys is the plaintext of the sealed metaGateway entry.
type gatewayKeys struct {
	SigningSeed []byte `json:"signing_seed"`
	BoxPrivate  []byte `json:"box_private"`
}

// Open loads the master key from src, checks it against st, and opens the
// gateway's keys. When st has no keys yet (a first start) it makes the
// master key file if there is none and no Key is given, then the gateway's
// keys, sealed, with the check value, in one commit. A master key other
// than the one the keys were made with is refused before anything is
// written; no error carries a key's bytes.
func Open(st store.Store, src Source) (*Keyring, error) {
	if src.File == "" {
		src.File = filepath.Join(src.DataDir, MasterKeyFileName)
	}
	check, err := st.Get(store.Meta, metaMasterCheck)
	if err != nil {
		return nil, err
	}
	first := check == nil
	key, createdFile, err := vault.LoadMasterKey(src.Key, src.File, first)
	if err != nil {
		return nil, err
	}
	v, err := vault.New(key)
	clear(key)
	if err != nil {
		return nil, err
	}
	if first {
		err := create(st, v)
		if errors.Is(err, store.ErrConflict) {
			// Another node sharing the store made the keys a moment
			// before: this one must hold the same master key.
			if check, err = st.Get(store.Meta, metaMasterCheck); err != nil {
				return nil, err
			}
			first = false
		} else if err != nil {
			return nil, err
		}
	}
	if !first {
		if err := v.VerifyCheck(check); err != nil {
			return nil, fmt.Errorf("%w; the server was started with a different master key than the one this data directory (%s) or shared store was created with. Supply the original with TWOKEY_MASTER_KEY or --master-key-file; nothing was changed", err, src.DataDir)
		}
	}
	k, err := open(st, v)
	if err != nil {
		return nil, err
	}
	k.created = first
	if createdFile {
		k.createdFile = src.File
	}
	return k, nil
}

// create makes the gateway's keys and the token key, seals them and
// commits them with the master key's check value.
func create(st store.Store, v *vault.Vault) error {
	check, err := v.NewCheck()
	if err != nil {
		return err
	}
	gk := gatewayKeys{SigningSeed: make([]byte, ed25519.SeedSize), BoxPrivate: make([]byte, 32)}
	tokenKey := make([]byte, 32)
	defer clear(tokenKey)
	defer clear(gk.SigningSeed)
	defer clear(gk.BoxPrivate)
	for _, b := range [][]byte{gk.SigningSeed, gk.BoxPrivate, tokenKey} {
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("make the gateway's keys: %w", err)
		}
	}
	raw, err := json.Marshal(gk)
	if err != nil {
		return err
	}
	sealedGW, err := v.Seal(raw, vault.AAD(metaGateway))
	clear(raw)
	if err != nil {
		return err
	}
	sealedTok, err := v.Seal(tokenKey, vault.AAD(metaTokenKey))
	if err != nil {
		return err
	}
	// Only where no keys are: two nodes of a shared store starting at
	// once make one set, and the other opens it.
	return st.Commit(&store.Write{Puts: []store.Put{
		{Bucket: store.Meta, Key: metaGateway, Value: sealedGW},
		{Bucket: store.Meta, Key: metaTokenKey, Value: sealedTok},
		{Bucket: store.Meta, Key: metaMasterCheck, Value: check},
	}, IfAbsent: []store.Put{{Bucket: store.Meta, Key: metaMasterCheck}}})
}

// damaged is the error of a sealed entry that is missing or does not open
// although the master key's check did.
func damaged(what string, err error) error {
	return fmt.Errorf("the database's sealed %s cannot be opened (%w), though the master key is right: the record is missing, damaged or was changed; restore twokey.db from a backup", what, err)
}

// open unseals the gateway's keys and the token key.
func open(st store.Store, v *vault.Vault) (*Keyring, error) {
	sealedGW, err := st.Get(store.Meta, metaGateway)
	if err == nil && sealedGW == nil {
		err = errors.New("no such record")
	}
	if err != nil {
		return nil, damaged("gateway keys", err)
	}
	raw, err := v.Open(sealedGW, vault.AAD(metaGateway))
	if err != nil {
		return nil, damaged("gateway keys", err)
	}
	var gk gatewayKeys
	err = json.Unmarshal(raw, &gk)
	clear(raw)
	defer clear(gk.SigningSeed)
	defer clear(gk.BoxPrivate)
	if err != nil || len(gk.SigningSeed) != ed25519.SeedSize || len(gk.BoxPrivate) != 32 {
		return nil, damaged("gateway keys", errors.New("malformed"))
	}
	sealedTok, err := st.Get(store.Meta, metaTokenKey)
	if err == nil && sealedTok == nil {
		err = errors.New("no such record")
	}
	if err != nil {
		return nil, damaged("token key", err)
	}
	tokenKey, err := v.Open(sealedTok, vault.AAD(metaTokenKey))
	if err != nil {
		return nil, damaged("token key", err)
	}
	if len(tokenKey) < 32 {
		return nil, damaged("token key", errors.New("too short"))
	}
	var priv, pub [32]byte
	copy(priv[:], gk.BoxPrivate)
	pubb, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return nil, damaged("gateway keys", err)
	}
	copy(pub[:], pubb)
	return &Keyring{
		vault:    v,
		gateway:  &conversation.Identity{Name: "gateway", Private: ed25519.NewKeyFromSeed(gk.SigningSeed)},
		boxPub:   &pub,
		boxPriv:  &priv,
		tokenKey: tokenKey,
	}, nil
}

// Vault returns the vault sealed under the master key. It seals and opens
// data but never hands out the key.
func (k *Keyring) Vault() *vault.Vault { return k.vault }

// Gateway returns the gateway's signing identity.
func (k *Keyring) Gateway() *conversation.Identity { return k.gateway }

// BoxKeys returns the gateway's X25519 box key pair, which API keys are
// sealed to.
func (k *Keyring) BoxKeys() (pub, priv *[32]byte) { return k.boxPub, k.boxPriv }

// TokenKey returns the key that signs session tokens.
func (k *Keyring) TokenKey() []byte { return k.tokenKey }

// Created says what Open made: whether it created the gateway's keys (a
// first start), and the master key file it wrote, or "".
func (k *Keyring) Created() (keys bool, masterKeyFile string) { return k.created, k.createdFile }

// Format keeps the keys out of every fmt verb.
func (k *Keyring) Format(f fmt.State, _ rune) { io.WriteString(f, "keyring.Keyring{[redacted]}") }

// LogValue keeps the keys out of slog.
func (k *Keyring) LogValue() slog.Value { return slog.StringValue("keyring.Keyring{[redacted]}") }
