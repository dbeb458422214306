package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// maxKeyFileSize bounds what LoadMasterKey reads: a key file holds 45 bytes.
const maxKeyFileSize = 1024

const keyHowTo = "set TWOKEY_MASTER_KEY to a base64-encoded 32-byte key or point --master-key-file at a file holding one"

// LoadMasterKey finds the master key. envValue (standard or URL-safe base64,
// padded or not, 32 bytes decoded) wins if non-empty; otherwise the file at
// path, which must not be readable by group or others.
//
// If the file does not exist and create is true, LoadMasterKey makes 32
// random bytes, writes them base64-encoded with a trailing newline to path
// with mode 0600 (creating the parent directory with mode 0700 if missing;
// written to a temporary file and renamed into place) and returns
// created=true. If create is false, the error says how to supply the key.
// Errors name the key's source but never its value.
func LoadMasterKey(envValue, path string, create bool) (key []byte, created bool, err error) {
	if envValue != "" {
		key, err := decodeKey([]byte(envValue))
		if err != nil {
			return nil, false, fmt.Errorf("vault: TWOKEY_MASTER_KEY %v", err)
		}
		return key, false, nil
	}
	if path == "" {
		return nil, false, errors.New("vault: no master key: " + keyHowTo)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !create {
			return nil, false, fmt.Errorf("vault: no master key: %s does not exist; %s (the key this data directory was created with)", path, keyHowTo)
		}
		key, err := createKeyFile(path)
		if err != nil {
			return nil, false, err
		}
		return key, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("vault: master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("vault: master key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, false, fmt.Errorf("vault: master key file %s has mode %04o, open to other users; run 'chmod 600 %s' and start again", path, perm, path)
	}
	if fi.Size() > maxKeyFileSize {
		return nil, false, fmt.Errorf("vault: master key file %s is not a master key: it must hold 32 bytes encoded as base64", path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("vault: master key file: %w", err)
	}
	defer clear(raw)
	key, err = decodeKey(raw)
	if err != nil {
		return nil, false, fmt.Errorf("vault: master key file %s %v", path, err)
	}
	return key, false, nil
}

// decodeKey decodes a base64 master key. Its errors never contain s.
func decodeKey(s []byte) ([]byte, error) {
	s = bytes.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		buf := make([]byte, enc.DecodedLen(len(s)))
		n, err := enc.Decode(buf, s)
		if err != nil {
			clear(buf)
			continue
		}
		if n != MasterKeySize {
			clear(buf)
			return nil, fmt.Errorf("is not a master key: it decodes to %d bytes, want %d (make one with 'openssl rand -base64 32')", n, MasterKeySize)
		}
		return buf[:n:n], nil
	}
	return nil, errors.New("is not a master key: it is not valid base64 of 32 bytes (make one with 'openssl rand -base64 32')")
}

// createKeyFile writes a new random key to path atomically.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("vault: making a master key: %w", err)
	}
	enc := make([]byte, base64.StdEncoding.EncodedLen(MasterKeySize)+1)
	base64.StdEncoding.Encode(enc, key)
	enc[len(enc)-1] = '\n'
	defer clear(enc)

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("vault: creating the master key's directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".master-key-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("vault: creating the master key file: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) ([]byte, error) {
		f.Close()
		os.Remove(tmp)
		clear(key)
		return nil, fmt.Errorf("vault: writing the master key file %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fail(err)
	}
	if _, err := f.Write(enc); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	// Make the rename durable; not every platform can sync a directory.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return key, nil
}
