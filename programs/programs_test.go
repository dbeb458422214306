package programs

import (
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twokey/twokey"
)

// memStore is a Persister that keeps JSON, as the real one does.
type memStore struct {
	mu    sync.Mutex
	saved map[string][]byte
	fail  bool
}

func (m *memStore) Save(p *Program) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return twokey.Errorf(twokey.EUnavailable, "disk full")
	}
	b, _ := json.Marshal(p)
	m.saved[p.Name] = b
	return nil
}

func (m *memStore) Delete(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return twokey.Errorf(twokey.EUnavailable, "disk full")
	}
	delete(m.saved, name)
	return nil
}

func (m *memStore) load(t *testing.T) []*Program {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Program
	for _, b := range m.saved {
		var p Program
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, &p)
	}
	return out
}

type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func newReg(t *testing.T) (*Registry, *memStore, *fakeNow) {
	clk := &fakeNow{t: time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)}
	st := &memStore{saved: map[string][]byte{}}
	return New(nil, st, clk.Now), st, clk
}

func code(err error) string { return twokey.ErrorCode(err) }

func TestKeyFormat(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		k := NewKey()
		if !LooksLikeKey(k) || len(k) != 3+KeyChars || seen[k] {
			t.Fatalf("bad or repeated key %q", k)
		}
		seen[k] = true
		if Display(k) != k[:9] || len(Hash(k)) != 64 {
			t.Fatal("display or hash")
		}
	}
	for _, s := range []string{"", "tk_", "tk_" + strings.Repeat("0", 42), "tx_" + strings.Repeat("0", 43), "tk_" + strings.Repeat("-", 43)} {
		if LooksLikeKey(s) {
			t.Errorf("%q looks like a key", s)
		}
	}
}

