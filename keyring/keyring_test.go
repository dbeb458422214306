package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/store"
)

// openStore opens the bbolt file of dir, closed at the end of the test
// unless the test closed it.
func openStore(t *testing.T, dir string) store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, "twokey.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// firstStart makes the keys of a new data directory and closes its store.
func firstStart(t *testing.T) (dir string, k *Keyring) {
	t.Helper()
	dir = t.TempDir()
	st := openStore(t, dir)
	k, err := Open(st, Source{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return dir, k
}

// TestFirstStartThenReopen: the first Open makes the master key file (mode
// 0600) and the gateway's keys; a later one with the same master key, from
// the file or given itself, opens the same signing, box and token keys and
// makes nothing.
func TestFirstStartThenReopen(t *testing.T) {
	dir, first := firstStart(t)
	keys, file := first.Created()
	if !keys || file != filepath.Join(dir, MasterKeyFileName) {
		t.Fatalf("first start created keys %v, master key file %q", keys, file)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v %v", fi, err)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []Source{
		{DataDir: dir},
		{DataDir: dir, File: file},
		{DataDir: dir, Key: strings.TrimSpace(string(raw)), File: filepath.Join(dir, "absent")},
	} {
		st := openStore(t, dir)
		k, err := Open(st, src)
		st.Close()
		if err != nil {
			t.Fatalf("reopen with %+v: %v", src, err)
		}
		if keys, file := k.Created(); keys || file != "" {
			t.Fatalf("reopen created keys %v, file %q", keys, file)
		}
		if k.Gateway().KeyID() != first.Gateway().KeyID() {
			t.Fatal("reopen has another gateway key")
		}
		pub, priv := k.BoxKeys()
		fpub, fpriv := first.BoxKeys()
		if *pub != *fpub || *priv != *fpriv || !bytes.Equal(k.TokenKey(), first.TokenKey()) {
			t.Fatal("reopen has another box or token key")
		}
		if k.Vault() == nil {
			t.Fatal("no vault")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "absent")); !os.IsNotExist(err) {
		t.Fatal("a given master key made a key file")
	}
}

// meta reads the keyring's entries, to see that a refused Open changed
// none of them.
func meta(t *testing.T, st store.Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, k := range []string{metaMasterCheck, metaGateway, metaTokenKey} {
		v, err := st.Get(store.Meta, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

// leaks says which form of secret, if any, s contains.
func leaks(s string, secret []byte) string {
	for form, needle := range map[string]string{
		"raw": string(secret), "hex": hex.EncodeToString(secret),
		"base64": base64.StdEncoding.EncodeToString(secret), "base64url": base64.RawURLEncoding.EncodeToString(secret),
	} {
		if strings.Contains(s, needle) {
			return form
		}
	}
	return ""
}

// TestWrongMasterKey: another master key, given or in a file, is refused
// with what to do, before anything is written; the error never holds the
// key. Without any key an existing directory says how to supply it and no
// new key is made.
func TestWrongMasterKey(t *testing.T) {
	dir, _ := firstStart(t)
	wrong := make([]byte, 32)
	rand.Read(wrong)
	wrongFile := filepath.Join(t.TempDir(), "wrong.key")
	if err := os.WriteFile(wrongFile, []byte(base64.StdEncoding.EncodeToString(wrong)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]Source{
		"given":   {DataDir: dir, Key: base64.StdEncoding.EncodeToString(wrong)},
		"in file": {DataDir: dir, File: wrongFile},
	} {
		t.Run(name, func(t *testing.T) {
			st := openStore(t, dir)
			before := meta(t, st)
			k, err := Open(st, src)
			if err == nil {
				t.Fatalf("a wrong master key opened %v", k)
			}
			msg := err.Error()
			for _, want := range []string{"different master key", "nothing was changed", dir, "TWOKEY_MASTER_KEY", "--master-key-file"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not say %q: %s", want, msg)
				}
			}
			if form := leaks(msg, wrong); form != "" {
				t.Fatalf("error holds the key (%s): %s", form, msg)
			}
			after := meta(t, st)
			for k := range before {
				if !bytes.Equal(before[k], after[k]) {
					t.Fatalf("a refused Open changed %s", k)
				}
			}
		})
	}

	file := filepath.Join(dir, MasterKeyFileName)
	if err := os.Rename(file, file+".bak"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(openStore(t, dir), Source{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "TWOKEY_MASTER_KEY") || !strings.Contains(err.Error(), "--master-key-file") {
		t.Fatalf("no master key for an existing directory: %v", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatal("Open made a new master key for an existing directory")
	}
}

// TestTamperedSealedKeys: a sealed entry that was changed, cut short, or
// moved under another entry's name does not open, though the master key is
// right, and the error says what to do.
func TestTamperedSealedKeys(t *testing.T) {
	for _, tt := range []struct {
		name, what string
		tamper     func(m map[string][]byte) (key string, value []byte)
	}{
		{"a flipped bit in the gateway keys", "gateway keys", func(m map[string][]byte) (string, []byte) {
			v := bytes.Clone(m[metaGateway])
			v[len(v)/2] ^= 1
			return metaGateway, v
		}},
		{"the token key cut short", "token key", func(m map[string][]byte) (string, []byte) {
			return metaTokenKey, m[metaTokenKey][:10]
		}},
		{"the token key under the gateway keys' name", "gateway keys", func(m map[string][]byte) (string, []byte) {
			return metaGateway, m[metaTokenKey]
		}},
		{"the gateway keys under the token key's name", "token key", func(m map[string][]byte) (string, []byte) {
			return metaTokenKey, m[metaGateway]
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := firstStart(t)
			st := openStore(t, dir)
			key, value := tt.tamper(meta(t, st))
			if err := st.Put(store.Meta, key, value); err != nil {
				t.Fatal(err)
			}
			k, err := Open(st, Source{DataDir: dir})
			if err == nil {
				t.Fatalf("a tampered %s opened %v", tt.what, k)
			}
			if msg := err.Error(); !strings.Contains(msg, "sealed "+tt.what) || !strings.Contains(msg, "restore twokey.db from a backup") {
				t.Fatalf("error: %s", msg)
			}
		})
	}
}

// TestKeyringPrintsNoKey: fmt shows no key of a Keyring.
func TestKeyringPrintsNoKey(t *testing.T) {
	_, k := firstStart(t)
	pub, priv := k.BoxKeys()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		out := fmt.Sprintf(verb, k)
		for name, secret := range map[string][]byte{"token key": k.TokenKey(), "box private key": priv[:], "box public key": pub[:],
			"signing key": k.Gateway().Private} {
			if form := leaks(out, secret); form != "" {
				t.Fatalf("%s shows the %s (%s): %s", verb, name, form, out)
			}
		}
	}
}
