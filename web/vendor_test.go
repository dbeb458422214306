package web

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The vendored crypto (web/deps/README.md): the versions pinned, and the
// committed bundle what scripts/web-deps.sh wrote from them. No network.

// vendored are the npm packages bundled into app/vendor/noble.js, at the
// one version each is pinned to.
var vendored = map[string]string{"@noble/hashes": "2.4.0", "@noble/ciphers": "2.4.0"}

var exactVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type lockfile struct {
	LockfileVersion int `json:"lockfileVersion"`
	Packages        map[string]struct {
		Version      string            `json:"version"`
		Integrity    string            `json:"integrity"`
		Dependencies map[string]string `json:"dependencies"`
		DevDeps      map[string]string `json:"devDependencies"`
	} `json:"packages"`
}

// TestVendorPins: package.json pins each package exactly (the noble ones
// at 2.4.0, the bundler too), and the lockfile holds those versions with
// their integrity.
func TestVendorPins(t *testing.T) {
	var pkg struct {
		Dependencies    map[string]string `json:"dependencies"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	readJSON(t, "deps/package.json", &pkg)
	var lock lockfile
	readJSON(t, "deps/package-lock.json", &lock)
	if len(pkg.Dependencies) != len(vendored) {
		t.Errorf("deps/package.json depends on %v; the vendored packages are %v", pkg.Dependencies, vendored)
	}
	for name, want := range vendored {
		if got := pkg.Dependencies[name]; got != want {
			t.Errorf("deps/package.json: %s is %q; want exactly %q", name, got, want)
		}
	}
	all := map[string]string{}
	for n, v := range pkg.Dependencies {
		all[n] = v
	}
	for n, v := range pkg.DevDependencies {
		all[n] = v
	}
	if _, ok := pkg.DevDependencies["esbuild"]; !ok {
		t.Error("deps/package.json does not pin the bundler, esbuild")
	}
	for name, v := range all {
		if !exactVersion.MatchString(v) {
			t.Errorf("deps/package.json: %s is %q, not an exact version", name, v)
		}
		p, ok := lock.Packages["node_modules/"+name]
		if !ok || p.Version != v {
			t.Errorf("deps/package-lock.json: %s is %q; package.json pins %q (run npm install --package-lock-only in web/deps)", name, p.Version, v)
		}
		if !strings.HasPrefix(p.Integrity, "sha512-") {
			t.Errorf("deps/package-lock.json: %s has no sha512 integrity", name)
		}
	}
	root := lock.Packages[""]
	if len(root.Dependencies) != len(pkg.Dependencies) || len(root.DevDeps) != len(pkg.DevDependencies) {
		t.Error("deps/package-lock.json was not made from this package.json")
	}
}

// TestVendorSums: every file in app/vendor is listed in its SHA256SUMS with
// its hash, the npm integrity it records is
// the lockfile's, and the files are what the binary embeds.
func TestVendorSums(t *testing.T) {
	var lock lockfile
	readJSON(t, "deps/package-lock.json", &lock)
	f, err := os.Open("app/vendor/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	integrity := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			// "# NAME@VERSION sha512-..." lines record the npm tarballs.
			if f := strings.Fields(rest); len(f) == 2 && strings.HasPrefix(f[1], "sha512-") {
				integrity[f[0]] = f[1]
			}
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("SHA256SUMS: line %q is not \"<sha256>  <file>\"", line)
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := sums["noble.js"]; !ok {
		t.Fatal("SHA256SUMS does not list noble.js")
	}
	for _, lic := range []string{"LICENSE.noble-hashes", "LICENSE.noble-ciphers"} {
		if _, ok := sums[lic]; !ok {
			t.Errorf("SHA256SUMS does not list %s", lic)
		}
	}

	entries, err := os.ReadDir("app/vendor")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "SHA256SUMS" {
			continue
		}
		if _, ok := sums[e.Name()]; !ok {
			t.Errorf("app/vendor/%s is not in SHA256SUMS (write the directory with scripts/web-deps.sh only)", e.Name())
		}
	}
	for name, want := range sums {
		data, err := os.ReadFile(filepath.Join("app/vendor", name))
		if err != nil {
			t.Errorf("SHA256SUMS lists %s: %v", name, err)
			continue
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != want {
			t.Errorf("app/vendor/%s does not match SHA256SUMS: it was edited by hand, or SHA256SUMS is stale; run make web-deps", name)
		}
		embedded, err := fs.ReadFile(App, "vendor/"+name)
		if err != nil || !bytes.Equal(embedded, data) {
			t.Errorf("the embedded vendor/%s is not the file on disk (%v)", name, err)
		}
	}

	for name, version := range vendored {
		key := name + "@" + version
		want := lock.Packages["node_modules/"+name].Integrity
		if got := integrity[key]; got == "" || got != want {
			t.Errorf("SHA256SUMS records %s as %q; the lockfile's integrity is %q", key, got, want)
		}
	}

	noble, err := os.ReadFile("app/vendor/noble.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"@noble/hashes 2.4.0", "@noble/ciphers 2.4.0", "export {", "blake2b", "hsalsa", "xsalsa20poly1305"} {
		if !bytes.Contains(noble, []byte(want)) {
			t.Errorf("noble.js does not contain %q", want)
		}
	}
}
