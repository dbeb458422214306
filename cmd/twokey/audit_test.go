package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// auditCLI runs the twokey command line in process and returns its exit
// status, standard output and standard error.
func auditCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb},
		func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestAuditFlagParsing(t *testing.T) {
	f := &factory{getenv: func(string) string { return "" }, ctx: context.Background()}
	var got *auditVerifyOptions
	var arg string
	cmd := newAuditVerifyCmd(f, func(o *auditVerifyOptions, a string) error { got, arg = o, a; return nil })
	cmd.SetArgs([]string{"ops", "--gateway", "KEY", "--checkpoint", "a.json", "--checkpoint", "b.json", "--anchor", "3=sha256:ab", "--live"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if arg != "ops" || got.gateway != "KEY" || len(got.checkpoints) != 2 || len(got.anchors) != 1 || !got.live {
		t.Fatalf("parsed %q %+v", arg, got)
	}
	var eo *auditExportOptions
	ex := newAuditExportCmd(f, func(o *auditExportOptions, a string) error { eo, arg = o, a; return nil })
	ex.SetArgs([]string{"ops", "-o", "x.json"})
	if err := ex.Execute(); err != nil || eo.out != "x.json" || arg != "ops" {
		t.Fatalf("export: %v %+v %q", err, eo, arg)
	}
	// A malformed anchor is a usage error (exit 2), before any I/O.
	code, _, stderr := auditCLI(t, nil, "audit", "verify", "nowhere.json", "--anchor", "x")
	if code != 2 || !strings.Contains(stderr, "--anchor") {
		t.Fatalf("bad anchor: exit %d, %s", code, stderr)
	}
}

func TestAuditExportAndVerifyEndToEnd(t *testing.T) {
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up)
	dir := t.TempDir()
	ctx := testutil.Ctx(t)
	alice, bob := testutil.Identity(t, "alice"), testutil.Identity(t, "bob")
	for _, id := range []*conversation.Identity{alice, bob} {
		if err := id.Save(filepath.Join(dir, id.Name+".json")); err != nil {
			t.Fatal(err)
		}
	}
	ca, cb := testutil.Client(srv.URL(), alice, nil), testutil.Client(srv.URL(), bob, nil)
	rec, err := ca.CreateConversation(ctx, "ops", []conversation.Member{{Key: bob.KeyID(), Name: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &cp)
	if _, err := ca.EnableGate(ctx, cp.Conversation, 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddSecret(ctx, cp.Conversation, "httpbin", "", "", 0, []byte("sk_cli_audit_1")); err != nil {
		t.Fatal(err)
	}
	rec, err = ca.Submit(ctx, cp.Conversation, gate.RequestPayload{Service: "httpbin", Method: "GET", URL: up.URL + "/httpbin/get",
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	var rp gate.RequestPayload
	_ = json.Unmarshal(rec.Body, &rp)
	if _, _, err := cb.Vote(ctx, cp.Conversation, rp.RequestID, true, ""); err != nil {
		t.Fatal(err)
	}
	if st, err := ca.WaitRequest(ctx, cp.Conversation, rp.RequestID); err != nil || st.State != gate.StateExecuted {
		t.Fatalf("%v %v", st, err)
	}
	gw, _ := ca.Gateway(ctx)
	env := map[string]string{"TWOKEY_SERVER": srv.URL(), "TWOKEY_IDENTITY": filepath.Join(dir, "bob.json")}

	// Export, then verify the file with the server gone.
	file := filepath.Join(dir, "ops.json")
	code, _, stderr := auditCLI(t, env, "audit", "export", "ops", "-o", file)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	code, stdout, _ := auditCLI(t, env, "audit", "verify", cp.Conversation, "--live", "--gateway", gw.SigningKey)
	if code != 0 || !strings.Contains(stdout, "live") || !strings.Contains(stdout, "OK") {
		t.Fatalf("live verify: exit %d\n%s", code, stdout)
	}
	srv.Stop(t)
	offline := map[string]string{"TWOKEY_SERVER": "http://127.0.0.1:1", "TWOKEY_IDENTITY": filepath.Join(dir, "bob.json")}
	code, stdout, stderr = auditCLI(t, offline, "audit", "verify", file, "--gateway", gw.SigningKey, "--checkpoint", file)
	if code != 0 || !strings.Contains(stdout, "offline") || !strings.Contains(stdout, "1 executed") || !strings.HasSuffix(stdout, "OK\n") {
		t.Fatalf("offline verify: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// Tamper: bob's approval now approves in someone else's name.
	data, _ := os.ReadFile(file)
	x, err := audit.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	for i, r := range x.Records {
		if r.Kind == conversation.KindGateApprove {
			p, _ := base64.StdEncoding.DecodeString(r.Envelope.Payload)
			x.Records[i].Envelope = conversation.Sign(testutil.Identity(t, "mallory"), r.Kind, p)
			x.Records[i].Envelope.Signatures[0].KeyID = r.Author
			seq = r.Seq
		}
	}
	data, _ = x.Marshal()
	bad := filepath.Join(dir, "tampered.json")
	os.WriteFile(bad, data, 0o644)
	code, _, stderr = auditCLI(t, offline, "audit", "verify", bad)
	want := "record " + strconv.FormatUint(seq, 10)
	if code != 1 || !strings.Contains(stderr, "audit failed") || !strings.Contains(stderr, want+" (gate.approve)") || !strings.Contains(stderr, "signature") {
		t.Fatalf("tampered file: exit %d, want 1 naming %s:\n%s", code, want, stderr)
	}
	// A file that is not an export.
	os.WriteFile(bad, []byte(`{"hello":1}`), 0o644)
	if code, _, stderr = auditCLI(t, offline, "audit", "verify", bad); code != 1 || !strings.Contains(stderr, "format") {
		t.Fatalf("not an export: exit %d: %s", code, stderr)
	}
}
