package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/server"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"twokey": func() {
			os.Exit(Main(context.Background(), os.Args[1:], Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Getenv))
		},
	})
}

const scriptMgmtKey = "script-management-key-5d1c"

// TestScripts runs the narrated CLI scenarios in testdata/script against a
// real server (in process, on a loopback port, over a bbolt file in the
// script's work dir) and a loopback httpbin upstream. Each script gets
// TWOKEY_SERVER, UPSTREAM and a private TWOKEY_HOME; the management API is
// on (TWOKEY_MANAGEMENT_KEY), RECEIVER is a webhook receiver (/ok answers
// 200, /down 503), and the server logs to $WORK/server.log.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			up := httptest.NewServer(httpbin.New().Handler())
			env.Defer(up.Close)
			cfg := config.Default()
			cfg.Addr, cfg.DataDir = "127.0.0.1:0", filepath.Join(env.WorkDir, "server")
			cfg.Services = map[string]string{"httpbin": up.URL, "fun": up.URL}
			cfg.UpstreamTimeout = config.Duration(5 * time.Second)
			cfg.Management.Key = scriptMgmtKey
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/down" {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			}))
			env.Defer(recv.Close)
			logf, err := os.Create(filepath.Join(env.WorkDir, "server.log"))
			if err != nil {
				return err
			}
			env.Defer(func() { logf.Close() }) // after the server's Close: defers run last first
			logger := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			d, err := server.Start(cfg, server.Deps{Logger: logger, Out: io.Discard})
			if err != nil {
				return err
			}
			env.Defer(func() { d.Close() })
			env.Setenv("TWOKEY_SERVER", d.URL())
			env.Setenv("UPSTREAM", up.URL)
			env.Setenv("RECEIVER", recv.URL)
			env.Setenv("TWOKEY_MANAGEMENT_KEY", scriptMgmtKey)
			env.Setenv("TWOKEY_HOME", filepath.Join(env.WorkDir, "home"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// capture VAR REGEXP sets VAR to the first submatch of REGEXP
			// in the last command's stdout.
			"capture": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: capture VAR REGEXP")
				}
				re, err := regexp.Compile(args[1])
				ts.Check(err)
				m := re.FindStringSubmatch(ts.ReadFile("stdout"))
				if m == nil || len(m) < 2 {
					ts.Fatalf("capture: %q not in stdout", args[1])
				}
				ts.Setenv(args[0], m[1])
			},
		},
	})
}
