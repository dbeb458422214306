package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/keyring"
	"github.com/twokey/twokey/notify"
	"github.com/twokey/twokey/programs"
	"github.com/twokey/twokey/reqlog"
	"github.com/twokey/twokey/store"
)

// Deps are what a daemon runs with that is not configuration: its clock,
// where it logs and prints, and what tests inject. A zero field takes its
// default.
type Deps struct {
	Clock  clock.Clock  // default the real clock
	Logger *slog.Logger // default text on stderr
	Out    io.Writer    // where start-up lines go (default stdout)
	// Upstream makes the calls to upstream services (default the
	// engine's own client).
	Upstream *http.Client
	// LockTimeout is how long to wait for the database lock (default 2 s).
	LockTimeout time.Duration
}

// settings are what the daemon keeps of its configuration and deps once
// started: the configuration with its secrets dropped, and the limits in
// force.
type settings struct {
	Deps
	cfg    config.Config
	Limits Limits // defaults filled in
}

// Daemon is a running server: it owns the store, the engine and the
// listener, and shuts them down in order.
type Daemon struct {
	opts   settings
	store  store.Store
	dbPath string
	engine *engine.Engine
	api    *API
	http   *http.Server
	ln     net.Listener
	url    string
	served chan error

	op          *operator
	reqlog      *reqlog.Log
	hooks       *notify.Notifier // webhook notifications
	metrics     *Metrics
	progs       *programs.Registry
	https       *http.Server // nil when TLS is off
	tlsURL      string
	fingerprint string
	limits      *connLimiter // counts and caps the connections of both listeners

	syncStop chan struct{} // stops syncPrograms
	syncOnce sync.Once
}

