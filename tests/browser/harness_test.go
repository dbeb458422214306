package browser_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/twokey/twokey/internal/testutil"
)

// actionTimeout bounds every chromedp call the harness makes: the start of
// the browser and of a tab, each action, each evaluation. It is a bound on
// a hang, not a timing assertion, so it is generous for a loaded CI machine
// under the race detector.
const actionTimeout = 60 * time.Second

// tabBudget bounds everything done on a tab, from its start, so that no
// call on it can wait for ever, also one made with chromedp directly
// rather than through run or evalJS.
const tabBudget = 3 * time.Minute

// chromiumPath returns Debian's chromium: /usr/bin/chromium, else chromium
// on PATH.
func chromiumPath() (string, bool) {
	if st, err := os.Stat("/usr/bin/chromium"); err == nil && !st.IsDir() {
		return "/usr/bin/chromium", true
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, true
	}
	return "", false
}

// needChromium skips the test when chromium is not installed, or fails it
// on CI (CI=true), where .ci/run installs it.
func needChromium(t *testing.T) string {
	t.Helper()
	p, ok := chromiumPath()
	if ok {
		return p
	}
	const how = "chromium is not installed (no /usr/bin/chromium, none on PATH); install it with 'sudo apt-get install chromium' (Debian, Ubuntu) to run the browser tests"
	if os.Getenv("CI") == "true" {
		t.Fatal(how)
	}
	t.Skip(how)
	return ""
}

// lockedBuffer collects chromium's output, written from another goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 { // keep the start; chromium can be chatty
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newBrowser starts one headless chromium for the test, on a fresh profile
// in t.TempDir(), and returns its context. The browser closes when the test
// ends; when the test failed, what chromium printed is in the log. A
// chromium that crashes while it starts (it does, rarely, on a loaded
// machine: "chrome failed to start") is started again, up to three times
// in all, each time on a fresh profile; a start that fails every time
// fails the test with what chromium printed.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := needChromium(t)
	cleanArtifacts(t)
	var errs []string
	for attempt := 1; attempt <= 3; attempt++ {
		ctx, out, stop, err := startChromium(path, t.TempDir())
		if err == nil {
			t.Cleanup(func() {
				stop(t)
				if t.Failed() {
					t.Logf("chromium's output:\n%s", out.String())
				}
			})
			return ctx
		}
		stop(t)
		errs = append(errs, fmt.Sprintf("attempt %d: %v\n%s", attempt, err, out.String()))
	}
	t.Fatalf("start chromium (%s) failed 3 times:\n%s", path, strings.Join(errs, "\n"))
	return nil
}

// startChromium starts one chromium on profile dir and returns its
// context, its output and how to stop it.
func startChromium(path, dir string) (context.Context, *lockedBuffer, func(*testing.T), error) {
	out := &lockedBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(out),
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(format string, args ...any) {
		out.Write([]byte("chromedp: " + fmt.Sprintf(format, args...) + "\n"))
	}))
	stop := func(t *testing.T) {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing chromium: %v", err)
		}
		cancel()
		allocCancel()
	}
	// The first Run starts the browser and binds it to the context it is
	// given, so it gets no timeout of its own: it is bounded from outside.
	err := bounded(func() error { return chromedp.Do(ctx) })
	return ctx, out, stop, err
}

// bounded runs f, giving up after actionTimeout (f keeps running; the test
// fails and its cleanups close the browser).
func bounded(f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(actionTimeout):
		return fmt.Errorf("gave up after %s", actionTimeout)
	}
}

// tabState is what the harness keeps for one tab.
type tabState struct {
	t    *testing.T
	name string
	mu   sync.Mutex
	done bool     // the test is over: log nothing more
	errs []string // console errors and uncaught exceptions
}

var tabs sync.Map // *chromedp.Context -> *tabState

