package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.TLS.Addr != "127.0.0.1:8443" || c.RequestLogs.Retention.D() != 90*24*time.Hour || c.Proxy.MaxWait.D() != 300*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestPrecedence checks flags > env > file > defaults, and that each
// value's source is kept.
func TestPrecedence(t *testing.T) {
	p := write(t, `
addr: 127.0.0.1:9000
tls:
  mode: generate
  names: [gw.example]
request_logs:
  retention: 30d
services:
  httpbin: http://127.0.0.1:1/httpbin
`)
	c, err := Load(p, env(map[string]string{"TWOKEY_ADDR": "127.0.0.1:9001", "TWOKEY_TLS_FORCE": "true",
		"TWOKEY_MANAGEMENT_KEY": "s3cret-management", "TWOKEY_SERVICES": "fun=http://127.0.0.1:2"}))
	if err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	BindFlags(fs)
	if fs.Lookup("management-key") != nil || fs.Lookup("master-key") != nil {
		t.Fatal("a secret has a flag: it would show in the process list")
	}
	if err := fs.Parse([]string{"--addr", "127.0.0.1:9002", "--service", "httpbin=http://127.0.0.1:3", "--tls-addr=127.0.0.1:9443"}); err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyFlags(fs); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ path, got, want, src string }{
		{"addr", c.Addr, "127.0.0.1:9002", "flag --addr"},
		{"tls.mode", c.TLS.Mode, "generate", p + ":4"},
		{"tls.force", "x", "x", "env TWOKEY_TLS_FORCE"},
		{"tls.addr", c.TLS.Addr, "127.0.0.1:9443", "flag --tls-addr"},
		{"request_logs.retention", c.RequestLogs.Retention.String(), "30d", p + ":7"},
		{"management.key", c.Management.Key, "s3cret-management", "env TWOKEY_MANAGEMENT_KEY"},
		{"upstream_timeout", c.UpstreamTimeout.String(), "30s", "default"},
	}
	for _, ck := range checks {
		if ck.got != ck.want || c.Source(ck.path) != ck.src {
			t.Errorf("%s = %q from %q; want %q from %q", ck.path, ck.got, c.Source(ck.path), ck.want, ck.src)
		}
	}
	want := []string{"fun=http://127.0.0.1:2", "httpbin=http://127.0.0.1:3"}
	if got := c.ServiceOverrides(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("services %v, want %v", got, want)
	}
	out, err := c.Show()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "s3cret") || !strings.Contains(s, "key: '"+Mask+"'") && !strings.Contains(s, "key: "+Mask) {
		t.Fatalf("secret not masked:\n%s", s)
	}
	if !strings.Contains(s, "addr: 127.0.0.1:9002 # flag --addr") || !strings.Contains(s, "# "+p+":4") {
		t.Fatalf("sources not shown:\n%s", s)
	}
	if strings.Index(s, "addr:") > strings.Index(s, "tls:") {
		t.Fatalf("not in declaration order:\n%s", s)
	}
	if m := c.Map(); m["management"].(map[string]any)["key"] != Mask || m["master_key"] != "" {
		t.Fatalf("map: %v", m)
	}
}

