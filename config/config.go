// Package config is the server's configuration: built-in defaults, a YAML
// file (twokey.yaml), TWOKEY_* environment variables and command-line
// flags, each overriding the one before. The source of every value is kept,
// so a bad value is reported with the file and line, the variable or the
// flag it came from, and `twokey config show` can say where each setting
// came from with its secrets masked.
//
// Every setting has one dotted path (tls.mode), one variable
// (TWOKEY_TLS_MODE) and one flag (--tls-mode), derived from the YAML name
// unless a struct tag says otherwise; secrets have no flag, so they never
// appear in a process listing.
package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the server's effective configuration.
type Config struct {
	Addr             string            `yaml:"addr" help:"HTTP listen address; 127.0.0.1:0 takes a free port"`
	DataDir          string            `yaml:"data_dir" env:"TWOKEY_HOME" help:"data directory (database, keys, ssl/); default ~/.twokey"`
	MasterKeyFile    string            `yaml:"master_key_file" help:"vault master key file (default <data_dir>/master.key)"`
	MasterKey        string            `yaml:"master_key" secret:"true" flag:"-" help:"vault master key itself, base64 (prefer the variable or the file)"`
	Catalogs         []string          `yaml:"catalogs" flag:"catalog" help:"extra catalog YAML files; their services and templates replace same-named ones"`
	Services         map[string]string `yaml:"services" flag:"service" help:"service base URL overrides, NAME=URL"`
	UpstreamTimeout  Duration          `yaml:"upstream_timeout" help:"timeout of one upstream call"`
	MaxResponseBytes int64             `yaml:"max_response_bytes" help:"how much of an upstream response the gateway reads"`
	LogLevel         string            `yaml:"log_level" help:"server log level: debug, info, warn or error"`
	PublicURL        string            `yaml:"public_url" help:"the URL people open the browser app at (e.g. https://twokey.example.com); notifications and MCP answers link requests there; empty: no links"`
	TLS              TLS               `yaml:"tls"`
	Management       Management        `yaml:"management"`
	RequestLogs      RequestLogs       `yaml:"request_logs"`
	Metrics          Metrics           `yaml:"metrics"`
	Proxy            Proxy             `yaml:"proxy"`
	Programs         Programs          `yaml:"programs"`
	Limits           Limits            `yaml:"limits"`
	Store            string            `yaml:"store" help:"where the state is kept: bolt (one file in the data directory, the default) or etcd (a cluster several nodes share; see docs/ha.md)"`
	Etcd             Etcd              `yaml:"etcd"`
	// Notifications are the webhook targets of the file (package notify;
	// docs/operations.md, Notifications): only in twokey.yaml, so they
	// have no variable and no flag.
	Notifications []Notification `yaml:"notifications" env:"-" flag:"-" help:"webhook targets: a list of name, url, format, conversations, events, detail, secret (only in twokey.yaml)"`

	src map[string]string // dotted path -> where its value came from
}

// TLS configures the HTTPS listener.
type TLS struct {
	Mode     string   `yaml:"mode" help:"off, generate (a self-signed certificate in <data_dir>/ssl) or files"`
	Addr     string   `yaml:"addr" help:"HTTPS listen address"`
	Force    bool     `yaml:"force" help:"answer every plain HTTP request with a 308 redirect to HTTPS"`
	CertFile string   `yaml:"cert_file" help:"certificate chain PEM (mode files)"`
	KeyFile  string   `yaml:"key_file" help:"private key PEM (mode files)"`
	Names    []string `yaml:"names" help:"extra DNS names or IPs for the generated certificate"`
}

// Management configures the management API under /v0/management/.
type Management struct {
	Key            string   `yaml:"key" secret:"true" flag:"-" help:"the management key; empty disables the management API (404)"`
	AllowRemote    bool     `yaml:"allow_remote" help:"answer management clients that are not on loopback"`
	TrustedProxies []string `yaml:"trusted_proxies" help:"proxies (IPs or CIDRs) whose X-Forwarded-For is believed"`
	MaxFailures    int      `yaml:"max_failures" help:"wrong management keys from one address before it is blocked"`
	BanFor         Duration `yaml:"ban_for" help:"how long a blocked address stays blocked"`
}

// RequestLogs configures the durable request log.
type RequestLogs struct {
	Retention Duration `yaml:"retention" help:"how long request log entries are kept; older ones are pruned in the background"`
}

// Metrics configures /metrics.
type Metrics struct {
	Enabled bool `yaml:"enabled" help:"serve Prometheus metrics at /metrics"`
}

