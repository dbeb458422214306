// Package programs holds program keys: bearer keys for programs (an AI
// agent, a CI job) that may propose calls through the gateway but never
// approve them.
//
// It makes keys (shown once; only their SHA-256 is kept), authenticates
// them in constant time, and enforces each key's policy: whether it is
// enabled, its expiry, its template list, its rate and its monthly cap.
// Charge is the one counter that both checks and charges the rate and the
// cap, under one lock, so concurrent requests can never overshoot them.
// Time comes from the caller's clock. The package performs no HTTP and no
// storage: a Persister saves what changes, durably, before Charge returns.
package programs

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math/big"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/twokey/twokey"
)

// KeyPrefix starts every program key, so that a leaked one is recognisable
// (and secret scanners can find it).
const KeyPrefix = "tk_"

// KeyBytes is the entropy of a key; KeyChars its base62 length.
const (
	KeyBytes = 32
	KeyChars = 43 // 62^43 > 2^256
	// DisplayLen is how much of a key is kept and shown: the prefix and
	// six characters, e.g. "tk_AbC12x".
	DisplayLen = len(KeyPrefix) + 6
	// MaxOldKeys bounds the rotated-out keys kept per program.
	MaxOldKeys = 4
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewKey returns a fresh key: KeyPrefix and 32 random bytes in base62.
func NewKey() string {
	b := make([]byte, KeyBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	n := new(big.Int).SetBytes(b)
	clear(b)
	out := make([]byte, KeyChars)
	base, mod := big.NewInt(62), new(big.Int)
	for i := KeyChars - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = base62[mod.Int64()]
	}
	return KeyPrefix + string(out)
}

// LooksLikeKey reports whether s has the form of a program key.
func LooksLikeKey(s string) bool {
	if len(s) != len(KeyPrefix)+KeyChars || !strings.HasPrefix(s, KeyPrefix) {
		return false
	}
	for i := len(KeyPrefix); i < len(s); i++ {
		if strings.IndexByte(base62, s[i]) < 0 {
			return false
		}
	}
	return true
}

// Hash is the stored form of a key: hex SHA-256 of the whole key.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Display is the part of a key that may be shown and logged.
func Display(key string) string {
	if len(key) < DisplayLen {
		return key
	}
	return key[:DisplayLen]
}

// Rate is N requests per Per; the zero Rate is unlimited.
type Rate struct {
	N   int           `json:"n,omitempty"`
	Per time.Duration `json:"per,omitempty"`
}

var rateRE = regexp.MustCompile(`^(\d+)\s*/\s*(s|m|h|d|\d+[a-z]+)$`)

// ParseRate reads "60/m" (also /s, /h, /d, or a duration such as /30s).
// "" and "0" are unlimited.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return Rate{}, nil
	}
	sm := rateRE.FindStringSubmatch(s)
	if sm == nil {
		return Rate{}, fmt.Errorf("rate %q: give N/UNIT, e.g. 60/m, 10/s or 1000/h", s)
	}
	n, err := strconv.Atoi(sm[1])
	if err != nil || n < 1 || n > 1_000_000 {
		return Rate{}, fmt.Errorf("rate %q: N must be from 1 to 1000000", s)
	}
	var per time.Duration
	switch sm[2] {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	case "d":
		per = 24 * time.Hour
	default:
		if per, err = time.ParseDuration(sm[2]); err != nil || per < time.Second {
			return Rate{}, fmt.Errorf("rate %q: the period must be at least 1s", s)
		}
	}
	return Rate{N: n, Per: per}, nil
}

