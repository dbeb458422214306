package tui_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// Waits are generous: polling costs nothing when things are fast, and CI
// is a slow 2-core machine running -race.
const (
	screenWait = 60 * time.Second
	quitWait   = 30 * time.Second
)

// tmuxSession drives a program in a private tmux server (its own socket,
// no configuration file), so the test never touches a user's tmux.
type tmuxSession struct {
	t      *testing.T
	socket string
	env    []string // the environment of the tmux server, hence of the program
}

func (s *tmuxSession) tmux(args ...string) (string, error) {
	cmd := exec.Command("tmux", append([]string{"-f", "/dev/null", "-L", s.socket}, args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// childEnv is the environment of the twokey processes the test starts:
// the test's own without any TWOKEY_* setting (a developer's server or
// identity must not leak in), with HOME and TWOKEY_HOME in dir, and extra.
func childEnv(dir string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TWOKEY_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	home, twokeyHome := filepath.Join(dir, "home"), filepath.Join(dir, "twokey-home")
	for _, d := range []string{home, twokeyHome} {
		_ = os.MkdirAll(d, 0o700) // a failure shows as the child's own error
	}
	return append(append(env, "HOME="+home, "TWOKEY_HOME="+twokeyHome), extra...)
}

func (s *tmuxSession) screen() string {
	out, err := s.tmux("capture-pane", "-p", "-t", "tui")
	if err != nil {
		return "(capture-pane: " + err.Error() + ": " + out + ")"
	}
	return out
}

// waitFor polls the screen (100 ms apart, up to screenWait) until it holds
// all of want.
func (s *tmuxSession) waitFor(what string, want ...string) string {
	s.t.Helper()
	var scr string
	for deadline := time.Now().Add(screenWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		scr = s.screen()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(scr, w)
		}
		if ok {
			return scr
		}
	}
	s.t.Fatalf("waiting for %s: %q not on the screen after %v:\n%s", what, want, screenWait, scr)
	return ""
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestTUIEndToEnd runs the real `twokey tui` in a pseudo-terminal (tmux)
// against a real server: alice submits with the CLI, bob presses `a` in
// the TUI, and the executed card appears.
func TestTUIEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and drives a terminal")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is not installed and CI is set: .ci/run installs it (apt-get install tmux)")
		}
		t.Skip("tmux is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "twokey")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/twokey/twokey/cmd/twokey").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice, bob := testutil.Identity(t, "alice"), testutil.Identity(t, "bob")
	aliceFile, bobFile := filepath.Join(dir, "alice.json"), filepath.Join(dir, "bob.json")
	for id, path := range map[*conversation.Identity]string{alice: aliceFile, bob: bobFile} {
		if err := id.Save(path); err != nil {
			t.Fatal(err)
		}
	}
	ca := testutil.Client(srv.URL(), alice, nil)
	rec, err := ca.CreateConversation(ctx, "ops", []conversation.Member{{Key: bob.KeyID(), Name: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	var created conversation.CreatePayload
	if err := json.Unmarshal(rec.Body, &created); err != nil {
		t.Fatal(err)
	}
	conv := created.Conversation
	if _, err := ca.Say(ctx, conv, "bob, I will ask httpbin what we send"); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.EnableGate(ctx, conv, 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddSecret(ctx, conv, "httpbin", "", "", 0, []byte("sk_e2e_0123456789")); err != nil {
		t.Fatal(err)
	}

	// bob's TUI, in a 120x40 terminal.
	sock := make([]byte, 6)
	_, _ = rand.Read(sock)
	s := &tmuxSession{t: t, socket: "twokey-e2e-" + hex.EncodeToString(sock), env: childEnv(dir)}
	t.Cleanup(func() { _, _ = s.tmux("kill-server") })
	stderr := filepath.Join(dir, "tui.stderr")
	command := fmt.Sprintf("TWOKEY_SERVER=%s TWOKEY_IDENTITY=%s %s tui ops 2>%s", shellQuote(srv.URL()), shellQuote(bobFile), shellQuote(bin), shellQuote(stderr))
	if out, err := s.tmux("new-session", "-d", "-s", "tui", "-x", "120", "-y", "40", command); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			errs, _ := os.ReadFile(stderr)
			t.Logf("tui stderr:\n%s", errs)
		}
	})
	s.waitFor("the log, live", "● live", "GATE ENABLED", "SECRET STORED", "bob, I will ask httpbin")

	// alice submits with the CLI; it counts as her approval (1/2).
	cli := exec.Command(bin, "request", "ops", "httpbin.headers")
	cli.Env = childEnv(dir, "TWOKEY_SERVER="+srv.URL(), "TWOKEY_IDENTITY="+aliceFile)
	var cliErr strings.Builder
	cli.Stderr = &cliErr
	out, err := cli.Output()
	if err != nil {
		t.Fatalf("twokey request: %v\nstdout: %s\nstderr: %s", err, out, cliErr.String())
	}
	// stdout is "submitted request ID: METHOD URL".
	rest, ok := strings.CutPrefix(string(out), "submitted request ")
	fields := strings.Fields(rest)
	if !ok || len(fields) == 0 || len(strings.TrimSuffix(fields[0], ":")) < 8 {
		t.Fatalf("twokey request printed no request id on stdout: %q (stderr %q)", out, cliErr.String())
	}
	id := strings.TrimSuffix(fields[0], ":")
	s.waitFor("the request card", "REQUEST "+id[:8], "approvals 1/2: alice", "you: not voted yet · a approve · r reject")

	// bob presses a on the selected (newest) card.
	if out, err := s.tmux("send-keys", "-t", "tui", "a"); err != nil {
		t.Fatalf("send-keys: %v\n%s", err, out)
	}
	scr := s.waitFor("the executed card", "EXECUTED "+id[:8], "status 200", "approved by alice, bob", "RESPONSE "+id[:8])
	t.Logf("the screen:\n%s", scr)
	if p := os.Getenv("TWOKEY_TUI_CAPTURE"); p != "" {
		_ = os.WriteFile(p, []byte(scr), 0o644)
	}

	// The server agrees: executed once, with bob's approval bound to the
	// digest. (A fresh context: the waits above may have used up most of
	// the first.)
	final, cancelFinal := context.WithTimeout(context.Background(), time.Minute)
	defer cancelFinal()
	st, err := ca.Request(final, conv, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != gate.StateExecuted || len(st.Approvals) != 2 || st.Approvals[1] != bob.KeyID() {
		t.Errorf("request state %s approvals %v", st.State, st.Approvals)
	}
	if n := up.Count("/httpbin/headers"); n != 1 {
		t.Errorf("upstream got %d calls, want 1", n)
	}
	if strings.Contains(scr, "sk_e2e_0123456789") {
		t.Error("the key shows on the screen")
	}

	// q quits.
	if out, err := s.tmux("send-keys", "-t", "tui", "q"); err != nil {
		t.Fatalf("send-keys: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(quitWait); ; time.Sleep(100 * time.Millisecond) {
		if _, err := s.tmux("has-session", "-t", "tui"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("q did not quit:\n%s", s.screen())
		}
	}
	if errs, _ := os.ReadFile(stderr); len(errs) > 0 {
		t.Errorf("tui wrote to stderr: %s", errs)
	}
}
