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
	cfg, path, err := loadConfigNoValidate(f, fs, file)
	if err != nil {
		return nil, path, err
	}
	return cfg, path, cfg.Validate()
}

// loadConfigNoValidate is loadConfig without the check of the whole
// (migrate reads the etcd settings of a server that still runs on bolt).
func loadConfigNoValidate(f *factory, fs *pflag.FlagSet, file string) (*config.Config, string, error) {
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
	return cfg, path, nil
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
	d, err := server.Start(cfg, server.Deps{Logger: logger, Out: f.io.Out})
	// The server hashed the management key and opened the vault; drop the
	// plaintext here too.
	cfg.Management.Key, cfg.MasterKey = "", ""
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