// Proxy configures proxy mode (/v1/proxy/...).
type Proxy struct {
	DefaultWait Duration `yaml:"default_wait" help:"how long a proxied call waits for approval when the client sends no Prefer: wait=N; 0 answers 202 at once"`
	MaxWait     Duration `yaml:"max_wait" help:"the longest wait a client may ask for (Prefer: wait=N, ?wait=), 1s to 1h"`
}

// Programs configures program keys' requests.
type Programs struct {
	RequestTTL Duration `yaml:"request_ttl" help:"how long a program's request waits for approvals unless it says otherwise"`
}

// Limits bound what one client can hold open (docs/operations.md, Limits).
type Limits struct {
	WebSocketsPerToken    int      `yaml:"websockets_per_token" help:"WebSockets one session token may hold open; more are answered 429"`
	WebSocketsPerMember   int      `yaml:"websockets_per_member" help:"WebSockets one key may hold open over all its sessions; more are answered 429"`
	MaxConnections        int      `yaml:"max_connections" help:"connections the server holds at once, WebSockets included; more are answered 503; 0 derives it from the file descriptor limit (80% less 32)"`
	ConnectionsPerAddress int      `yaml:"connections_per_address" help:"connections one IP address may hold at once, but for authenticated WebSockets; more are answered 429; 0 turns the cap off"`
	BodyTimeout           Duration `yaml:"body_timeout" help:"how long the server waits for a request's body once its headers are in"`
}

// Etcd configures the shared store (store: etcd; docs/ha.md).
type Etcd struct {
	Endpoints []string `yaml:"endpoints" help:"the etcd cluster's client endpoints, host:port or URLs, comma-separated"`
	Prefix    string   `yaml:"prefix" help:"key prefix, so that several gateways can share one cluster"`
	CertFile  string   `yaml:"cert_file" help:"client certificate PEM for etcd's TLS (with key_file)"`
	KeyFile   string   `yaml:"key_file" help:"client private key PEM for etcd's TLS"`
	CAFile    string   `yaml:"ca_file" help:"CA PEM that signed etcd's server certificates (turns TLS on)"`
	Username  string   `yaml:"username" help:"etcd user, when etcd's authentication is on"`
	Password  string   `yaml:"password" secret:"true" flag:"-" help:"the etcd user's password"`
	Node      string   `yaml:"node" help:"this gateway's name among the nodes sharing the store (default: the host name and the listen port)"`
	LeaseTTL  Duration `yaml:"lease_ttl" help:"the executor's lease: a node that stops renewing it loses the lead this long after"`
}

// Notification is one webhook target of twokey.yaml.
type Notification struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Format is json (default), slack or ntfy.
	Format string `yaml:"format"`
	// Conversations are the names or ids of the conversations it covers;
	// empty or "*" covers all.
	Conversations []string `yaml:"conversations"`
	// Events are the events it wants (NotificationEvents); empty: all but
	// request.approved_by.
	Events []string `yaml:"events"`
	// Detail is summary (default) or full (also params and the URL).
	Detail string `yaml:"detail"`
	// Secret is the target's whsec_ signing secret; empty: one is made at
	// first start and kept sealed (rotate it through the management API
	// to see it).
	Secret string `yaml:"secret" secret:"true"`
}

// NotificationEvents are the events a webhook target may ask for (package
// notify sends them; a test there holds the two lists equal).
var NotificationEvents = []string{"request.created", "request.approved_by", "request.approved", "request.executed", "request.failed",
	"request.rejected", "request.expired", "request.cancelled", "membership.proposed", "membership.changed",
	"gate.quorum_at_risk"}

