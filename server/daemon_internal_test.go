package server

import (
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/twokey/twokey/config"
)

// TestStartReadsEveryConfigSetting: every setting of the configuration
// 'twokey serve' loads reaches the part of the server that reads it, the
// running configuration shown is the one given (secrets masked), and the
// daemon keeps no plaintext secret.
func TestStartReadsEveryConfigSetting(t *testing.T) {
	dir := t.TempDir()
	c, err := config.Load("", func(k string) string {
		return map[string]string{"TWOKEY_REQUEST_LOGS_RETENTION": "2h", "TWOKEY_PROXY_MAX_WAIT": "90s", "TWOKEY_PROXY_DEFAULT_WAIT": "10s",
			"TWOKEY_PROGRAMS_REQUEST_TTL": "15m", "TWOKEY_METRICS_ENABLED": "false", "TWOKEY_MANAGEMENT_MAX_FAILURES": "3",
			"TWOKEY_MANAGEMENT_BAN_FOR": "1h", "TWOKEY_MANAGEMENT_ALLOW_REMOTE": "true", "TWOKEY_MANAGEMENT_TRUSTED_PROXIES": "10.0.0.0/8",
			"TWOKEY_MANAGEMENT_KEY": "a-management-key", "TWOKEY_TLS_MODE": "generate", "TWOKEY_TLS_ADDR": "127.0.0.1:0",
			"TWOKEY_TLS_NAMES": "gw.example", "TWOKEY_SERVICES": "httpbin=http://127.0.0.1:1", "TWOKEY_ADDR": "127.0.0.1:0",
			"TWOKEY_HOME": dir, "TWOKEY_LIMITS_WEBSOCKETS_PER_TOKEN": "3", "TWOKEY_LIMITS_CONNECTIONS_PER_ADDRESS": "0",
			"TWOKEY_LIMITS_BODY_TIMEOUT": "7s"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := c.Map()
	d, err := Start(c, Deps{Out: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	o, m := d.op, d.op.mgmt
	if o.defaultWait != 10*time.Second || o.maxWait != 90*time.Second || o.requestTTL != 15*time.Minute {
		t.Errorf("proxy and programs: default wait %s, max wait %s, request ttl %s", o.defaultWait, o.maxWait, o.requestTTL)
	}
	if !m.enabled() || m.maxFailures != 3 || m.banFor != time.Hour || !m.allowRemote || len(m.trusted) != 1 {
		t.Errorf("management: enabled %v, max failures %d, ban for %s, remote %v, trusted %v", m.enabled(), m.maxFailures, m.banFor, m.allowRemote, m.trusted)
	}
	if d.TLSURL() == "" {
		t.Error("tls.mode generate: no HTTPS listener")
	}
	if l := d.Limits(); l.WebSocketsPerToken != 3 || l.ConnectionsPerAddress >= 0 || l.BodyTimeout != 7*time.Second {
		t.Errorf("limits %+v (limits.connections_per_address 0 is no cap)", l)
	}
	if resp, err := http.Get(d.URL() + "/metrics"); err != nil || resp.StatusCode != 404 {
		t.Errorf("metrics.enabled false: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if !reflect.DeepEqual(o.effective, want) {
		t.Errorf("the running configuration is not the one given:\n%v\n%v", o.effective, want)
	}
	if d.opts.cfg.Management.Key != "" || d.opts.cfg.MasterKey != "" {
		t.Error("the daemon keeps a plaintext secret")
	}
	if c.Management.Key != "a-management-key" {
		t.Error("Start changed the caller's configuration")
	}
}

// TestProxyDefaultWait: proxy.default_wait 0 means no wait (202 at once),
// and no wait is longer than proxy.max_wait.
func TestProxyDefaultWait(t *testing.T) {
	for _, tt := range []struct{ def, max, want time.Duration }{
		{0, 300 * time.Second, 0},
		{30 * time.Second, 300 * time.Second, 30 * time.Second},
		{30 * time.Second, time.Second, time.Second},
		{0, 0, 0},
		{30 * time.Second, 0, 30 * time.Second}, // max_wait unset: its default, 300 s
	} {
		c := config.Default()
		c.Proxy.DefaultWait, c.Proxy.MaxWait = config.Duration(tt.def), config.Duration(tt.max)
		o := newOperator(&Daemon{opts: settings{cfg: *c}}, nil, nil)
		o.cancel()
		if o.defaultWait != tt.want {
			t.Errorf("default_wait %s, max_wait %s: waits %s, want %s", tt.def, tt.max, o.defaultWait, tt.want)
		}
	}
}
