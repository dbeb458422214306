package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/programs"
	"github.com/twokey/twokey/reqlog"
	"github.com/twokey/twokey/store"
	"github.com/twokey/twokey/vault"
)

// Options configure a daemon.
type Options struct {
	Addr             string // default 127.0.0.1:8080; ":0" takes a free port
	DataDir          string // required
	MasterKey        string // base64, from TWOKEY_MASTER_KEY; wins over the file
	MasterKeyFile    string // default <data>/master.key
	Catalogs         []string
	ServiceOverrides []string // NAME=URL
	UpstreamTimeout  time.Duration
	MaxResponseBytes int64
	LockTimeout      time.Duration // how long to wait for the database lock (default 2 s)
	Clock            clock.Clock
	Logger           *slog.Logger
	Out              io.Writer // where start-up lines go (default stdout)
	Upstream         *http.Client

	// The operator surface (docs/operations.md).
	TLS        TLSOptions
	Management ManagementOptions // its key is hashed at start and dropped
	// LogRetention is how long request log entries are kept (default 90 days).
	LogRetention time.Duration
	// DisableMetrics turns /metrics off.
	DisableMetrics bool
	// ProxyDefaultWait is how long a proxied call that sends no Prefer:
	// wait=N waits for approval: zero means the default, 30 s (at most
	// ProxyMaxWait); a negative value means no wait (202 at once).
	ProxyDefaultWait time.Duration
	// ProxyMaxWait caps Prefer: wait=N and a program's ?wait= (default 300 s).
	ProxyMaxWait time.Duration
	// ProgramRequestTTL is how long a program's request waits for
	// approvals unless it says otherwise (default 1 h).
	ProgramRequestTTL time.Duration
	// Effective is the running configuration with secrets masked, shown by
	// GET /v0/management/config.
	Effective map[string]any
	// Limits bound what one client can hold open (limits.go).
	Limits Limits
}

// Daemon is a running server: it owns the store, the engine and the
// listener, and shuts them down in order.
type Daemon struct {
	opts   Options
	store  *store.Store
	engine *engine.Engine
	api    *API
	http   *http.Server
	ln     net.Listener
	url    string
	served chan error

	op          *operator
	reqlog      *reqlog.Log
	metrics     *Metrics
	progs       *programs.Registry
	https       *http.Server // nil when TLS is off
	tlsURL      string
	fingerprint string
	limits      *connLimiter // counts and caps the connections of both listeners
}

// Meta keys in the store.
const (
	metaMasterCheck = "master_check"
	metaGateway     = "gateway_keys"
	metaTokenKey    = "token_key"
)

type gatewayKeys struct {
	SigningSeed []byte `json:"signing_seed"`
	BoxPrivate  []byte `json:"box_private"`
}