// Start opens everything and starts serving as cfg says: the configuration
// 'twokey serve' loads (config.Default in tests). It prints what it created
// on first start and, once it accepts connections, "listening on URL". It
// works on its own copy of cfg and drops the copy's master key and
// management key once used; the caller may drop its own.
func Start(cfg *config.Config, deps Deps) (d *Daemon, err error) {
	if cfg == nil {
		return nil, errors.New("server: no configuration; pass the one config.Load made, or config.Default()")
	}
	c := *cfg
	// GET /v0/management/config shows the configuration as given, secrets masked.
	effective := c.Map()
	if c.DataDir == "" {
		return nil, errors.New("no data directory; set --data-dir or TWOKEY_HOME")
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if deps.Out == nil {
		deps.Out = os.Stdout
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.LockTimeout == 0 {
		deps.LockTimeout = 2 * time.Second
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", c.DataDir, err)
	}
	if err := checkDataDir(c.DataDir); err != nil {
		return nil, err
	}
	cat, err := loadCatalog(&c)
	if err != nil {
		return nil, err
	}
	dbPath := filepath.Join(c.DataDir, "twokey.db")
	_, statErr := os.Stat(dbPath)
	fresh := os.IsNotExist(statErr)
	var st store.Store
	var bst *store.Bolt
	if c.Store == "etcd" {
		fresh = false
		if st, err = openEtcd(c); err != nil {
			return nil, err
		}
		dbPath = "etcd " + strings.Join(c.Etcd.Endpoints, ",") + " " + c.Etcd.Prefix
	} else {
		if bst, err = store.Open(dbPath, deps.LockTimeout); err != nil {
			return nil, err
		}
		st = bst
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	keys, err := keyring.Open(st, keyring.Source{Key: c.MasterKey, File: c.MasterKeyFile, DataDir: c.DataDir})
	c.MasterKey = ""
	if err != nil {
		return nil, err
	}
	if bst != nil && bst.Legacy() {
		// Only now that the master key opened the vault: a start refused
		// for a wrong key leaves an old file as it was.
		if err := bst.Upgrade(); err != nil {
			return nil, err
		}
		fmt.Fprintf(deps.Out, "converted database %s to the log-first layout\n", dbPath)
	}
	createdKeys, createdFile := keys.Created()
	gw := keys.Gateway()
	if fresh {
		fmt.Fprintf(deps.Out, "created database %s\n", dbPath)
	}
	if createdFile != "" {
		fmt.Fprintf(deps.Out, "created master key %s (mode 0600; back it up: without it the vault cannot be opened)\n", createdFile)
	}
	if createdKeys {
		fmt.Fprintf(deps.Out, "created gateway keys (signing key %s)\n", gw.KeyID())
	}
	d = &Daemon{store: st, dbPath: dbPath, served: make(chan error, 2)}
	// The management key is hashed now and its plaintext dropped.
	mgmt, err := newManagement(managementOf(c.Management), deps.Clock.Now, deps.Logger)
	c.Management.Key = ""
	if err != nil {
		return nil, err
	}
	// Its blocks and failure counts survive a restart.
	if err := mgmt.restore(banStore{st}); err != nil {
		return nil, err
	}
	loaded, err := loadPrograms(st)
	if err != nil {
		return nil, err
	}
	d.progs = programs.New(loaded, programStore{st}, deps.Clock.Now)
	d.syncStop = make(chan struct{})
	if _, shared := st.(store.Cluster); shared {
		go syncPrograms(st, d.progs, d.syncStop)
	}
	d.metrics = NewMetrics(func() int { return d.api.WebSockets() })
	rlog, err := reqlog.New(reqlog.Config{Store: st, Clock: deps.Clock, Logger: deps.Logger, Retention: c.RequestLogs.Retention.D()})
	if err != nil {
		return nil, err
	}
	d.reqlog = rlog
	defer func() {
		if err != nil {
			rlog.Close() // not d.reqlog: d is the named result, nil on error
		}
	}()
	// The notifier before the engine: it is the engine's tap, writing
	// the webhook outbox in the commits that cause it.
	hooks, err := notify.New(notify.Config{Store: st, Sealer: keys.Vault(), Clock: deps.Clock, Logger: deps.Logger,
		PublicURL: c.PublicURL, Targets: c.Notifications})
	if err != nil {
		return nil, err
	}
	d.hooks = hooks
	defer func() {
		if err != nil {
			hooks.Close()
		}
	}()
	// Their secrets are sealed in the store now; the copy kept drops them.
	c.Notifications = dropSecrets(c.Notifications)
	if err := d.metrics.Register(hooks.Collector()); err != nil {
		return nil, err
	}
	boxPub, boxPriv := keys.BoxKeys()
	eng, err := engine.New(engine.Config{
		Store: st, Vault: keys.Vault(), Catalog: cat, Gateway: gw, BoxPub: boxPub, BoxPriv: boxPriv,
		Clock: deps.Clock, Logger: deps.Logger, TokenKey: keys.TokenKey(), Upstream: deps.Upstream,
		UpstreamTimeout: c.UpstreamTimeout.D(), MaxResponseBytes: c.MaxResponseBytes,
		Observer: multiObserver{d.reqlog, d.metrics}, Tap: hooks,
	})
	if err != nil {
		return nil, err
	}
	if eng.Cluster() != nil {
		for _, c := range clusterGauges(eng) {
			if err := d.metrics.Register(c); err != nil {
				eng.Close()
				return nil, err
			}
		}
	}
	// Loading decoded every open request: give the garbage of that back to
	// the system now, so that the memory the server holds once it listens
	// is what it keeps (at 100,000 pending, most of it was garbage).
	debug.FreeOSMemory()
	defer func() {
		if err != nil {
			eng.Close()
		}
	}()
	var tlsCfg *tlsSetup
	if c.TLS.Mode != "" && c.TLS.Mode != TLSOff {
		if tlsCfg, err = setupTLS(c.TLS, c.DataDir, deps.Clock.Now()); err != nil {
			return nil, err
		}
	}
	// Both listeners count their connections in one limiter, below TLS.
	var limits Limits
	limits, d.limits = newConnLimiter(limitsOf(c.Limits), deps.Logger)
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another server using that port? choose one with --addr)", c.Addr, err)
	}
	ln = d.limits.listen(ln, true)
	var tlsLn net.Listener
	if tlsCfg != nil {
		if c.TLS.Addr == "" {
			c.TLS.Addr = "127.0.0.1:8443"
		}
		if tlsLn, err = net.Listen("tcp", c.TLS.Addr); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen for HTTPS on %s: %w (choose another with tls.addr or --tls-addr)", c.TLS.Addr, err)
		}
		tlsLn = tls.NewListener(d.limits.listen(tlsLn, false), tlsCfg.config)
	}
	d.opts = settings{Deps: deps, cfg: c, Limits: limits}
	d.engine, d.ln, d.url = eng, ln, "http://"+ln.Addr().String()
	d.api = NewAPI(eng, deps.Logger)
	d.api.setLimits(limits)
	d.op = newOperator(d, mgmt, effective)
	d.op.hooks = d.hooks // the management API's webhooks (server/webhooks.go)
	d.op.routes(d.api)
	if c.Metrics.Enabled {
		d.api.Handle("GET /metrics", d.metrics.Handler())
	}
	handler := d.metrics.Middleware(d.api)
	errLog := slog.NewLogLogger(deps.Logger.Handler(), slog.LevelWarn)
	plain := handler
	if tlsLn != nil && c.TLS.Force {
		_, port, _ := net.SplitHostPort(tlsLn.Addr().String())
		plain = redirectToTLS(port)
	}
	d.http = &http.Server{Handler: plain, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: errLog,
		BaseContext: baseContext(limits.BodyTimeout)}
	go func() { d.served <- d.http.Serve(ln) }()
	// The lines name the URLs a client should use: with tls.force, only
	// the https ones (a client sending a credential to the plain port
	// would send it in clear text before the redirect).
	forced := tlsLn != nil && c.TLS.Force
	if !forced {
		fmt.Fprintf(deps.Out, "listening on %s\n", d.url)
	}
	if tlsLn != nil {
		d.tlsURL, d.fingerprint = "https://"+tlsLn.Addr().String(), tlsCfg.fingerprint
		d.https = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: errLog,
			BaseContext: baseContext(limits.BodyTimeout)}
		go func() { d.served <- d.https.Serve(tlsLn) }()
		fmt.Fprintf(deps.Out, "%s\n", tlsCfg.note)
		fmt.Fprintf(deps.Out, "tls certificate %s (clients pin it with --pin %s)\n", d.fingerprint, d.fingerprint)
		fmt.Fprintf(deps.Out, "listening on %s\n", d.tlsURL)
		if forced {
			fmt.Fprintf(deps.Out, "plain HTTP on %s only redirects to HTTPS (tls.force): give clients %s\n", ln.Addr(), d.tlsURL)
		}
	}
	if mgmt.enabled() {
		mgmtURL := d.url
		if d.tlsURL != "" {
			mgmtURL = d.tlsURL // the key is a header: name the URL that encrypts it
		}
		fmt.Fprintf(deps.Out, "management API at %s/v0/management/ (loopback only: %v)\n", mgmtURL, !c.Management.AllowRemote)
		switch {
		case c.Management.AllowRemote && tlsLn == nil:
			deps.Logger.Warn("management.allow_remote is on but TLS is off: remote clients send the management key in clear text; set tls.mode generate or files, and tls.force")
		case c.Management.AllowRemote && !c.TLS.Force:
			deps.Logger.Warn("management.allow_remote is on and plain HTTP still answers: a remote client may send the management key in clear text; set tls.force")
		}
	}
	deps.Logger.Info("serving", "addr", ln.Addr().String(), "tls_addr", d.tlsURL, "data_dir", c.DataDir, "gateway", gw.KeyID())
	return d, nil
}

