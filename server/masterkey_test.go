package server_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/server"
)

// startAt starts a server over dir with the default configuration, as
// mod adjusts it, and returns what it printed.
func startAt(t *testing.T, dir string, mod func(*config.Config, *server.Deps)) (*server.Daemon, string, error) {
	var out bytes.Buffer
	cfg := config.Default()
	cfg.Addr, cfg.DataDir = "127.0.0.1:0", dir
	deps := server.Deps{Out: &out, LockTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(cfg, &deps)
	}
	d, err := server.Start(cfg, deps)
	return d, out.String(), err
}

func TestMasterKey(t *testing.T) {
	dir := t.TempDir()
	d, out, err := startAt(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"created database", "created master key " + filepath.Join(dir, "master.key"), "created gateway keys", "listening on http://127.0.0.1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("first start did not say %q:\n%s", want, out)
		}
	}
	key := filepath.Join(dir, "master.key")
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v %v", st, err)
	}
	gw := d.Engine().GatewayKey()
	d.Close()

	// A restart reuses everything and says nothing was created.
	d, out, err = startAt(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "created") || d.Engine().GatewayKey() != gw {
		t.Fatalf("restart made new keys:\n%s", out)
	}
	d.Close()

	dbPath := filepath.Join(dir, "twokey.db")
	before, _ := os.ReadFile(dbPath)

	// The wrong key refuses to start and changes nothing.
	wrong := make([]byte, 32)
	rand.Read(wrong)
	_, _, err = startAt(t, dir, func(c *config.Config, _ *server.Deps) { c.MasterKey = base64.StdEncoding.EncodeToString(wrong) })
	if err == nil || !strings.Contains(err.Error(), "different master key") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("wrong master key: %v", err)
	}
	after, _ := os.ReadFile(dbPath)
	if !bytes.Equal(before, after) {
		t.Fatal("a start with the wrong master key changed the database")
	}

	// No key at all, with an existing vault: say how to supply it.
	os.Rename(key, key+".bak")
	_, _, err = startAt(t, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "TWOKEY_MASTER_KEY") || !strings.Contains(err.Error(), "--master-key-file") {
		t.Fatalf("missing master key: %v", err)
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Fatal("a start without the key made a new one for an existing vault")
	}

	// The right key from the environment or another file works.
	raw, _ := os.ReadFile(key + ".bak")
	d, _, err = startAt(t, dir, func(c *config.Config, _ *server.Deps) { c.MasterKey = strings.TrimSpace(string(raw)) })
	if err != nil {
		t.Fatalf("key from env: %v", err)
	}
	d.Close()
	d, _, err = startAt(t, dir, func(c *config.Config, _ *server.Deps) { c.MasterKeyFile = key + ".bak" })
	if err != nil {
		t.Fatalf("key from --master-key-file: %v", err)
	}
	d.Close()
}

func TestDatabaseLockedByAnotherServer(t *testing.T) {
	dir := t.TempDir()
	d, _, err := startAt(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	start := time.Now()
	_, _, err = startAt(t, dir, func(_ *config.Config, d *server.Deps) { d.LockTimeout = 300 * time.Millisecond })
	if err == nil || !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), "twokey.db") {
		t.Fatalf("second server on the same data dir: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("the second start hung")
	}
}
