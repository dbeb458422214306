package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/twokey/twokey/server"
)

type serveOptions struct {
	addr             string
	dataDir          string
	masterKeyFile    string
	catalogs         []string
	services         []string
	upstreamTimeout  time.Duration
	maxResponseBytes int64
	logLevel         string
}

func newServeCmd(f *factory) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the twokey server",
		Long: `Run the twokey server. The first start creates the database, the gateway's
signing and box keys and the vault's master key (mode 0600) in the data
directory and says where; later starts reuse them.

The server prints one line "listening on http://HOST:PORT" once it accepts
connections; --addr 127.0.0.1:0 takes a free port. SIGINT or SIGTERM stops
it cleanly: WebSockets get a close frame, calls in flight finish and the
database is closed.`,
		Example: `  twokey serve
  twokey serve --addr 127.0.0.1:0 --data-dir /tmp/tk --service httpbin=http://127.0.0.1:9000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runServe(f, o) },
	}
	fl := cmd.Flags()
	fl.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on (:0 for a free port)")
	fl.StringVar(&o.dataDir, "data-dir", "", "data directory (env TWOKEY_HOME; default ~/.twokey)")
	fl.StringVar(&o.masterKeyFile, "master-key-file", "", "vault master key file (default <data-dir>/master.key; env TWOKEY_MASTER_KEY holds the key itself)")
	fl.StringArrayVar(&o.catalogs, "catalog", nil, "extra catalog YAML file (repeatable); its services and templates replace same-named ones")
	fl.StringArrayVar(&o.services, "service", nil, "override a service's base URL, NAME=URL (repeatable)")
	fl.DurationVar(&o.upstreamTimeout, "upstream-timeout", 30*time.Second, "timeout of one upstream call")
	fl.Int64Var(&o.maxResponseBytes, "max-response-bytes", 10<<20, "how much of an upstream response the gateway reads")
	fl.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func runServe(f *factory, o *serveOptions) error {
	if o.dataDir == "" {
		o.dataDir = f.home()
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return usagef("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	logger := slog.New(slog.NewTextHandler(f.io.Err, &slog.HandlerOptions{Level: level}))
	d, err := server.Start(server.Options{
		Addr: o.addr, DataDir: o.dataDir, MasterKey: f.getenv("TWOKEY_MASTER_KEY"), MasterKeyFile: o.masterKeyFile,
		Catalogs: o.catalogs, ServiceOverrides: o.services, UpstreamTimeout: o.upstreamTimeout,
		MaxResponseBytes: o.maxResponseBytes, Logger: logger, Out: f.io.Out,
	})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- d.Wait() }()
	select {
	case <-f.ctx.Done():
		logger.Info("shutting down")
	case err := <-done:
		if err != nil {
			d.Close()
			return fmt.Errorf("server stopped: %w", err)
		}
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(f.io.Out, "stopped")
	return nil
}
