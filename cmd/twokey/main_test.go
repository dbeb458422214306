package main

import (
	"context"
	"io"
	"log/slog"
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

// TestScripts runs the narrated CLI scenarios in testdata/script against a
// real server (in process, on a loopback port, over a bbolt file in the
// script's work dir) and a loopback httpbin upstream. Each script gets
// TWOKEY_SERVER, UPSTREAM and a private TWOKEY_HOME.
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
			d, err := server.Start(cfg, server.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Out: io.Discard})
			if err != nil {
				return err
			}
			env.Defer(func() { d.Close() })
			env.Setenv("TWOKEY_SERVER", d.URL())
			env.Setenv("UPSTREAM", up.URL)
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
