package twokey_test

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/twokey/twokey"

// TestImportRules enforces docs/architecture.md: domain packages know
// nothing of HTTP serving or bbolt, and the CLI's client and the TUI never
// reach the database.
func TestImportRules(t *testing.T) {
	if testing.Short() {
		t.Skip("go list is slow")
	}
	rules := map[string][]string{
		"conversation": {"net/http", "go.etcd.io/bbolt", mod + "/store", mod + "/engine", mod + "/server"},
		"gate":         {"net/http", "go.etcd.io/bbolt", mod + "/store", mod + "/engine", mod + "/server"},
		"templates":    {"net/http", "go.etcd.io/bbolt", mod + "/store", mod + "/engine"},
		"catalog":      {"net/http", "go.etcd.io/bbolt", mod + "/store", mod + "/engine"},
		"clock":        {"net/http", "go.etcd.io/bbolt"},
		"vault":        {"go.etcd.io/bbolt", mod + "/store", mod + "/engine"},
		"api":          {"go.etcd.io/bbolt", mod + "/store", mod + "/engine", mod + "/server"},
		"engine":       {mod + "/server", mod + "/client", mod + "/tui"},
		"client":       {"go.etcd.io/bbolt", mod + "/store", mod + "/engine", mod + "/server"},
		"tui":          {"go.etcd.io/bbolt", mod + "/store", mod + "/engine", mod + "/server"},
	}
	for pkg, forbidden := range rules {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "no Go files") || strings.Contains(string(out), "cannot find") {
				continue
			}
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		deps := map[string]bool{}
		for _, d := range strings.Fields(string(out)) {
			deps[d] = true
		}
		for _, f := range forbidden {
			if deps[f] {
				t.Errorf("%s imports %s (forbidden by docs/architecture.md)", pkg, f)
			}
		}
	}
}