// TestErrorsNameTheSource checks that every bad value is reported with the
// file and line, variable or flag it came from, and the field.
func TestErrorsNameTheSource(t *testing.T) {
	cases := []struct {
		name, file string
		env        map[string]string
		flags      []string
		want       []string
	}{
		{name: "unknown field", file: "addr: 127.0.0.1:1\ntls:\n  mode: off\n  mdoe: generate\n",
			want: []string{":4: field \"mdoe\" is not known in tls; the fields are: mode, addr, force"}},
		{name: "unknown top-level field", file: "adr: x\n", want: []string{":1: field \"adr\" is not known at the top level; the fields are: addr, data_dir"}},
		{name: "bad mode", file: "tls:\n  mode: gen\n", want: []string{":2: tls.mode: \"gen\" is not one of off, generate, files"}},
		{name: "bad duration", file: "request_logs:\n  retention: forever\n", want: []string{":2: ", "\"forever\" is not a duration"}},
		{name: "wrong type", file: "max_response_bytes: lots\n", want: []string{":1: max_response_bytes: cannot unmarshal"}},
		{name: "syntax", file: "tls: [\n", want: []string{FileName}},
		{name: "files without cert", file: "tls:\n  mode: files\n", want: []string{"default: tls.cert_file: tls.mode files needs a certificate file"}},
		{name: "two documents", file: "addr: a:1\n---\naddr: b:2\n", want: []string{":2: the file holds more than one YAML document"}},
		{name: "env", env: map[string]string{"TWOKEY_TLS_FORCE": "maybe"}, want: []string{"env TWOKEY_TLS_FORCE: tls.force: \"maybe\" is not true or false"}},
		{name: "env invalid", env: map[string]string{"TWOKEY_ADDR": "nowhere"}, want: []string{"env TWOKEY_ADDR: addr: \"nowhere\" is not HOST:PORT"}},
		{name: "flag", flags: []string{"--upstream-timeout", "soon"}, want: []string{"flag --upstream-timeout: upstream_timeout: \"soon\" is not a duration"}},
		{name: "proxy", file: "proxy:\n  max_wait: 2h\n", want: []string{":2: proxy.max_wait: must be between 1s and 1h"}},
		{name: "force without tls", flags: []string{"--tls-force"}, want: []string{"flag --tls-force: tls.force: redirecting to HTTPS needs tls.mode"}},
		{name: "proxy under a second", file: "proxy:\n  max_wait: 500ms\n  default_wait: 0s\n", want: []string{":2: proxy.max_wait: must be between 1s and 1h"}},
		{name: "flow mapping", file: "addr: 127.0.0.1:1\ntls: {mode: gen, force: true}\n", want: []string{":2: tls.mode: \"gen\" is not one of off, generate, files"}},
		{name: "flow mapping, first key", file: "tls: {force: true, mode: off}\n", want: []string{":1: tls.force: redirecting to HTTPS needs tls.mode"}},
		{name: "flow mapping, bad value", file: "proxy: {max_wait: 1m, default_wait: soon}\n", want: []string{":1: ", "\"soon\" is not a duration"}},
		{name: "flow mapping, wrong type", file: "management: {max_failures: lots, ban_for: 1m}\n", want: []string{":1: management.max_failures: cannot unmarshal"}},
		{name: "flow mapping, unknown field", file: "tls: {mdoe: x, mode: off}\n", want: []string{":1: field \"mdoe\" is not known in tls; the fields are: mode, addr"}},
		{name: "trusted proxy", env: map[string]string{"TWOKEY_MANAGEMENT_TRUSTED_PROXIES": "10.0.0.0/8,not-an-ip"}, want: []string{"env TWOKEY_MANAGEMENT_TRUSTED_PROXIES: management.trusted_proxies: \"not-an-ip\""}},
		{name: "limits", file: "limits:\n  websockets_per_token: 0\n  max_connections: -1\n  body_timeout: 1h\n",
			flags: []string{"--limits-connections-per-address", "-5"},
			want: []string{":2: limits.websockets_per_token: must be at least 1", ":3: limits.max_connections: must be 0",
				":4: limits.body_timeout: must be between 100ms and 10m", "flag --limits-connections-per-address: limits.connections_per_address: must be 0"}},
		{name: "limits per member under per token", env: map[string]string{"TWOKEY_LIMITS_WEBSOCKETS_PER_MEMBER": "4"},
			want: []string{"env TWOKEY_LIMITS_WEBSOCKETS_PER_MEMBER: limits.websockets_per_member: must be at least limits.websockets_per_token (8)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = write(t, tc.file)
			}
			c, err := Load(path, env(tc.env))
			if err == nil && tc.flags != nil {
				fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
				BindFlags(fs)
				if err := fs.Parse(tc.flags); err != nil {
					t.Fatal(err)
				}
				err = c.ApplyFlags(fs)
			}
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestFind(t *testing.T) {
	home := t.TempDir()
	none := env(nil)
	if p, err := Find("", home, none); err != nil || p != "" {
		t.Fatalf("no file: %q %v", p, err)
	}
	if _, err := Find(filepath.Join(home, "missing.yaml"), home, none); err == nil {
		t.Fatal("a missing --config file is not an error")
	}
	def := filepath.Join(home, FileName)
	os.WriteFile(def, []byte("addr: 127.0.0.1:1\n"), 0o600)
	if p, _ := Find("", home, none); p != def {
		t.Fatalf("home file not found: %q", p)
	}
	other := write(t, "")
	if p, _ := Find("", home, env(map[string]string{"TWOKEY_CONFIG": other})); p != other {
		t.Fatalf("TWOKEY_CONFIG ignored: %q", p)
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "30s": 30 * time.Second, "1h30m": 90 * time.Minute, "0d": 0} {
		if d, err := ParseDuration(in); err != nil || d != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, d, err)
		}
	}
	for _, in := range []string{"", "d", "-1d", "1.5d", "ten"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
	if s := Duration(48 * time.Hour).String(); s != "2d" {
		t.Errorf("48h shows as %s", s)
	}
}

func TestEveryFieldHasEnvAndHelp(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Default().fields() {
		if f.help == "" {
			t.Errorf("%s has no help", f.path)
		}
		if seen[f.env] {
			t.Errorf("%s: env %s used twice", f.path, f.env)
		}
		seen[f.env] = true
	}
}

// FuzzLoadYAML: a configuration file never panics the loader, and what
// loads renders.
func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte("addr: 127.0.0.1:8080\ntls:\n  mode: generate\n"))
	f.Add([]byte("services:\n  httpbin: http://127.0.0.1:1\nrequest_logs: {retention: 90d}\n"))
	f.Add([]byte("tls: [\n"))
	f.Add([]byte("management:\n  key: x\n  trusted_proxies: [10.0.0.1]\n  bogus: 1\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if err := c.LoadYAML("fuzz.yaml", data); err != nil {
			if !strings.HasPrefix(err.Error(), "bad configuration") {
				t.Fatalf("error without the prefix: %v", err)
			}
			return
		}
		_ = c.Validate()
		if _, err := c.Show(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSecretFileMode: a file holding a secret must be open to its owner
// only; one without a secret may be readable by anyone.
func TestSecretFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	cases := []struct {
		text string
		mode os.FileMode
		want string // "" for no error
	}{
		{"management:\n  key: s3cret-mgmt\n", 0o644, "holds a secret (management.key) but its mode 0644 opens it to other users; run 'chmod 600 "},
		{"master_key: c2VjcmV0\nmanagement: {key: k}\n", 0o640, "holds a secret (master_key, management.key)"},
		{"management:\n  key: s3cret-mgmt\n", 0o600, ""},
		{"management:\n  key: s3cret-mgmt\n", 0o700, ""},
		{"management:\n  key: s3cret-mgmt\n", 0o620, "its mode 0620 opens it"},
		{"addr: 127.0.0.1:1\n", 0o644, ""},
		{"management:\n  key: \"\"\n", 0o644, ""},
	}
	for _, tc := range cases {
		p := write(t, tc.text)
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p, env(nil))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q at %04o: %v", tc.text, tc.mode, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p)):
			t.Errorf("%q at %04o: %v; want %q naming %s", tc.text, tc.mode, err, tc.want, p)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

// FuzzLoadEnv: any TWOKEY_* value (one variable, or with name "" every
// variable at once) never panics the loader; a refusal names the variable;
// what loads validates and renders, with secrets masked.
func FuzzLoadEnv(f *testing.F) {
	f.Add("TWOKEY_TLS_MODE", "generate")
	f.Add("TWOKEY_SERVICES", "httpbin=http://127.0.0.1:1,fun=http://127.0.0.1:2")
	f.Add("TWOKEY_SERVICES", "a=,=b,c")
	f.Add("TWOKEY_MANAGEMENT_TRUSTED_PROXIES", "10.0.0.0/8, ::1,,")
	f.Add("TWOKEY_PROXY_MAX_WAIT", "9223372036854775807ns")
	f.Add("TWOKEY_REQUEST_LOGS_RETENTION", "36500d")
	f.Add("TWOKEY_METRICS_ENABLED", "maybe")
	f.Add("TWOKEY_MANAGEMENT_MAX_FAILURES", "-99999999999999999999")
	f.Add("TWOKEY_MANAGEMENT_KEY", "s3cret")
	f.Add("TWOKEY_HOME", "/tmp/x")
	f.Add("", "1")
	f.Add("", "true")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, name, value string) {
		c := Default()
		err := c.LoadEnv(func(k string) string {
			if name == "" || k == name {
				return value
			}
			return ""
		})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "bad configuration") || !strings.Contains(err.Error(), "env TWOKEY_") {
				t.Fatalf("error that names no variable: %v", err)
			}
			return
		}
		_ = c.Validate()
		if _, err := c.Show(); err != nil {
			t.Fatal(err)
		}
		m := c.Map()
		if k := m["management"].(map[string]any)["key"]; c.Management.Key != "" && k != Mask {
			t.Fatalf("management.key shown as %v", k)
		}
		if k := m["master_key"]; c.MasterKey != "" && k != Mask {
			t.Fatalf("master_key shown as %v", k)
		}
	})
}