// Start opens everything and starts serving. It prints what it created on
// first start and, once it accepts connections, "listening on URL".
func Start(opts Options) (d *Daemon, err error) {
	if opts.DataDir == "" {
		return nil, errors.New("no data directory; set --data-dir or TWOKEY_HOME")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:8080"
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.MasterKeyFile == "" {
		opts.MasterKeyFile = filepath.Join(opts.DataDir, "master.key")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", opts.DataDir, err)
	}
	if err := checkDataDir(opts.DataDir); err != nil {
		return nil, err
	}
	cat, err := loadCatalog(opts)
	if err != nil {
		return nil, err
	}
	dbPath := filepath.Join(opts.DataDir, "twokey.db")
	_, statErr := os.Stat(dbPath)
	fresh := os.IsNotExist(statErr)
	st, err := store.Open(dbPath, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	check, err := st.Get(store.Meta, metaMasterCheck)
	if err != nil {
		return nil, err
	}
	key, created, err := vault.LoadMasterKey(opts.MasterKey, opts.MasterKeyFile, check == nil)
	if err != nil {
		return nil, err
	}
	v, err := vault.New(key)
	clear(key)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := v.VerifyCheck(check); err != nil {
			return nil, fmt.Errorf("%w; the server was started with a different master key than the one this data directory (%s) was created with. Supply the original with TWOKEY_MASTER_KEY or --master-key-file; nothing was changed", err, opts.DataDir)
		}
	}
	gw, boxPub, boxPriv, tokenKey, err := loadKeys(st, v, check == nil)
	if err != nil {
		return nil, err
	}
	if fresh {
		fmt.Fprintf(opts.Out, "created database %s\n", dbPath)
	}
	if created {
		fmt.Fprintf(opts.Out, "created master key %s (mode 0600; back it up: without it the vault cannot be opened)\n", opts.MasterKeyFile)
	}
	if check == nil {
		fmt.Fprintf(opts.Out, "created gateway keys (signing key %s)\n", gw.KeyID())
	}
	d = &Daemon{store: st, served: make(chan error, 2)}
	// The management key is hashed now and its plaintext dropped.
	mgmt, err := newManagement(opts.Management, opts.Clock.Now, opts.Logger)
	opts.Management.Key = ""
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
	d.progs = programs.New(loaded, programStore{st}, opts.Clock.Now)
	d.metrics = NewMetrics(func() int { return d.api.WebSockets() })
	rlog, err := reqlog.New(reqlog.Config{Store: st, Clock: opts.Clock, Logger: opts.Logger, Retention: opts.LogRetention})
	if err != nil {
		return nil, err
	}
	d.reqlog = rlog
	defer func() {
		if err != nil {
			rlog.Close() // not d.reqlog: d is the named result, nil on error
		}
	}()
	eng, err := engine.New(engine.Config{
		Store: st, Vault: v, Catalog: cat, Gateway: gw, BoxPub: boxPub, BoxPriv: boxPriv,
		Clock: opts.Clock, Logger: opts.Logger, TokenKey: tokenKey, Upstream: opts.Upstream,
		UpstreamTimeout: opts.UpstreamTimeout, MaxResponseBytes: opts.MaxResponseBytes,
		Observer: multiObserver{d.reqlog, d.metrics},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			eng.Close()
		}
	}()
	var tlsCfg *tlsSetup
	if opts.TLS.Mode != "" && opts.TLS.Mode != TLSOff {
		if tlsCfg, err = setupTLS(opts.TLS, opts.DataDir, opts.Clock.Now()); err != nil {
			return nil, err
		}
	}
	// Both listeners count their connections in one limiter, below TLS.
	opts.Limits, d.limits = newConnLimiter(opts.Limits, opts.Logger)
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another server using that port? choose one with --addr)", opts.Addr, err)
	}
	ln = d.limits.listen(ln, true)
	var tlsLn net.Listener
	if tlsCfg != nil {
		if opts.TLS.Addr == "" {
			opts.TLS.Addr = "127.0.0.1:8443"
		}
		if tlsLn, err = net.Listen("tcp", opts.TLS.Addr); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen for HTTPS on %s: %w (choose another with tls.addr or --tls-addr)", opts.TLS.Addr, err)
		}
		tlsLn = tls.NewListener(d.limits.listen(tlsLn, false), tlsCfg.config)
	}
	d.opts, d.engine, d.ln, d.url = opts, eng, ln, "http://"+ln.Addr().String()
	d.api = NewAPI(eng, opts.Logger)
	d.api.setLimits(opts.Limits)
	d.op = newOperator(d, mgmt)
	d.op.routes(d.api)
	if !opts.DisableMetrics {
		d.api.Handle("GET /metrics", d.metrics.Handler())
	}
	handler := d.metrics.Middleware(d.api)
	errLog := slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)
	plain := handler
	if tlsLn != nil && opts.TLS.Force {
		_, port, _ := net.SplitHostPort(tlsLn.Addr().String())
		plain = redirectToTLS(port)
	}
	d.http = &http.Server{Handler: plain, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: errLog,
		BaseContext: baseContext(opts.Limits.BodyTimeout)}
	go func() { d.served <- d.http.Serve(ln) }()
	// The lines name the URLs a client should use: with tls.force, only
	// the https ones (a client sending a credential to the plain port
	// would send it in clear text before the redirect).
	forced := tlsLn != nil && opts.TLS.Force
	if !forced {
		fmt.Fprintf(opts.Out, "listening on %s\n", d.url)
	}
	if tlsLn != nil {
		d.tlsURL, d.fingerprint = "https://"+tlsLn.Addr().String(), tlsCfg.fingerprint
		d.https = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: errLog,
			BaseContext: baseContext(opts.Limits.BodyTimeout)}
		go func() { d.served <- d.https.Serve(tlsLn) }()
		fmt.Fprintf(opts.Out, "%s\n", tlsCfg.note)
		fmt.Fprintf(opts.Out, "tls certificate %s (clients pin it with --pin %s)\n", d.fingerprint, d.fingerprint)
		fmt.Fprintf(opts.Out, "listening on %s\n", d.tlsURL)
		if forced {
			fmt.Fprintf(opts.Out, "plain HTTP on %s only redirects to HTTPS (tls.force): give clients %s\n", ln.Addr(), d.tlsURL)
		}
	}
	if mgmt.enabled() {
		mgmtURL := d.url
		if d.tlsURL != "" {
			mgmtURL = d.tlsURL // the key is a header: name the URL that encrypts it
		}
		fmt.Fprintf(opts.Out, "management API at %s/v0/management/ (loopback only: %v)\n", mgmtURL, !opts.Management.AllowRemote)
		switch {
		case opts.Management.AllowRemote && tlsLn == nil:
			opts.Logger.Warn("management.allow_remote is on but TLS is off: remote clients send the management key in clear text; set tls.mode generate or files, and tls.force")
		case opts.Management.AllowRemote && !opts.TLS.Force:
			opts.Logger.Warn("management.allow_remote is on and plain HTTP still answers: a remote client may send the management key in clear text; set tls.force")
		}
	}
	opts.Logger.Info("serving", "addr", ln.Addr().String(), "tls_addr", d.tlsURL, "data_dir", opts.DataDir, "gateway", gw.KeyID())
	return d, nil
}

