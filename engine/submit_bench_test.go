package engine

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
	"github.com/twokey/twokey/vault"
)

// BenchmarkSubmit is everything a gate.request costs the engine but the
// verify and the durable commit (measured apart: BenchmarkOpen,
// BenchmarkAppend): finding the conversation, the membership and signer
// checks, validating the request against its service, the duplicate-id
// read, the rule lookup over the conversation's 10 rules, and building the
// change. It runs on an engine that loaded 10 and then 10,000
// conversations from its bbolt file: the cost should not grow with them,
// since a submission touches only its own conversation.
func BenchmarkSubmit(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("conversations=%d", n), func(b *testing.B) {
			e, convID, author := loadedEngine(b, n)
			svc, ok := e.cfg.Catalog.Service("fun")
			if !ok {
				b.Fatal("the starter catalog has no fun service")
			}
			exp := conversation.FormatTime(time.Now().Add(time.Hour))
			h := conversation.Header{Conversation: convID, CreatedAt: conversation.FormatTime(time.Now()), Gateway: e.gwKey}
			b.ReportAllocs()
			for b.Loop() {
				id := uuid.NewString()
				p := gate.RequestPayload{Header: h, RequestID: id, Service: "fun", Method: "POST",
					URL: svc.BaseURL + "/b/" + id, Body: json.RawMessage(`{"text":"bench"}`), ExpiresAt: exp}
				c, err := e.lookup(convID)
				if err != nil {
					b.Fatal(err)
				}
				c.mu.Lock()
				if !c.st.IsMember(author) || !c.gate.IsSigner(author) {
					b.Fatal("the author is not a signer")
				}
				ch := e.begin(c)
				r, err := e.submit(ch, author, "", p, "sha256:00")
				ch.drop()
				c.mu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
				if r.Required != 3 {
					b.Fatalf("M = %d, want 3 from the catch-all rule", r.Required)
				}
			}
		})
	}
}

// loadedEngine starts an engine over a bbolt file holding n gated
// conversations of four signers and 10 rules each (their snapshots, as
// the engine stores them), loaded by New as at a restart. It returns the engine,
// one conversation and one of its signers.
func loadedEngine(b *testing.B, n int) (*Engine, string, string) {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), "twokey.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ids := make([]*conversation.Identity, 4)
	members := make([]conversation.Member, 4)
	keys := make([]string, 4)
	for i := range ids {
		if ids[i], err = conversation.NewIdentity(fmt.Sprintf("signer%d", i)); err != nil {
			b.Fatal(err)
		}
		members[i] = conversation.Member{Key: ids[i].KeyID(), Name: ids[i].Name}
		keys[i] = ids[i].KeyID()
	}
	var rules []gate.Rule
	for i := range 9 {
		rules = append(rules, gate.Rule{Service: "fun", Endpoint: fmt.Sprintf("/v1/things/%d", i), Method: "POST", RequiredApprovals: 2})
	}
	rules = gate.Normalize(append(rules, gate.Rule{Service: "fun", Endpoint: gate.Any, Method: gate.Any, RequiredApprovals: 3}))
	if err := gate.ValidateRules(rules, len(keys)); err != nil {
		b.Fatal(err)
	}
	// Written through the store from 64 writers, so that they share
	// fsyncs (group commit) and a 10,000 load takes a moment.
	convs := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Go(func() {
			for i := w; i < n; i += 64 {
				id := uuid.NewString()
				convs[i] = id
				snap, err := json.Marshal(snapshot{
					State: &conversation.State{ID: id, Name: fmt.Sprintf("c%d", i), Admin: keys[0], Members: members,
						CreatedAt: conversation.FormatTime(time.Now())},
					Gate: gate.Config{Enabled: true, Signers: keys, RequiredApprovals: 2, Rules: rules}})
				if err == nil {
					err = st.Commit(&store.Write{Conv: id, Puts: []store.Put{{Bucket: store.Convs, Key: id, Value: snap}}})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	e, err := New(testConfig(b, st, clock.Real{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	if got := len(e.convs); got != n {
		b.Fatalf("the engine loaded %d conversations, want %d", got, n)
	}
	return e, convs[n/2], keys[1]
}

// testConfig is an engine's configuration over st for tests: a fresh
// vault, gateway identity, box and token keys, the starter catalog.
func testConfig(tb testing.TB, st store.Store, clk clock.Clock) Config {
	tb.Helper()
	master := make([]byte, 32)
	rand.Read(master)
	v, err := vault.New(master)
	if err != nil {
		tb.Fatal(err)
	}
	cat, err := catalog.Starter()
	if err != nil {
		tb.Fatal(err)
	}
	gw, err := conversation.NewIdentity("gateway")
	if err != nil {
		tb.Fatal(err)
	}
	box, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	var boxPub, boxPriv [32]byte
	copy(boxPub[:], box.PublicKey().Bytes())
	copy(boxPriv[:], box.Bytes())
	tokenKey := make([]byte, 32)
	rand.Read(tokenKey)
	return Config{Store: st, Vault: v, Catalog: cat, Gateway: gw, BoxPub: &boxPub, BoxPriv: &boxPriv,
		Clock: clk, TokenKey: tokenKey}
}
