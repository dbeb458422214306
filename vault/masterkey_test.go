package vault

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestLoadMasterKeyCreatesAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "master.key")

	key, created, err := LoadMasterKey("", path, true)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false for a new file")
	}
	if len(key) != MasterKeySize || bytes.Equal(key, make([]byte, MasterKeySize)) {
		t.Fatalf("key is %d bytes (or all zero)", len(key))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("key file mode %04o, want 0600", got)
		}
		di, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := di.Mode().Perm(); got != 0o700 {
			t.Errorf("key directory mode %04o, want 0700", got)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.StdEncoding.EncodeToString(key) + "\n"; string(raw) != want {
		t.Errorf("file holds %q, want the key in base64 with a newline", raw)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".master-key-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	again, created, err := LoadMasterKey("", path, true)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("second call created a new key")
	}
	if !bytes.Equal(again, key) {
		t.Error("second call returned a different key")
	}
	if again, _, err := LoadMasterKey("", path, false); err != nil || !bytes.Equal(again, key) {
		t.Errorf("create=false on an existing file: err %v, same key %v", err, bytes.Equal(again, key))
	}
}

func TestLoadMasterKeyEnvWins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	fileKey, _, err := LoadMasterKey("", path, true)
	if err != nil {
		t.Fatal(err)
	}
	// Bytes chosen so the standard and URL encodings differ (+/ vs -_).
	envKey := bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:MasterKeySize]
	for _, enc := range []struct {
		name string
		e    *base64.Encoding
	}{
		{"std", base64.StdEncoding},
		{"raw std", base64.RawStdEncoding},
		{"url", base64.URLEncoding},
		{"raw url", base64.RawURLEncoding},
	} {
		t.Run(enc.name, func(t *testing.T) {
			env := " " + enc.e.EncodeToString(envKey) + "\n"
			got, created, err := LoadMasterKey(env, path, true)
			if err != nil {
				t.Fatal(err)
			}
			if created || !bytes.Equal(got, envKey) || bytes.Equal(got, fileKey) {
				t.Errorf("env did not win: created %v, got env key %v", created, bytes.Equal(got, envKey))
			}
		})
	}
	// With the env var set, no file is made.
	other := filepath.Join(t.TempDir(), "none.key")
	if _, created, err := LoadMasterKey(base64.StdEncoding.EncodeToString(envKey), other, true); err != nil || created {
		t.Fatalf("err %v, created %v", err, created)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("a key file was created though the env var was set: %v", err)
	}
}

func TestLoadMasterKeyMalformed(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key"))
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("L"), 33))
	bad := "this-is-not:base64-but-a-SECRETVALUE!"
	for _, tc := range []struct{ name, value string }{
		{"16 bytes", short}, {"33 bytes", long}, {"not base64", bad}, {"junk", "@@"},
	} {
		value := tc.value
		t.Run("env "+tc.name, func(t *testing.T) {
			_, _, err := LoadMasterKey(value, "", false)
			if err == nil {
				t.Fatal("malformed env value accepted")
			}
			if strings.Contains(err.Error(), value) {
				t.Errorf("error %q prints the value", err)
			}
			if !strings.Contains(err.Error(), "TWOKEY_MASTER_KEY") {
				t.Errorf("error %q does not name the env var", err)
			}
		})
		t.Run("file "+tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadMasterKey("", path, true)
			if err == nil {
				t.Fatal("malformed file accepted")
			}
			if strings.Contains(err.Error(), value) {
				t.Errorf("error %q prints the value", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadMasterKeyMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	for _, p := range []string{path, ""} {
		_, _, err := LoadMasterKey("", p, false)
		if err == nil {
			t.Fatalf("missing key %q: no error", p)
		}
		for _, want := range []string{"TWOKEY_MASTER_KEY", "--master-key-file"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("create=false made a file: %v", err)
	}
}

func TestLoadMasterKeyRefusesOpenModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		path := filepath.Join(t.TempDir(), "master.key")
		key := base64.StdEncoding.EncodeToString(testKey(9))
		if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadMasterKey("", path, true)
		if err == nil {
			t.Fatalf("mode %04o accepted", mode)
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: error %q does not name the file and the fix", mode, err)
		}
		if strings.Contains(err.Error(), key) {
			t.Errorf("error %q prints the key", err)
		}
	}
	// 0400 is narrower than 0600 and fine.
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(testKey(9))), 0o400); err != nil {
		t.Fatal(err)
	}
	if got, _, err := LoadMasterKey("", path, false); err != nil || !bytes.Equal(got, testKey(9)) {
		t.Errorf("mode 0400: err %v", err)
	}
}

func TestLoadMasterKeyDirectory(t *testing.T) {
	if _, _, err := LoadMasterKey("", t.TempDir(), true); err == nil {
		t.Fatal("a directory was accepted as the key file")
	}
}