// newOperator builds the operator surface of d.
func newOperator(d *Daemon, mgmt *management) *operator {
	o := &operator{eng: d.engine, progs: d.progs, logs: d.reqlog, metrics: d.metrics, mgmt: mgmt, log: d.opts.Logger,
		effective: d.opts.Effective, defaultWait: d.opts.ProxyDefaultWait, maxWait: d.opts.ProxyMaxWait,
		requestTTL: d.opts.ProgramRequestTTL}
	if o.maxWait <= 0 {
		o.maxWait = 300 * time.Second
	}
	switch {
	case o.defaultWait == 0:
		o.defaultWait = min(30*time.Second, o.maxWait)
	case o.defaultWait < 0:
		o.defaultWait = 0 // asked for no wait
	}
	o.defaultWait = min(o.defaultWait, o.maxWait)
	if o.requestTTL <= 0 {
		o.requestTTL = time.Hour
	}
	if o.effective == nil {
		o.effective = map[string]any{"addr": d.opts.Addr, "data_dir": d.opts.DataDir, "tls": map[string]any{"mode": d.opts.TLS.Mode}}
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	return o
}

func loadCatalog(opts Options) (*catalog.Catalog, error) {
	cat, err := catalog.Starter()
	if err != nil {
		return nil, fmt.Errorf("starter catalog: %w", err)
	}
	for _, f := range opts.Catalogs {
		if err := cat.LoadFile(f); err != nil {
			return nil, err
		}
	}
	for _, o := range opts.ServiceOverrides {
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

// loadKeys reads the gateway's keys and the token key, sealed under the
// master key, or makes them on first start.
func loadKeys(st *store.Store, v *vault.Vault, first bool) (*conversation.Identity, *[32]byte, *[32]byte, []byte, error) {
	fail := func(err error) (*conversation.Identity, *[32]byte, *[32]byte, []byte, error) {
		return nil, nil, nil, nil, err
	}
	if first {
		check, err := v.NewCheck()
		if err != nil {
			return fail(err)
		}
		var gk gatewayKeys
		gk.SigningSeed = make([]byte, ed25519.SeedSize)
		gk.BoxPrivate = make([]byte, 32)
		tokenKey := make([]byte, 32)
		for _, b := range [][]byte{gk.SigningSeed, gk.BoxPrivate, tokenKey} {
			if _, err := rand.Read(b); err != nil {
				return fail(err)
			}
		}
		raw, _ := json.Marshal(gk)
		sealedGW, err := v.Seal(raw, vault.AAD(metaGateway))
		clear(raw)
		if err != nil {
			return fail(err)
		}
		sealedTok, err := v.Seal(tokenKey, vault.AAD(metaTokenKey))
		if err != nil {
			return fail(err)
		}
		err = st.Commit(&store.Write{Puts: []store.Put{
			{Bucket: store.Meta, Key: metaGateway, Value: sealedGW},
			{Bucket: store.Meta, Key: metaTokenKey, Value: sealedTok},
			{Bucket: store.Meta, Key: metaMasterCheck, Value: check},
		}})
		if err != nil {
			return fail(err)
		}
	}
	sealedGW, err := st.Get(store.Meta, metaGateway)
	if err != nil || sealedGW == nil {
		return fail(fmt.Errorf("the database has no gateway keys (%v); it is damaged", err))
	}
	raw, err := v.Open(sealedGW, vault.AAD(metaGateway))
	if err != nil {
		return fail(fmt.Errorf("open the gateway's keys: %w", err))
	}
	var gk gatewayKeys
	err = json.Unmarshal(raw, &gk)
	clear(raw)
	if err != nil || len(gk.SigningSeed) != ed25519.SeedSize || len(gk.BoxPrivate) != 32 {
		return fail(errors.New("the gateway's stored keys are malformed"))
	}
	sealedTok, err := st.Get(store.Meta, metaTokenKey)
	if err != nil || sealedTok == nil {
		return fail(errors.New("the database has no token key; it is damaged"))
	}
	tokenKey, err := v.Open(sealedTok, vault.AAD(metaTokenKey))
	if err != nil {
		return fail(fmt.Errorf("open the token key: %w", err))
	}
	gw := &conversation.Identity{Name: "gateway", Private: ed25519.NewKeyFromSeed(gk.SigningSeed)}
	var priv, pub [32]byte
	copy(priv[:], gk.BoxPrivate)
	clear(gk.SigningSeed)
	clear(gk.BoxPrivate)
	pubb, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return fail(err)
	}
	copy(pub[:], pubb)
	return gw, &pub, &priv, tokenKey, nil
}

// URL returns the base URL the daemon serves, e.g. http://127.0.0.1:8080.
func (d *Daemon) URL() string { return d.url }

// Engine returns the engine (tests and the operator surface use it).
func (d *Daemon) Engine() *engine.Engine { return d.engine }

// Store returns the store.
func (d *Daemon) Store() *store.Store { return d.store }

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

// Close shuts down in order: end long polls, stop accepting, close
// WebSockets with a close frame, let the engine finish calls in flight,
// write the request log, close the database.
func (d *Daemon) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.op.cancel()
	d.api.CloseWebSockets()
	err := d.http.Shutdown(ctx)
	if d.https != nil {
		if terr := d.https.Shutdown(ctx); err == nil {
			err = terr
		}
	}
	d.engine.Close()
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