// newTab opens a page in a browser context of its own (its own cookies,
// storage and IndexedDB) on browserCtx's browser, and returns its context,
// which ends tabBudget after the tab opened: every call on it is bounded.
// Console errors and uncaught exceptions of the page go to the test log as
// they happen (pageErrors returns them); when the test fails, the tab's
// screenshot is saved before it closes. The tab closes when the test ends.
func newTab(t *testing.T, browserCtx context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	if err := bounded(func() error { return chromedp.Do(ctx) }); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	n := 0
	tabs.Range(func(_, v any) bool {
		if v.(*tabState).t == t {
			n++
		}
		return true
	})
	st := &tabState{t: t, name: fmt.Sprintf("tab%d", n+1)}
	tabs.Store(chromedp.FromContext(ctx), st)
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && !m.IsException() {
				continue
			}
			if m.Source == "network" && strings.HasSuffix(m.URL, "/favicon.ico") {
				continue // the browser's own request, not the page's
			}
			line := m.String()
			if m.URL != "" {
				line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
			}
			if m.IsException() && m.Exception != nil && m.Exception.Exception != nil {
				line += ": " + m.Exception.Exception.Description
			}
			st.mu.Lock()
			st.errs = append(st.errs, line)
			if !st.done {
				t.Logf("%s: page %s", st.name, line)
			}
			st.mu.Unlock()
		}
	}()
	// The tab lives as long as ctx, which ran first; calls on the budgeted
	// context derived from it stop at its deadline and leave the tab open.
	budget, budgetCancel := context.WithTimeout(ctx, tabBudget)
	t.Cleanup(func() {
		if t.Failed() {
			screenshot(t, ctx, st.name+"-failed")
		}
		st.mu.Lock()
		st.done = true
		st.mu.Unlock()
		tabs.Delete(chromedp.FromContext(ctx))
		budgetCancel()
		cancel()
	})
	return budget
}

// pageErrors returns the console errors and uncaught exceptions the tab's
// pages have had so far.
func pageErrors(tab context.Context) []string {
	v, ok := tabs.Load(chromedp.FromContext(tab))
	if !ok {
		return nil
	}
	st := v.(*tabState)
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]string(nil), st.errs...)
}

// noPageErrors fails the test if the tab's pages had console errors or
// uncaught exceptions.
func noPageErrors(t *testing.T, tab context.Context) {
	t.Helper()
	if errs := pageErrors(tab); len(errs) > 0 {
		t.Errorf("the page had %d console errors or uncaught exceptions:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}

// run runs actions on the tab, bounded by actionTimeout, and fails the
// test on an error.
func run(t *testing.T, tab context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// open loads url in the tab and waits for it to load.
func open(t *testing.T, tab context.Context, url string) {
	t.Helper()
	run(t, tab, chromedp.Navigate(url))
}

// evalJS evaluates a JavaScript expression in the tab's page, awaits it if
// it is a promise, and decodes its JSON value into T. An exception fails
// the test.
func evalJS[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	v, err := tryEvalJS[T](tab, expr)
	if err != nil {
		t.Fatalf("evaluate in the page: %v", err)
	}
	return v
}

// tryEvalJS is evalJS that returns the error.
func tryEvalJS[T any](tab context.Context, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(tab, actionTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// withCrypto evaluates body, the body of an async function, with m bound to
// the module /crypto.js (and noble to /vendor/noble.js, ids to
// /idstore.js) and args to the JSON of args, and decodes what it returns.
// The tab must be on the server's page.
func withCrypto[T any](t *testing.T, tab context.Context, args any, body string) T {
	t.Helper()
	a, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	expr := fmt.Sprintf(`(async () => {
		const m = await import('/crypto.js');
		const noble = await import('/vendor/noble.js');
		const ids = await import('/idstore.js');
		const args = %s;
		%s
	})()`, a, body)
	return evalJS[T](t, tab, expr)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// artifactDir is where screenshots go: $TWOKEY_ARTIFACTS, else
// bin/artifacts/browser at the repository's root.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TWOKEY_ARTIFACTS")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("find the repository root: %v", err)
		}
		dir = filepath.Join(root, "bin", "artifacts", "browser")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func artifactPrefix(t *testing.T) string { return unsafeName.ReplaceAllString(t.Name(), "_") + "-" }

// cleanArtifacts removes the screenshots an earlier run of this test left,
// so that the directory shows the last run only.
func cleanArtifacts(t *testing.T) {
	old, _ := filepath.Glob(filepath.Join(artifactDir(t), artifactPrefix(t)+"*.png"))
	for _, f := range old {
		os.Remove(f)
	}
}

// screenshot saves a PNG of the tab's viewport as <test>-<name>.png in the
// artifact dir and returns its path ("" when it could not be taken: that
// is logged, not a failure).
func screenshot(t *testing.T, tab context.Context, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(artifactDir(t), artifactPrefix(t)+unsafeName.ReplaceAllString(name, "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	t.Logf("screenshot: %s", path)
	return path
}

// startServer starts a real twokey server on 127.0.0.1 with a recording
// upstream behind its httpbin and fun services. Pages load it at its
// http://127.0.0.1:PORT/, a secure context, so WebCrypto is there.
func startServer(t *testing.T) *testutil.Server {
	t.Helper()
	return testutil.StartServer(t, testutil.NewUpstream(t))
}