var notificationName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// Problems checks a target alone (Validate also checks names are unique)
// and returns each problem with the field it is about.
func (n *Notification) Problems() (problems [][2]string) {
	bad := func(field, format string, args ...any) {
		problems = append(problems, [2]string{field, fmt.Sprintf(format, args...)})
	}
	if !notificationName.MatchString(n.Name) {
		bad("name", "%q is not a name of 1 to 64 characters a-z, 0-9, _ and - (e.g. ops-slack)", n.Name)
	}
	if u, err := url.Parse(n.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		bad("url", "%q is not an http or https URL with a host and without credentials", n.URL)
	}
	switch n.Format {
	case "", "json", "slack", "ntfy":
	default:
		bad("format", "%q is not one of json, slack, ntfy", n.Format)
	}
	switch n.Detail {
	case "", "summary", "full":
	default:
		bad("detail", "%q is not summary or full", n.Detail)
	}
	for _, e := range n.Events {
		if !slices.Contains(NotificationEvents, e) {
			bad("events", "%q is not an event; the events are: %s", e, strings.Join(NotificationEvents, ", "))
		}
	}
	for _, c := range n.Conversations {
		if strings.TrimSpace(c) == "" || len(c) > 256 {
			bad("conversations", "%q is not a conversation name or id (or * for all)", c)
		}
	}
	if n.Secret != "" {
		raw, ok := strings.CutPrefix(n.Secret, "whsec_")
		key, err := base64.StdEncoding.DecodeString(raw)
		if !ok || err != nil || len(key) < 24 || len(key) > 64 {
			bad("secret", "is not whsec_ and the base64 of 24 to 64 bytes; leave it out and one is made at first start")
		}
	}
	return problems
}

// Default returns the built-in defaults.
func Default() *Config {
	return &Config{
		Addr:             "127.0.0.1:8080",
		UpstreamTimeout:  Duration(30 * time.Second),
		MaxResponseBytes: 10 << 20,
		LogLevel:         "info",
		TLS:              TLS{Mode: "off", Addr: "127.0.0.1:8443"},
		Management:       Management{MaxFailures: 5, BanFor: Duration(30 * time.Minute)},
		RequestLogs:      RequestLogs{Retention: Duration(90 * 24 * time.Hour)},
		Metrics:          Metrics{Enabled: true},
		Proxy:            Proxy{DefaultWait: Duration(30 * time.Second), MaxWait: Duration(300 * time.Second)},
		Programs:         Programs{RequestTTL: Duration(time.Hour)},
		Limits: Limits{WebSocketsPerToken: 8, WebSocketsPerMember: 32, ConnectionsPerAddress: 128,
			BodyTimeout: Duration(10 * time.Second)},
		Store: "bolt",
		Etcd:  Etcd{Prefix: "/twokey/", LeaseTTL: Duration(5 * time.Second)},
		src:   map[string]string{},
	}
}

// Source says where the value at path (e.g. "tls.mode") came from: "default",
// "FILE:LINE", "env NAME" or "flag --name".
func (c *Config) Source(path string) string {
	if s, ok := c.src[path]; ok {
		return s
	}
	return "default"
}

func (c *Config) setSource(path, src string) {
	if c.src == nil {
		c.src = map[string]string{}
	}
	c.src[path] = src
}

// ServiceOverrides returns Services as NAME=URL, sorted by name.
func (c *Config) ServiceOverrides() []string {
	out := make([]string, 0, len(c.Services))
	for _, k := range sortedKeys(c.Services) {
		out = append(out, k+"="+c.Services[k])
	}
	return out
}

