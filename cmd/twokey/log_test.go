package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/internal/testutil"
)

// tamperingProxy forwards to a real server and passes every page of the
// log it answers through tamper, which changes records as raw JSON (so an
// untouched record keeps its exact bytes).
func tamperingProxy(t *testing.T, target string, tamper func(recs []json.RawMessage) []json.RawMessage) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != "GET" || !strings.HasSuffix(resp.Request.URL.Path, "/messages") || resp.StatusCode != 200 {
			return nil
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var page struct {
			Records []json.RawMessage `json:"records"`
		}
		if err := json.Unmarshal(data, &page); err != nil {
			return err
		}
		page.Records = tamper(page.Records)
		data, _ = json.Marshal(page)
		resp.Body = io.NopCloser(bytes.NewReader(data))
		resp.ContentLength = int64(len(data))
		resp.Header.Del("Content-Length")
		return nil
	}
	p := httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p
}

// seqOf reads a raw record's seq.
func seqOf(r json.RawMessage) uint64 {
	var v struct {
		Seq uint64 `json:"seq"`
	}
	_ = json.Unmarshal(r, &v)
	return v.Seq
}

// TestLogSaysLoudlyWhenARecordFailsToVerify puts a proxy that changes a
// record between a real server and 'twokey log': the command prints
// VERIFICATION FAILED naming the record and exits non-zero, whatever was
// changed (the body shown, the signed payload, the chain, the order).
func TestLogSaysLoudlyWhenARecordFailsToVerify(t *testing.T) {
	srv := testutil.StartServer(t, nil)
	dir := t.TempDir()
	alice := testutil.Identity(t, "alice")
	if err := alice.Save(filepath.Join(dir, "alice.json")); err != nil {
		t.Fatal(err)
	}
	c := testutil.Client(srv.URL(), alice, nil)
	ctx := testutil.Ctx(t)
	rec, err := c.CreateConversation(ctx, "ops", nil)
	if err != nil {
		t.Fatal(err)
	}
	var cp conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &cp)
	for _, text := range []string{"pay 10 EUR to bob", "and nothing more"} {
		if _, err := c.Say(ctx, cp.Conversation, text); err != nil {
			t.Fatal(err)
		}
	}
	env := func(server string) map[string]string {
		return map[string]string{"TWOKEY_SERVER": server, "TWOKEY_IDENTITY": filepath.Join(dir, "alice.json"), "TWOKEY_HOME": dir}
	}

	// Through an honest proxy the log verifies: the tampering below is
	// what fails.
	honest := tamperingProxy(t, srv.URL(), func(recs []json.RawMessage) []json.RawMessage { return recs })
	if code, out, errs := run(t, env(honest.URL), "log", "ops"); code != 0 || !strings.Contains(out, "signatures and chain verified") {
		t.Fatalf("untampered log: exit %d\n%s%s", code, out, errs)
	}

	// edit applies f to the raw bytes of record seq.
	edit := func(seq uint64, f func(r []byte) []byte) func([]json.RawMessage) []json.RawMessage {
		return func(recs []json.RawMessage) []json.RawMessage {
			for i, r := range recs {
				if seqOf(r) == seq {
					recs[i] = f(bytes.Clone(r))
				}
			}
			return recs
		}
	}
	cases := []struct {
		name   string
		seq    string
		tamper func([]json.RawMessage) []json.RawMessage
	}{
		{"the body shown", "2", edit(2, func(r []byte) []byte {
			return bytes.Replace(r, []byte(`"pay 10 EUR to bob"`), []byte(`"pay 1000 EUR to eve"`), 1)
		})},
		{"the signed payload", "2", edit(2, func(r []byte) []byte {
			var v struct {
				Envelope struct {
					Payload string `json:"payload"`
				} `json:"envelope"`
			}
			_ = json.Unmarshal(r, &v)
			p, _ := base64.StdEncoding.DecodeString(v.Envelope.Payload)
			p = bytes.Replace(p, []byte("10 EUR"), []byte("99 EUR"), 1)
			r = bytes.Replace(r, []byte(v.Envelope.Payload), []byte(base64.StdEncoding.EncodeToString(p)), 1)
			return bytes.Replace(r, []byte(`"pay 10 EUR to bob"`), []byte(`"pay 99 EUR to bob"`), 1)
		})},
		{"the chain", "3", edit(3, func(r []byte) []byte {
			var v struct {
				Chain string `json:"chain"`
			}
			_ = json.Unmarshal(r, &v)
			return bytes.Replace(r, []byte(v.Chain), []byte("sha256:"+strings.Repeat("0", 64)), 1)
		})},
		{"a record left out", "3", func(recs []json.RawMessage) []json.RawMessage {
			return slices.DeleteFunc(recs, func(r json.RawMessage) bool { return seqOf(r) == 2 })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tamperingProxy(t, srv.URL(), tc.tamper)
			code, out, errs := run(t, env(p.URL), "log", "ops")
			if code == 0 {
				t.Fatalf("a tampered log (%s) exited 0:\n%s%s", tc.name, out, errs)
			}
			if !strings.Contains(out, "VERIFICATION FAILED at record") {
				t.Fatalf("no loud VERIFICATION FAILED for %s:\n%s%s", tc.name, out, errs)
			}
			if !strings.Contains(out, "VERIFICATION FAILED at record "+tc.seq) {
				t.Errorf("the failure does not name record %s:\n%s", tc.seq, out)
			}
			if strings.Contains(out, "signatures and chain verified") {
				t.Errorf("says verified after a failure:\n%s", out)
			}
			if !strings.Contains(errs, "did not verify") {
				t.Errorf("stderr does not say the log did not verify: %q", errs)
			}
			if strings.Contains(out, "pay 1000 EUR") || strings.Contains(out, "pay 99 EUR") {
				t.Errorf("the tampered text was shown as if it were the record:\n%s", out)
			}
		})
	}
}
