package twokey_test

import (
	"os"
	"os/exec"
	"regexp"
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

// TestBboltOnlyInStore enforces docs/architecture.md: only store imports
// bbolt, and internal/testutil, which checks the file read-only in tests;
// only store imports etcd's client, and internal/etcdtest and
// internal/etcddev its server.
// (The other rules follow dependencies; this one names direct imports, as
// everything above store reaches bbolt through it.)
func TestBboltOnlyInStore(t *testing.T) {
	if testing.Short() {
		t.Skip("go list is slow")
	}
	out, err := exec.Command("go", "list", "-e", "-f",
		`{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{mod + "/store": true, mod + "/internal/testutil": true}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || allowed[f[0]] {
			continue
		}
		for _, imp := range f[1:] {
			if imp == "go.etcd.io/bbolt" || strings.HasPrefix(imp, "go.etcd.io/bbolt/") {
				t.Errorf("%s imports %s: only store (and internal/testutil) may (docs/architecture.md)", f[0], imp)
			}
			if strings.HasPrefix(imp, "go.etcd.io/etcd/") && f[0] != mod+"/internal/etcdtest" && f[0] != mod+"/internal/etcddev" {
				t.Errorf("%s imports %s: only store (and internal/etcdtest and internal/etcddev, the test and demo clusters) may (docs/architecture.md)", f[0], imp)
			}
		}
	}
}

// TestPackageTable holds every package to its row of the table in
// docs/architecture.md: each package of the module has a row, and each of
// its direct imports of another twokey package is one its "may import"
// column lists (a comma-separated list of packages; "twokey" is the root,
// "—" none, "anything" any). The table is the design; this test is what
// keeps the code to it.
func TestPackageTable(t *testing.T) {
	if testing.Short() {
		t.Skip("go list is slow")
	}
	doc, err := os.ReadFile("docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z/]+)` \\|[^|]*\\| ([^|]+) \\|$")
	allowed := map[string]map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		may := map[string]bool{}
		for _, p := range strings.Split(m[2], ",") {
			may[strings.TrimSpace(p)] = true
		}
		allowed[m[1]] = may
	}
	if len(allowed) < 10 {
		t.Fatalf("found %d package rows in docs/architecture.md; the table's layout changed", len(allowed))
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	name := func(path string) string {
		if path == mod {
			return "twokey"
		}
		return strings.TrimPrefix(path, mod+"/")
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := name(f[0])
		may, ok := allowed[pkg]
		if !ok {
			t.Errorf("package %s has no row in docs/architecture.md's table: say its one job and what it may import", pkg)
			continue
		}
		if may["anything"] {
			continue
		}
		for _, imp := range f[1:] {
			if imp != mod && !strings.HasPrefix(imp, mod+"/") {
				continue
			}
			if !may[name(imp)] {
				t.Errorf("%s imports %s, which its row in docs/architecture.md does not allow", pkg, name(imp))
			}
		}
	}
}