// Validate checks every value and names the source of each bad one.
func (c *Config) Validate() error {
	var errs []string
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s: %s: %s", c.Source(path), path, fmt.Sprintf(format, args...)))
	}
	checkAddr := func(path, v string) {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			bad(path, "%q is not HOST:PORT (e.g. 127.0.0.1:8080; port 0 takes a free one)", v)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad(path, "port %q is not a number from 0 to 65535", port)
		}
	}
	checkAddr("addr", c.Addr)
	switch c.Store {
	case "bolt":
	case "etcd":
		if len(c.Etcd.Endpoints) == 0 {
			bad("etcd.endpoints", "store etcd needs the cluster's endpoints, e.g. --etcd-endpoints 10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379")
		}
		if (c.Etcd.CertFile == "") != (c.Etcd.KeyFile == "") {
			bad("etcd.cert_file", "a client certificate needs both etcd.cert_file and etcd.key_file")
		}
		if c.Etcd.LeaseTTL < Duration(time.Second) {
			bad("etcd.lease_ttl", "must be at least 1s, e.g. 5s")
		}
		if !strings.HasPrefix(c.Etcd.Prefix, "/") {
			bad("etcd.prefix", "%q must start with /, e.g. /twokey/", c.Etcd.Prefix)
		}
	default:
		bad("store", "%q is not bolt or etcd", c.Store)
	}
	if c.UpstreamTimeout <= 0 {
		bad("upstream_timeout", "must be positive, e.g. 30s")
	}
	if c.MaxResponseBytes <= 0 {
		bad("max_response_bytes", "must be a positive number of bytes")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			bad("public_url", "%q is not an http or https URL without query, fragment or credentials (e.g. https://twokey.example.com)", c.PublicURL)
		}
	}
	for _, name := range sortedKeys(c.Services) {
		u, err := url.Parse(c.Services[name])
		if name == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("services", "%q=%q: give NAME=URL with an http or https URL", name, c.Services[name])
		}
	}
	switch c.TLS.Mode {
	case "off", "generate":
	case "files":
		if c.TLS.CertFile == "" {
			bad("tls.cert_file", "tls.mode files needs a certificate file")
		}
		if c.TLS.KeyFile == "" {
			bad("tls.key_file", "tls.mode files needs a key file")
		}
	default:
		bad("tls.mode", "%q is not one of off, generate, files", c.TLS.Mode)
	}
	if c.TLS.Mode != "off" {
		checkAddr("tls.addr", c.TLS.Addr)
	}
	if c.TLS.Force && c.TLS.Mode == "off" {
		bad("tls.force", "redirecting to HTTPS needs tls.mode generate or files")
	}
	for _, n := range c.TLS.Names {
		if n == "" || strings.ContainsAny(n, " /:@") && net.ParseIP(n) == nil {
			bad("tls.names", "%q is not a DNS name or IP address", n)
		}
	}
	for _, p := range c.Management.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				bad("management.trusted_proxies", "%q is not an IP address or CIDR (e.g. 10.0.0.0/8)", p)
			}
		}
	}
	if c.Management.MaxFailures < 1 {
		bad("management.max_failures", "must be at least 1")
	}
	if c.Management.BanFor <= 0 {
		bad("management.ban_for", "must be positive, e.g. 30m")
	}
	if c.RequestLogs.Retention < Duration(time.Hour) {
		bad("request_logs.retention", "must be at least 1h (e.g. 90d)")
	}
	if c.Proxy.MaxWait < Duration(time.Second) || c.Proxy.MaxWait > Duration(time.Hour) {
		bad("proxy.max_wait", "must be between 1s and 1h")
	}
	if c.Proxy.DefaultWait < 0 || c.Proxy.DefaultWait > c.Proxy.MaxWait {
		bad("proxy.default_wait", "must be between 0 and proxy.max_wait (%s)", c.Proxy.MaxWait)
	}
	if c.Programs.RequestTTL < Duration(time.Minute) || c.Programs.RequestTTL > Duration(7*24*time.Hour) {
		bad("programs.request_ttl", "must be between 1m and 7d")
	}
	if c.Limits.WebSocketsPerToken < 1 {
		bad("limits.websockets_per_token", "must be at least 1")
	}
	if c.Limits.WebSocketsPerMember < c.Limits.WebSocketsPerToken {
		bad("limits.websockets_per_member", "must be at least limits.websockets_per_token (%d)", c.Limits.WebSocketsPerToken)
	}
	if c.Limits.MaxConnections < 0 {
		bad("limits.max_connections", "must be 0 (derived from the file descriptor limit) or a number of connections")
	}
	if c.Limits.ConnectionsPerAddress < 0 {
		bad("limits.connections_per_address", "must be 0 (no cap) or a number of connections")
	}
	if c.Limits.BodyTimeout < Duration(100*time.Millisecond) || c.Limits.BodyTimeout > Duration(10*time.Minute) {
		bad("limits.body_timeout", "must be between 100ms and 10m")
	}
	names := map[string]int{}
	for i, n := range c.Notifications {
		at := fmt.Sprintf("notifications.%d", i)
		for _, p := range n.Problems() {
			src := c.Source(at + "." + p[0])
			if src == "default" {
				src = c.Source(at)
			}
			errs = append(errs, fmt.Sprintf("%s: notifications[%d].%s: %s", src, i, p[0], p[1]))
		}
		if j, dup := names[n.Name]; dup {
			errs = append(errs, fmt.Sprintf("%s: notifications[%d].name: %q is also the name of notifications[%d]; give each target its own", c.Source(at+".name"), i, n.Name, j))
		}
		names[n.Name] = i
	}
	if len(errs) > 0 {
		return &Error{Problems: errs}
	}
	return nil
}

// Error lists what is wrong with a configuration, each problem led by
// where its value came from.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "bad configuration: " + e.Problems[0]
	}
	return "bad configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// DeepLink returns base's link to request id of conversation conv
// (docs/ui.md: /#/c/CONV/r/ID), or "" when base is empty.
func DeepLink(base, conv, id string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/#/c/" + url.PathEscape(conv) + "/r/" + url.PathEscape(id)
}