func (r Rate) String() string {
	if r.N == 0 {
		return "unlimited"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h", 24 * time.Hour: "d"}[r.Per]
	if unit == "" {
		unit = r.Per.String()
	}
	return fmt.Sprintf("%d/%s", r.N, unit)
}

// Policy is what a program key may do.
type Policy struct {
	// Templates are globs (path.Match) of template names; empty allows any
	// call, a non-empty list only calls of a matching template.
	Templates []string  `json:"templates,omitempty"`
	Rate      Rate      `json:"rate"`
	Monthly   int64     `json:"monthly,omitempty"` // requests per calendar month (UTC); 0 = no cap
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// AllowsTemplate reports whether the policy lets a call of template through.
func (p *Policy) AllowsTemplate(template string) bool {
	if len(p.Templates) == 0 {
		return true
	}
	for _, g := range p.Templates {
		if ok, _ := path.Match(g, template); ok && template != "" {
			return true
		}
	}
	return false
}

// Key is one hashed key of a program.
type Key struct {
	Hash      string    `json:"hash"`   // hex SHA-256 of the whole key
	Prefix    string    `json:"prefix"` // the first DisplayLen characters
	CreatedAt time.Time `json:"created_at"`
	// Until is set when the key was rotated out: it stays valid until then.
	Until time.Time `json:"until,omitzero"`
}

// Program is a named program key and its accounting.
type Program struct {
	Name             string    `json:"name"`
	Conversation     string    `json:"conversation"`
	ConversationName string    `json:"conversation_name"`
	Keys             []Key     `json:"keys"` // Keys[0] is the current key
	Policy           Policy    `json:"policy"`
	Enabled          bool      `json:"enabled"`
	CreatedAt        time.Time `json:"created_at"`
	LastUsed         time.Time `json:"last_used,omitzero"`
	// Month is the calendar month (UTC, "2006-01") MonthCount counts.
	Month      string `json:"month,omitempty"`
	MonthCount int64  `json:"month_count"`
}

// Clone returns a deep copy.
func (p *Program) Clone() *Program {
	c := *p
	c.Keys = slices.Clone(p.Keys)
	c.Policy.Templates = slices.Clone(p.Policy.Templates)
	return &c
}

// Prefix is the current key's display prefix.
func (p *Program) Prefix() string {
	if len(p.Keys) == 0 {
		return ""
	}
	return p.Keys[0].Prefix
}

// UsedIn returns how many requests the program made in now's month.
func (p *Program) UsedIn(now time.Time) int64 {
	if p.Month != monthOf(now) {
		return 0
	}
	return p.MonthCount
}

func monthOf(t time.Time) string { return t.UTC().Format("2006-01") }

// Persister saves programs durably. Save is called with a copy.
type Persister interface {
	Save(p *Program) error
	Delete(name string) error
}

// Registry holds every program key. It is safe for concurrent use.
type Registry struct {
	persist Persister
	now     func() time.Time

	mu       sync.Mutex
	byName   map[string]*Program
	byHash   map[string]string // key hash -> program name
	limiters map[string]*rate.Limiter
	version  map[string]uint64 // bumped on every change
	saved    map[string]uint64 // the version last persisted

	saveMu sync.Mutex // one save at a time, so saves land in order
}

// New returns a registry of the loaded programs.
func New(loaded []*Program, persist Persister, now func() time.Time) *Registry {
	r := &Registry{persist: persist, now: now, byName: map[string]*Program{}, byHash: map[string]string{},
		limiters: map[string]*rate.Limiter{}, version: map[string]uint64{}, saved: map[string]uint64{}}
	for _, p := range loaded {
		r.byName[p.Name] = p.Clone()
		for _, k := range p.Keys {
			r.byHash[k.Hash] = p.Name
		}
	}
	return r
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidName reports whether s can name a program.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Spec is what Create needs.
type Spec struct {
	Name             string
	Conversation     string
	ConversationName string
	Policy           Policy
}

// Create makes a program key and returns the program and the key, which
// is never stored and cannot be shown again.
func (r *Registry) Create(s Spec) (*Program, string, error) {
	now := r.now()
	if !ValidName(s.Name) {
		return nil, "", twokey.Errorf(twokey.EBadPayload, "name %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", twokey.Clip(s.Name))
	}
	if s.Conversation == "" {
		return nil, "", twokey.Errorf(twokey.EBadPayload, "a program key is bound to one conversation; name it")
	}
	if err := checkPolicy(&s.Policy, now); err != nil {
		return nil, "", err
	}
	key := NewKey()
	p := &Program{Name: s.Name, Conversation: s.Conversation, ConversationName: s.ConversationName,
		Keys: []Key{{Hash: Hash(key), Prefix: Display(key), CreatedAt: now}}, Policy: s.Policy,
		Enabled: true, CreatedAt: now, Month: monthOf(now)}
	r.mu.Lock()
	if _, dup := r.byName[s.Name]; dup {
		r.mu.Unlock()
		return nil, "", twokey.Errorf(twokey.EDuplicateRequest, "a program key named %q exists; pick another name, or rotate that one", s.Name)
	}
	r.byName[p.Name] = p
	r.byHash[p.Keys[0].Hash] = p.Name
	v := r.bump(p.Name)
	out := p.Clone()
	r.mu.Unlock()
	if err := r.save(p.Name, v); err != nil {
		r.mu.Lock()
		delete(r.byName, p.Name)
		delete(r.byHash, p.Keys[0].Hash)
		r.mu.Unlock()
		return nil, "", err
	}
	return out, key, nil
}

func checkPolicy(p *Policy, now time.Time) error {
	for _, g := range p.Templates {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			return twokey.Errorf(twokey.EBadPayload, "template glob %q is malformed (use names and *, e.g. hn.*)", twokey.Clip(g))
		}
	}
	if p.Rate.N < 0 || (p.Rate.N > 0) != (p.Rate.Per > 0) {
		return twokey.Errorf(twokey.EBadPayload, "rate must be N per a positive period, e.g. 60/m")
	}
	if p.Monthly < 0 {
		return twokey.Errorf(twokey.EBadPayload, "the monthly cap must be positive (or 0 for none)")
	}
	if !p.ExpiresAt.IsZero() && !p.ExpiresAt.After(now) {
		return twokey.Errorf(twokey.EBadPayload, "expiry %s is already past", p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// bump marks name changed and returns its new version. Called with mu held.
func (r *Registry) bump(name string) uint64 {
	r.version[name]++
	return r.version[name]
}

// save persists name's state as of version v or later. Saves run one at a
// time; a caller whose version a later save already covered returns at
// once, so concurrent changes share writes and never land out of order.
func (r *Registry) save(name string, v uint64) error {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.mu.Lock()
	if r.saved[name] >= v {
		r.mu.Unlock()
		return nil
	}
	cur := r.version[name]
	p := r.byName[name]
	if p != nil {
		p = p.Clone()
	}
	r.mu.Unlock()
	var err error
	if p == nil {
		err = r.persist.Delete(name)
	} else {
		err = r.persist.Save(p)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	if cur > r.saved[name] {
		r.saved[name] = cur
	}
	r.mu.Unlock()
	return nil
}

// List returns copies of every program, by name.
func (r *Registry) List() []*Program {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Program, 0, len(r.byName))
	for _, p := range r.byName {
		out = append(out, p.Clone())
	}
	slices.SortFunc(out, func(a, b *Program) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Get returns a copy of the named program.
func (r *Registry) Get(name string) (*Program, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.byName[name]
	if p == nil {
		return nil, notFound(name)
	}
	return p.Clone(), nil
}

func notFound(name string) error {
	return twokey.Errorf(twokey.ENotFound, "no program key named %q ('twokey keys ls' lists them)", twokey.Clip(name))
}

// change applies f to the named program under the lock and saves it.
func (r *Registry) change(name string, f func(p *Program) error) (*Program, error) {
	r.mu.Lock()
	p := r.byName[name]
	if p == nil {
		r.mu.Unlock()
		return nil, notFound(name)
	}
	before := p.Clone()
	if err := f(p); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	v := r.bump(name)
	out := p.Clone()
	r.mu.Unlock()
	if err := r.save(name, v); err != nil {
		r.mu.Lock()
		if r.byName[name] == p {
			*p = *before
		}
		r.mu.Unlock()
		return nil, err
	}
	return out, nil
}

// SetEnabled enables or disables a program key.
func (r *Registry) SetEnabled(name string, on bool) (*Program, error) {
	return r.change(name, func(p *Program) error { p.Enabled = on; return nil })
}

// Rotate gives the program a new key. The old one stays valid for grace
// (zero: it stops at once). It returns the new key, shown once. The new key
// is indexed (and the keys it pushes out unindexed) only once the change
// is saved, so a failed save leaves every key as it was.
func (r *Registry) Rotate(name string, grace time.Duration) (*Program, string, error) {
	if grace < 0 || grace > MaxGrace {
		return nil, "", twokey.Errorf(twokey.EBadPayload, "grace must be between 0 and 30d")
	}
	now := r.now()
	key := NewKey()
	var dropped []string
	p, err := r.change(name, func(p *Program) error {
		dropped = nil
		old := slices.Clone(p.Keys)
		for i := range old {
			if old[i].Until.IsZero() || old[i].Until.After(now.Add(grace)) {
				old[i].Until = now.Add(grace)
			}
		}
		p.Keys = append([]Key{{Hash: Hash(key), Prefix: Display(key), CreatedAt: now}}, old...)
		if len(p.Keys) > 1+MaxOldKeys {
			for _, k := range p.Keys[1+MaxOldKeys:] {
				dropped = append(dropped, k.Hash)
			}
			p.Keys = p.Keys[:1+MaxOldKeys]
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	if r.byName[name] != nil { // not deleted meanwhile
		r.byHash[Hash(key)] = name
		for _, h := range dropped {
			if r.byHash[h] == name {
				delete(r.byHash, h)
			}
		}
	}
	r.mu.Unlock()
	return p, key, nil
}

// MaxGrace is the longest a rotated-out key may stay valid.
const MaxGrace = 30 * 24 * time.Hour

// DefaultGrace is how long a rotated-out key stays valid when the caller
// does not say (the CLI's --grace default and the management API's): none,
// so that rotating a key that leaked ends it at once; a grace for the
// programs still holding it is the caller's choice.
const DefaultGrace time.Duration = 0

// Delete removes a program key; its keys stop working at once. It is
// deleted from the store first: a failed delete leaves it in place, both
// here and after a restart.
func (r *Registry) Delete(name string) error {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.mu.Lock()
	if r.byName[name] == nil {
		r.mu.Unlock()
		return notFound(name)
	}
	r.mu.Unlock()
	if err := r.persist.Delete(name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.byName[name]; p != nil {
		delete(r.byName, name)
		for _, k := range p.Keys {
			if r.byHash[k.Hash] == name {
				delete(r.byHash, k.Hash)
			}
		}
	}
	delete(r.limiters, name)
	r.saved[name] = r.bump(name) // deleted is what is stored
	return nil
}

// Authenticate returns the program a key belongs to, or unauthorized: for
// a key that is malformed, unknown (never issued, or deleted), rotated out,
// disabled or expired, each with a message saying which.
func (r *Registry) Authenticate(key string) (*Program, error) {
	if !LooksLikeKey(key) {
		return nil, twokey.Errorf(twokey.EUnauthorized, "no program key: send Authorization: Bearer %s... (an operator makes one with 'twokey keys create')", KeyPrefix)
	}
	h := Hash(key)
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.byName[r.byHash[h]]
	if p == nil {
		return nil, twokey.Errorf(twokey.EUnauthorized, "program key %s is not known here: it was never issued or has been deleted", Display(key))
	}
	var k *Key
	for i := range p.Keys {
		if subtle.ConstantTimeCompare([]byte(p.Keys[i].Hash), []byte(h)) == 1 {
			k = &p.Keys[i]
		}
	}
	switch {
	case k == nil:
		return nil, twokey.Errorf(twokey.EUnauthorized, "program key %s is not known here", Display(key))
	case !k.Until.IsZero() && !now.Before(k.Until):
		return nil, twokey.Errorf(twokey.EUnauthorized, "program key %s of %q was rotated out at %s; use its new key", k.Prefix, p.Name, k.Until.UTC().Format(time.RFC3339))
	}
	if err := usable(p, now); err != nil {
		return nil, err
	}
	p.LastUsed = now
	out := p.Clone()
	out.Keys = []Key{*k} // the key that was used
	return out, nil
}

// usable refuses a program that is disabled or expired at now.
func usable(p *Program, now time.Time) error {
	switch {
	case !p.Enabled:
		return twokey.Errorf(twokey.EUnauthorized, "program key %q is disabled; an operator enables it with 'twokey keys enable %s'", p.Name, p.Name)
	case !p.Policy.ExpiresAt.IsZero() && !now.Before(p.Policy.ExpiresAt):
		return twokey.Errorf(twokey.EUnauthorized, "program key %q expired at %s; an operator makes a new one", p.Name, p.Policy.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// Charge checks the named program's policy for a call of template ("" for
// a call that matches no template) and, if it passes, counts it against
// the rate and the monthly cap, durably, in one step. refund undoes the
// monthly charge when the gateway then refuses the request.
func (r *Registry) Charge(name, template string) (refund func(), err error) {
	now := r.now()
	r.mu.Lock()
	p := r.byName[name]
	if p == nil {
		r.mu.Unlock()
		return nil, twokey.Errorf(twokey.EUnauthorized, "program key %q has been deleted", twokey.Clip(name))
	}
	// Checked again: the key may have been disabled, or have expired,
	// since it was authenticated.
	if err := usable(p, now); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	if !p.Policy.AllowsTemplate(template) {
		r.mu.Unlock()
		if template == "" {
			return nil, twokey.Errorf(twokey.EForbidden, "program %q may call only templates %s; this call is not one of the catalog's templates", p.Name, strings.Join(p.Policy.Templates, ", "))
		}
		return nil, twokey.Errorf(twokey.EForbidden, "program %q may call only templates %s, not %s", p.Name, strings.Join(p.Policy.Templates, ", "), template)
	}
	month := monthOf(now)
	if p.Month != month {
		p.Month, p.MonthCount = month, 0
	}
	if p.Policy.Monthly > 0 && p.MonthCount >= p.Policy.Monthly {
		r.mu.Unlock()
		return nil, twokey.Errorf(twokey.ERateLimited, "program %q has made its %d requests for %s, its monthly cap; it resets on the 1st (UTC) or an operator raises it", p.Name, p.Policy.Monthly, month)
	}
	if p.Policy.Rate.N > 0 {
		lim := r.limiters[name]
		if lim == nil {
			lim = rate.NewLimiter(rate.Limit(float64(p.Policy.Rate.N)/p.Policy.Rate.Per.Seconds()), p.Policy.Rate.N)
			r.limiters[name] = lim
		}
		if !lim.AllowN(now, 1) {
			res := lim.ReserveN(now, 1)
			wait := res.DelayFrom(now)
			res.CancelAt(now)
			r.mu.Unlock()
			return nil, twokey.Errorf(twokey.ERateLimited, "program %q is over its rate of %s; retry in %s", p.Name, p.Policy.Rate, wait.Round(time.Millisecond))
		}
	}
	p.MonthCount++
	p.LastUsed = now
	v := r.bump(name)
	r.mu.Unlock()
	undo := func() {
		r.mu.Lock()
		q := r.byName[name]
		if q == nil || q != p || q.Month != month || q.MonthCount == 0 {
			r.mu.Unlock()
			return
		}
		q.MonthCount--
		v := r.bump(name)
		r.mu.Unlock()
		_ = r.save(name, v) // best effort: an over-count errs on the safe side
	}
	if err := r.save(name, v); err != nil {
		undo()
		return nil, err
	}
	return undo, nil
}
