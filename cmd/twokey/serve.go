package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/server"
)

type serveOptions struct {
	configFile string
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
connections (and "listening on https://HOST:PORT" when TLS is on; with
--tls-force only the https one, since plain HTTP then only redirects);
--addr 127.0.0.1:0 takes a free port. SIGINT or SIGTERM stops it cleanly:
WebSockets get a close frame, calls in flight finish and the database is
closed.

Settings come from flags, then TWOKEY_* variables, then the configuration
file (--config, TWOKEY_CONFIG, or twokey.yaml in the data directory), then
the defaults; 'twokey config show' prints the result with its sources and
secrets masked, and docs/operations.md describes every setting. A bad
setting stops the start with the file and line, variable or flag, and the
field named. Secrets (the management key, the master key) have no flag:
give them in the environment or the file.`,
		Example: `  twokey serve
  twokey serve --addr 127.0.0.1:0 --data-dir /tmp/tk --service httpbin=http://127.0.0.1:9000
  TWOKEY_MANAGEMENT_KEY=... twokey serve --tls-mode generate --tls-force
  twokey serve --config /etc/twokey/twokey.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runServe(f, cmd.Flags(), o) },
	}
	addConfigFlags(cmd.Flags(), &o.configFile)
	return cmd
}

// addConfigFlags defines --config and a flag for every setting.
func addConfigFlags(fs *pflag.FlagSet, file *string) {
	fs.StringVar(file, "config", "", "configuration file (env TWOKEY_CONFIG; default <data-dir>/"+config.FileName+" when it exists)")
	config.BindFlags(fs)
}

// loadConfig builds the effective configuration as serve would: flags
// over TWOKEY_* over the file over the defaults, validated.
func loadConfig(f *factory, fs *pflag.FlagSet, file string) (*config.Config, string, error) {
	home := f.home()
	if fs.Changed("data-dir") {
		home, _ = fs.GetString("data-dir")
	}
	path, err := config.Find(file, home, f.getenv)
	if err != nil {
		return nil, "", err
	}
	cfg, err := config.Load(path, f.getenv)
	if err != nil {
		return nil, path, err
	}
	if err := cfg.ApplyFlags(fs); err != nil {
		return nil, path, err
	}
	if cfg.DataDir == "" {
		cfg.DataDir = f.home()
	}
	return cfg, path, cfg.Validate()
}

func runServe(f *factory, fs *pflag.FlagSet, o *serveOptions) error {
	cfg, path, err := loadConfig(f, fs, o.configFile)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToLower(cfg.LogLevel))) // validated
	logger := slog.New(slog.NewTextHandler(f.io.Err, &slog.HandlerOptions{Level: level}))
	if path != "" {
		fmt.Fprintf(f.io.Out, "configuration %s\n", path)
	}
	opts := serverOptions(cfg)
	opts.Logger, opts.Out = logger, f.io.Out
	// The server hashes the management key; drop the plaintext here.
	cfg.Management.Key, cfg.MasterKey = "", ""
	d, err := server.Start(opts)
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

// serverOptions turns the configuration into the server's options.
func serverOptions(cfg *config.Config) server.Options {
	wait := cfg.Proxy.DefaultWait.D()
	if wait == 0 {
		wait = -1 // proxy.default_wait: 0 means no wait; the server's zero means its default
	}
	return server.Options{
		Addr: cfg.Addr, DataDir: cfg.DataDir, MasterKey: cfg.MasterKey, MasterKeyFile: cfg.MasterKeyFile,
		Catalogs: cfg.Catalogs, ServiceOverrides: cfg.ServiceOverrides(), UpstreamTimeout: cfg.UpstreamTimeout.D(),
		MaxResponseBytes: cfg.MaxResponseBytes,
		TLS: server.TLSOptions{Mode: cfg.TLS.Mode, Addr: cfg.TLS.Addr, Force: cfg.TLS.Force,
			CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, Names: cfg.TLS.Names},
		Management: server.ManagementOptions{Key: cfg.Management.Key, AllowRemote: cfg.Management.AllowRemote,
			TrustedProxies: cfg.Management.TrustedProxies, MaxFailures: cfg.Management.MaxFailures, BanFor: cfg.Management.BanFor.D()},
		LogRetention: cfg.RequestLogs.Retention.D(), DisableMetrics: !cfg.Metrics.Enabled,
		ProxyDefaultWait: wait, ProxyMaxWait: cfg.Proxy.MaxWait.D(),
		ProgramRequestTTL: cfg.Programs.RequestTTL.D(),
		Limits:            limitsOf(cfg.Limits),
		Effective:         cfg.Map(),
	}
}

// limitsOf turns the limits settings into the server's: a setting's 0 that
// means no cap is the server's negative.
func limitsOf(l config.Limits) server.Limits {
	perAddr := l.ConnectionsPerAddress
	if perAddr == 0 {
		perAddr = -1 // limits.connections_per_address: 0 is no cap
	}
	return server.Limits{WebSocketsPerToken: l.WebSocketsPerToken, WebSocketsPerMember: l.WebSocketsPerMember,
		MaxConnections: l.MaxConnections, ConnectionsPerAddress: perAddr, BodyTimeout: l.BodyTimeout.D()}
}