// newOperator builds the operator surface of d, which shows effective as
// the running configuration.
func newOperator(d *Daemon, mgmt *management, effective map[string]any) *operator {
	c := &d.opts.cfg
	o := &operator{eng: d.engine, progs: d.progs, logs: d.reqlog, metrics: d.metrics, mgmt: mgmt, log: d.opts.Logger,
		effective: effective, defaultWait: c.Proxy.DefaultWait.D(), maxWait: c.Proxy.MaxWait.D(),
		requestTTL: c.Programs.RequestTTL.D(), publicURL: c.PublicURL}
	if o.maxWait <= 0 {
		o.maxWait = 300 * time.Second
	}
	// proxy.default_wait 0 means no wait: 202 at once.
	o.defaultWait = min(max(o.defaultWait, 0), o.maxWait)
	if o.requestTTL <= 0 {
		o.requestTTL = time.Hour
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	return o
}

// dropSecrets returns a copy of targets without their secrets.
func dropSecrets(targets []config.Notification) []config.Notification {
	out := make([]config.Notification, len(targets))
	for i, t := range targets {
		t.Secret = ""
		out[i] = t
	}
	return out
}

// managementOf is the management API's part of the configuration.
func managementOf(m config.Management) ManagementOptions {
	return ManagementOptions{Key: m.Key, AllowRemote: m.AllowRemote, TrustedProxies: m.TrustedProxies,
		MaxFailures: m.MaxFailures, BanFor: m.BanFor.D()}
}

// limitsOf is the configuration's limits as the server enforces them: a
// setting's 0 that means no cap is the server's negative.
func limitsOf(l config.Limits) Limits {
	perAddr := l.ConnectionsPerAddress
	if perAddr == 0 {
		perAddr = -1 // limits.connections_per_address: 0 is no cap
	}
	return Limits{WebSocketsPerToken: l.WebSocketsPerToken, WebSocketsPerMember: l.WebSocketsPerMember,
		MaxConnections: l.MaxConnections, ConnectionsPerAddress: perAddr, BodyTimeout: l.BodyTimeout.D()}
}

// loadCatalog is the starter catalog with c's catalog files and service
// overrides applied.
func loadCatalog(c *config.Config) (*catalog.Catalog, error) {
	cat, err := catalog.Starter()
	if err != nil {
		return nil, fmt.Errorf("starter catalog: %w", err)
	}
	for _, f := range c.Catalogs {
		if err := cat.LoadFile(f); err != nil {
			return nil, err
		}
	}
	for _, o := range c.ServiceOverrides() {
		name, u, err := catalog.ParseOverride(o)
		if err != nil {
			return nil, err
		}
		if err := cat.OverrideBaseURL(name, u); err != nil {
			return nil, err
		}
	}
	return cat, nil
}

// URL returns the base URL the daemon serves, e.g. http://127.0.0.1:8080.
func (d *Daemon) URL() string { return d.url }

// Engine returns the engine (tests and the operator surface use it).
func (d *Daemon) Engine() *engine.Engine { return d.engine }

// Store returns the store.
func (d *Daemon) Store() store.Store { return d.store }

// DBPath returns the database file's path.
func (d *Daemon) DBPath() string { return d.dbPath }

// API returns the HTTP handler.
func (d *Daemon) API() *API { return d.api }

// TLSURL returns the HTTPS base URL, or "" when TLS is off.
func (d *Daemon) TLSURL() string { return d.tlsURL }

// Fingerprint returns the TLS certificate's pin (sha256:HEX), or "".
func (d *Daemon) Fingerprint() string { return d.fingerprint }

// Metrics returns the server's metrics.
func (d *Daemon) Metrics() *Metrics { return d.metrics }

// Programs returns the program keys.
func (d *Daemon) Programs() *programs.Registry { return d.progs }

// RequestLog returns the request log.
func (d *Daemon) RequestLog() *reqlog.Log { return d.reqlog }

// Notifier returns the webhook notifier.
func (d *Daemon) Notifier() *notify.Notifier { return d.hooks }

// Close shuts down in order: end long polls, stop accepting, close
// WebSockets with a close frame, let the engine finish calls in flight,
// write the request log, close the database.
func (d *Daemon) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.op.cancel()
	d.syncOnce.Do(func() { close(d.syncStop) })
	d.api.CloseWebSockets()
	err := d.http.Shutdown(ctx)
	if d.https != nil {
		if terr := d.https.Shutdown(ctx); err == nil {
			err = terr
		}
	}
	d.engine.Close()
	d.hooks.Close() // after the engine: its last commits are queued; attempts in flight stay queued
	d.reqlog.Close()
	if cerr := d.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// Wait blocks until the HTTP server stops.
func (d *Daemon) Wait() error {
	err := <-d.served
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