// TestOperationsDocCoversEverySetting: docs/operations.md names every
// setting's path, variable and flag.
func TestOperationsDocCoversEverySetting(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Paths() {
		for _, want := range []string{"`" + p[0] + "`", "`" + p[1] + "`"} {
			if want == "``" {
				continue // a setting only the file holds (notifications)
			}
			if !strings.Contains(string(doc), want) {
				t.Errorf("docs/operations.md does not name %s", want)
			}
		}
		if p[2] != "" && !strings.Contains(string(doc), "`--"+p[2]) {
			t.Errorf("docs/operations.md does not name the flag --%s", p[2])
		}
	}
}

// TestNotifications: webhook targets load from the file with each key's
// line, a bad one is named by file:line, and config show masks a secret.
func TestNotifications(t *testing.T) {
	p := write(t, `
notifications:
  - name: ops-slack
    url: https://hooks.slack.example/services/T/B/X
    format: slack
    conversations: [ops]
  - name: pager
    url: https://ntfy.example/twokey
    format: ntfy
    events: [request.created, gate.quorum_at_risk]
    detail: full
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
`)
	c, err := Load(p, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Notifications) != 2 || c.Notifications[1].Detail != "full" || c.Notifications[0].Conversations[0] != "ops" {
		t.Fatalf("notifications: %+v", c.Notifications)
	}
	out, err := c.Show()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "MfKQ9r8") || !strings.Contains(string(out), Mask) || !strings.Contains(string(out), "ops-slack") {
		t.Fatalf("config show:\n%s", out)
	}
	bad := write(t, `
notifications:
  - name: Bad Name
    url: ftp://x
  - name: dup
    url: http://127.0.0.1:1
    format: xml
    events: [request.nope]
    detail: all
    secret: whsec_short
  - name: dup
    url: http://127.0.0.1:2
`)
	c, err = Load(bad, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("bad targets accepted")
	}
	for _, want := range []string{
		bad + ":3: notifications[0].name", bad + ":4: notifications[0].url", bad + ":7: notifications[1].format",
		bad + ":8: notifications[1].events", bad + ":9: notifications[1].detail", bad + ":10: notifications[1].secret",
		bad + ":11: notifications[2].name: \"dup\" is also",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "whsec_short") {
		t.Errorf("the error shows the secret: %v", err)
	}
	c = Default()
	err = c.LoadYAML("x.yaml", []byte("notifications:\n  - name: a\n    bogus: 1\n"))
	if err == nil || !strings.Contains(err.Error(), "x.yaml:3") || !strings.Contains(err.Error(), "in a notification target; the fields are: name, url") {
		t.Fatalf("unknown field: %v", err)
	}
}
