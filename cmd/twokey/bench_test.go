package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchQuick runs 'twokey bench --quick --scales 1' as a process, the
// binary testscript puts on PATH (this test binary, dispatching on its
// name), so that the restart phase takes its real path: it starts
// 'twokey serve' as a child, reads its "listening on" line and measures
// its memory. TWOKEY_CONFIG names a file that does not exist: the child
// would refuse to start with it, so the run passing shows the bench
// keeps the caller's TWOKEY_* settings away from its own server.
func TestBenchQuick(t *testing.T) {
	exe, err := exec.LookPath("twokey")
	if err != nil {
		t.Fatalf("testscript puts twokey on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	out := filepath.Join(dir, "bench.md")
	cmd := exec.CommandContext(ctx, exe, "bench", "--quick", "--scales", "1", "--tmp", dir, "--out", out, "--timeout", "90s")
	cmd.Env = append(os.Environ(), "TWOKEY_CONFIG="+filepath.Join(dir, "no-such-config.yaml"), "TWOKEY_HOME="+filepath.Join(dir, "home"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("twokey bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	md := stdout.String()
	file, err := os.ReadFile(out)
	if err != nil || string(file) != md {
		t.Fatalf("--out %s: %v; it should hold the table printed", out, err)
	}
	for _, want := range []string{"QUICK RUN", "C = ceiling per approval", "ideal group commit", "6. restart with the data loaded", "**Targets**",
		"anonymous memory after that restart < 100 MiB: "} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	// The restart ran as a child process: its resident memory is its own,
	// not the heap growth of this one.
	if strings.Contains(md, "in process") {
		t.Errorf("the restart ran in process, not as a child 'twokey serve':\n%s", md)
	}
	if !strings.Contains(stderr.String(), "1x: restart with") {
		t.Errorf("no restart progress line on stderr:\n%s", stderr.String())
	}
	// The temp data directories are gone.
	left, _ := filepath.Glob(filepath.Join(dir, "twokey-bench-*"))
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