func TestParseRate(t *testing.T) {
	good := map[string]Rate{"60/m": {60, time.Minute}, "10/s": {10, time.Second}, "1000/h": {1000, time.Hour},
		"5/30s": {5, 30 * time.Second}, "": {}, "0": {}, "7/d": {7, 24 * time.Hour}}
	for in, want := range good {
		if r, err := ParseRate(in); err != nil || r != want {
			t.Errorf("ParseRate(%q) = %v, %v", in, r, err)
		}
	}
	for _, in := range []string{"60", "60/x", "-1/m", "0/m", "1/10ms", "a/m"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
	if s := (Rate{60, time.Minute}).String(); s != "60/m" {
		t.Errorf("String %s", s)
	}
}

// TestKeyNeverStored: only the hash and a short prefix reach the store.
func TestKeyNeverStored(t *testing.T) {
	r, st, _ := newReg(t)
	p, key, err := r.Create(Spec{Name: "ci", Conversation: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range st.saved {
		if strings.Contains(string(b), key) || strings.Contains(string(b), key[DisplayLen:]) {
			t.Fatalf("the key is stored: %s", b)
		}
		if !strings.Contains(string(b), Hash(key)) {
			t.Fatalf("the hash is not stored: %s", b)
		}
	}
	if p.Prefix() != key[:DisplayLen] {
		t.Fatal("prefix")
	}
	if _, _, err := r.Create(Spec{Name: "ci", Conversation: "c1"}); err == nil {
		t.Fatal("duplicate name accepted")
	}
	if _, _, err := r.Create(Spec{Name: "bad name", Conversation: "c1"}); code(err) != twokey.EBadPayload {
		t.Fatalf("bad name: %v", err)
	}
}

// TestAuthenticate walks a key through each state that refuses it.
func TestAuthenticate(t *testing.T) {
	r, st, clk := newReg(t)
	_, key, err := r.Create(Spec{Name: "agent", Conversation: "c1", Policy: Policy{ExpiresAt: clk.Now().Add(48 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.Authenticate(key); err != nil || p.Name != "agent" {
		t.Fatalf("fresh key: %v", err)
	}
	mustRefuse := func(what, key, want string) {
		t.Helper()
		_, err := r.Authenticate(key)
		if code(err) != twokey.EUnauthorized || !strings.Contains(twokey.ErrorMessage(err), want) {
			t.Fatalf("%s: %v", what, err)
		}
		if strings.Contains(twokey.ErrorMessage(err), key[DisplayLen:]) {
			t.Fatalf("%s: the error shows the key", what)
		}
	}
	mustRefuse("other key", NewKey(), "not known")
	r.SetEnabled("agent", false)
	mustRefuse("disabled", key, "disabled")
	r.SetEnabled("agent", true)

	// Rotation keeps the old key for the grace period only.
	_, key2, err := r.Rotate("agent", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(key); err != nil {
		t.Fatalf("old key within grace: %v", err)
	}
	clk.Add(time.Hour)
	mustRefuse("rotated out", key, "rotated out")
	if _, err := r.Authenticate(key2); err != nil {
		t.Fatalf("new key: %v", err)
	}
	// A restart keeps all of it.
	r2 := New(st.load(t), st, clk.Now)
	if _, err := r2.Authenticate(key2); err != nil {
		t.Fatalf("after reload: %v", err)
	}
	if _, err := r2.Authenticate(key); code(err) != twokey.EUnauthorized {
		t.Fatalf("rotated-out key after reload: %v", err)
	}
	clk.Add(47 * time.Hour)
	mustRefuse("expired", key2, "expired")
	clk.Add(-47 * time.Hour)
	if err := r.Delete("agent"); err != nil {
		t.Fatal(err)
	}
	mustRefuse("deleted", key2, "never issued or has been deleted")
	if len(st.saved) != 0 {
		t.Fatal("deleted program still stored")
	}
}

// TestRate: with 60/m, 60 requests at one instant pass and the 61st is
// refused; a second later one more passes.
func TestRate(t *testing.T) {
	r, _, clk := newReg(t)
	if _, _, err := r.Create(Spec{Name: "bot", Conversation: "c", Policy: Policy{Rate: Rate{60, time.Minute}}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		if _, err := r.Charge("bot", ""); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	_, err := r.Charge("bot", "")
	if code(err) != twokey.ERateLimited || !strings.Contains(err.Error(), "60/m") {
		t.Fatalf("61st: %v", err)
	}
	clk.Add(time.Second)
	if _, err := r.Charge("bot", ""); err != nil {
		t.Fatalf("after a second: %v", err)
	}
	if _, err := r.Charge("bot", ""); code(err) != twokey.ERateLimited {
		t.Fatalf("again: %v", err)
	}
	p, _ := r.Get("bot")
	if p.MonthCount != 61 {
		t.Fatalf("a refused request was charged: %d", p.MonthCount)
	}
}

func TestTemplates(t *testing.T) {
	r, _, _ := newReg(t)
	if _, _, err := r.Create(Spec{Name: "hn", Conversation: "c", Policy: Policy{Templates: []string{"hn.*", "httpbin.headers"}}}); err != nil {
		t.Fatal(err)
	}
	for tmpl, ok := range map[string]bool{"hn.top-stories": true, "httpbin.headers": true, "httpbin.echo": false, "": false, "dogs.breed": false} {
		_, err := r.Charge("hn", tmpl)
		if ok != (err == nil) || (!ok && code(err) != twokey.EForbidden) {
			t.Errorf("%q: %v", tmpl, err)
		}
	}
	if _, _, err := r.Create(Spec{Name: "x", Conversation: "c", Policy: Policy{Templates: []string{"[bad"}}}); code(err) != twokey.EBadPayload {
		t.Fatalf("bad glob: %v", err)
	}
}

// TestMonthlyCap: the cap holds under concurrency (one counter checks and
// charges), a refund gives one back, and the next month starts at zero.
func TestMonthlyCap(t *testing.T) {
	r, st, clk := newReg(t)
	if _, _, err := r.Create(Spec{Name: "job", Conversation: "c", Policy: Policy{Monthly: 50}}); err != nil {
		t.Fatal(err)
	}
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 120; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Charge("job", "")
			switch code(err) {
			case "":
				ok.Add(1)
			case twokey.ERateLimited:
				limited.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 50 || limited.Load() != 70 {
		t.Fatalf("%d passed, %d limited", ok.Load(), limited.Load())
	}
	// What was stored is the final count (saves never land out of order).
	if ps := st.load(t); len(ps) != 1 || ps[0].MonthCount != 50 {
		t.Fatalf("stored %+v", ps[0])
	}
	_, err := r.Charge("job", "")
	if !strings.Contains(twokey.ErrorMessage(err), "monthly cap") {
		t.Fatalf("message: %v", err)
	}
	// A restart does not reset the month.
	r = New(st.load(t), st, clk.Now)
	if _, err := r.Charge("job", ""); code(err) != twokey.ERateLimited {
		t.Fatalf("after reload: %v", err)
	}
	clk.Add(9 * 24 * time.Hour) // 1 December
	refund, err := r.Charge("job", "")
	if err != nil {
		t.Fatalf("new month: %v", err)
	}
	refund()
	p, _ := r.Get("job")
	if p.MonthCount != 0 || p.Month != "2026-12" {
		t.Fatalf("after refund: %+v", p)
	}
}

// TestStoreFailure: a charge that cannot be saved is not counted.
func TestStoreFailure(t *testing.T) {
	r, st, _ := newReg(t)
	if _, _, err := r.Create(Spec{Name: "job", Conversation: "c", Policy: Policy{Monthly: 5}}); err != nil {
		t.Fatal(err)
	}
	st.fail = true
	if _, err := r.Charge("job", ""); code(err) != twokey.EUnavailable {
		t.Fatalf("charge with a failing store: %v", err)
	}
	if _, _, err := r.Create(Spec{Name: "other", Conversation: "c"}); err == nil {
		t.Fatal("create with a failing store")
	}
	st.fail = false
	p, _ := r.Get("job")
	if p.MonthCount != 0 {
		t.Fatalf("count %d", p.MonthCount)
	}
	if _, err := r.Get("other"); err == nil {
		t.Fatal("a program that was never saved exists")
	}
}

func TestRotateKeepsFewOldKeys(t *testing.T) {
	r, _, _ := newReg(t)
	_, first, _ := r.Create(Spec{Name: "a", Conversation: "c"})
	for i := 0; i < MaxOldKeys+2; i++ {
		if _, _, err := r.Rotate("a", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := r.Get("a")
	if len(p.Keys) != 1+MaxOldKeys {
		t.Fatalf("%d keys kept", len(p.Keys))
	}
	if _, err := r.Authenticate(first); code(err) != twokey.EUnauthorized {
		t.Fatalf("a dropped key still works: %v", err)
	}
	if _, _, err := r.Rotate("a", -time.Second); err == nil {
		t.Fatal("negative grace")
	}
}

// TestFailedDeleteKeepsTheProgram: a delete the store refuses leaves the
// program working, here and after a restart (memory and store agree).
func TestFailedDeleteKeepsTheProgram(t *testing.T) {
	r, st, clk := newReg(t)
	_, key, err := r.Create(Spec{Name: "job", Conversation: "c"})
	if err != nil {
		t.Fatal(err)
	}
	st.fail = true
	if err := r.Delete("job"); code(err) != twokey.EUnavailable {
		t.Fatalf("delete with a failing store: %v", err)
	}
	st.fail = false
	if _, err := r.Authenticate(key); err != nil {
		t.Fatalf("after a failed delete: %v", err)
	}
	if _, err := New(st.load(t), st, clk.Now).Authenticate(key); err != nil {
		t.Fatalf("after a failed delete and a restart: %v", err)
	}
	if err := r.Delete("job"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(key); code(err) != twokey.EUnauthorized {
		t.Fatalf("deleted: %v", err)
	}
	if len(st.load(t)) != 0 {
		t.Fatal("deleted program still stored")
	}
	if err := r.Delete("job"); code(err) != twokey.ENotFound {
		t.Fatalf("delete twice: %v", err)
	}
}

// TestFailedRotateChangesNoKey: a rotation the store refuses leaves every
// key working, the oldest one it would have pushed out included.
func TestFailedRotateChangesNoKey(t *testing.T) {
	r, st, _ := newReg(t)
	_, first, err := r.Create(Spec{Name: "a", Conversation: "c"})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{first}
	for i := 0; i < MaxOldKeys; i++ {
		_, k, err := r.Rotate("a", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	st.fail = true
	if _, k, err := r.Rotate("a", time.Hour); err == nil || k != "" {
		t.Fatalf("rotate with a failing store: %q %v", k, err)
	}
	st.fail = false
	for i, k := range keys {
		if _, err := r.Authenticate(k); err != nil {
			t.Errorf("key %d after a failed rotation: %v", i, err)
		}
	}
	if p, _ := r.Get("a"); len(p.Keys) != 1+MaxOldKeys || p.Keys[0].Prefix != Display(keys[len(keys)-1]) {
		t.Fatalf("keys after a failed rotation: %+v", p.Keys)
	}
}

// TestChargeRechecksTheKey: a key disabled or expired between its
// authentication and its charge is refused by the charge.
func TestChargeRechecksTheKey(t *testing.T) {
	r, _, clk := newReg(t)
	_, key, err := r.Create(Spec{Name: "job", Conversation: "c", Policy: Policy{ExpiresAt: clk.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(key); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetEnabled("job", false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Charge("job", ""); code(err) != twokey.EUnauthorized || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("charge of a disabled key: %v", err)
	}
	if _, err := r.SetEnabled("job", true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(key); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	if _, err := r.Charge("job", ""); code(err) != twokey.EUnauthorized || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("charge of an expired key: %v", err)
	}
	if p, _ := r.Get("job"); p.MonthCount != 0 {
		t.Fatalf("a refused charge counted: %d", p.MonthCount)
	}
}
