package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/internal/testutil"
)

// TestManagement drives every call of the management client against a
// real server: program keys made, listed, rotated, disabled, deleted; the
// request log and usage; the running configuration; blocks listed and
// lifted. Refusals come back classified, and a server without the
// management API says how to turn it on.
func TestManagement(t *testing.T) {
	srv := testutil.StartServer(t, nil, func(o *testutil.Options) { o.Management.Key = testMgmtKey })
	ctx := testutil.Ctx(t)
	if _, err := testutil.Client(srv.URL(), testutil.Identity(t, "alice"), nil).CreateConversation(ctx, "ops", nil); err != nil {
		t.Fatal(err)
	}
	m, err := client.OpenManagement(srv.URL(), testMgmtKey, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nk, err := m.CreateKey(ctx, api.KeyCreate{Name: "ci", Conversation: "ops", Templates: []string{"hn.*"}, Rate: "60/m"})
	if err != nil || !strings.HasPrefix(nk.Key, nk.Program.Prefix) || nk.Program.Name != "ci" || nk.Program.ConversationName != "ops" {
		t.Fatalf("CreateKey: %+v, %v", nk, err)
	}
	if keys, err := m.Keys(ctx); err != nil || len(keys) != 1 || keys[0].Name != "ci" || keys[0].Rate != "60/m" {
		t.Fatalf("Keys: %+v, %v", keys, err)
	}
	rot, err := m.RotateKey(ctx, "ci", api.KeyRotate{Grace: "1h"})
	if err != nil || rot.Key == nk.Key || len(rot.Program.OldKeys) != 1 || rot.Program.OldKeys[0].Prefix != nk.Program.Prefix {
		t.Fatalf("RotateKey: %+v, %v", rot, err)
	}
	if k, err := m.EnableKey(ctx, "ci", false); err != nil || k.Enabled {
		t.Fatalf("EnableKey(false): %+v, %v", k, err)
	}
	if k, err := m.Key(ctx, "ci"); err != nil || k.Enabled || k.Prefix != rot.Program.Prefix {
		t.Fatalf("Key: %+v, %v", k, err)
	}
	if k, err := m.EnableKey(ctx, "ci", true); err != nil || !k.Enabled {
		t.Fatalf("EnableKey(true): %+v, %v", k, err)
	}
	if page, err := m.RequestLog(ctx, client.LogQuery{Since: "24h", Limit: 5}); err != nil || page.Entries == nil || len(page.Entries) != 0 {
		t.Fatalf("RequestLog: %+v, %v", page, err)
	}
	if _, err := m.RequestLog(ctx, client.LogQuery{Limit: api.MaxLogPage + 1}); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("RequestLog over a page: %v", err)
	}
	if u, err := m.Usage(ctx, client.UsageQuery{By: api.UsageByService, Since: "7d"}); err != nil || u.By != api.UsageByService || u.FirstDay == "" {
		t.Fatalf("Usage: %+v, %v", u, err)
	}
	if cfg, err := m.Config(ctx); err != nil || cfg == nil {
		t.Fatalf("Config: %v, %v", cfg, err)
	} else if mg, _ := cfg["management"].(map[string]any); mg == nil || mg["key"] == testMgmtKey {
		t.Fatalf("Config shows the management key, or no management section: %v", cfg["management"])
	}
	if bans, err := m.Bans(ctx); err != nil || bans == nil || len(bans) != 0 {
		t.Fatalf("Bans: %+v, %v", bans, err)
	}
	if n, err := m.Unban(ctx, "203.0.113.7"); err != nil || n != 0 {
		t.Fatalf("Unban: %d, %v", n, err)
	}
	if _, err := m.Unban(ctx, "not an address"); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("Unban of a bad address: %v", err)
	}
	if err := m.DeleteKey(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Key(ctx, "ci"); err == nil {
		t.Fatal("a deleted key is still there")
	}

	wrong, _ := client.OpenManagement(srv.URL(), "not-the-key", client.Options{})
	if _, err := wrong.Keys(ctx); twokey.ErrorCode(err) != twokey.EUnauthorized {
		t.Fatalf("a wrong key: %v", err)
	}
	off := testutil.StartServer(t, nil)
	mo, _ := client.OpenManagement(off.URL(), testMgmtKey, client.Options{})
	if _, err := mo.Keys(ctx); twokey.ErrorCode(err) != twokey.ENotFound || !strings.Contains(twokey.ErrorMessage(err), "management API is off") {
		t.Fatalf("a server without the management API: %v", err)
	}
	if _, err := client.OpenManagement("http://203.0.113.7:8080", testMgmtKey, client.Options{}); err == nil {
		t.Fatal("plain http:// to another host was not refused before dialing")
	}
}

// TestOptionsWithEnv: the flags win; what they leave unset comes from
// TWOKEY_CA_CERT, TWOKEY_PIN and TWOKEY_INSECURE_HTTP; a variable that is
// not a boolean is a setting error.
func TestOptionsWithEnv(t *testing.T) {
	env := map[string]string{"TWOKEY_CA_CERT": "env.pem", "TWOKEY_PIN": "sha256:env", "TWOKEY_INSECURE_HTTP": "1"}
	o, err := client.Options{}.WithEnv(func(k string) string { return env[k] })
	if err != nil || o.CACert != "env.pem" || o.Pin != "sha256:env" || !o.InsecureHTTP {
		t.Fatalf("from the environment: %+v, %v", o, err)
	}
	o, err = client.Options{CACert: "flag.pem", Pin: "sha256:flag"}.WithEnv(func(k string) string { return env[k] })
	if err != nil || o.CACert != "flag.pem" || o.Pin != "sha256:flag" {
		t.Fatalf("flags first: %+v, %v", o, err)
	}
	env["TWOKEY_INSECURE_HTTP"] = "maybe"
	var se *client.SettingError
	if _, err := (client.Options{}).WithEnv(func(k string) string { return env[k] }); err == nil || !errors.As(err, &se) {
		t.Fatalf("TWOKEY_INSECURE_HTTP=maybe: %v", err)
	}
}
