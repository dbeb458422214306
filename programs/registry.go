package programs

// The registry: the set of programs, and how they are created, changed,
// saved and deleted.

import (
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/twokey/twokey"
)

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

// Sync takes in the programs as another node sharing the store saved them
// (docs/ha.md): one made, rotated, disabled or deleted there holds here
// from this call on. A program with a change of this node's not yet saved
// keeps it. Of a monthly count, the larger of the two is kept: counts made
// on several nodes in the same moment can each miss the other's.
func (r *Registry) Sync(loaded []*Program) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, p := range loaded {
		seen[p.Name] = true
		if r.version[p.Name] != r.saved[p.Name] {
			continue
		}
		old := r.byName[p.Name]
		q := p.Clone()
		if old != nil {
			if old.Month == q.Month && old.MonthCount > q.MonthCount {
				q.MonthCount = old.MonthCount
			}
			if old.LastUsed.After(q.LastUsed) {
				q.LastUsed = old.LastUsed
			}
			for _, k := range old.Keys {
				if r.byHash[k.Hash] == p.Name {
					delete(r.byHash, k.Hash)
				}
			}
			if old.Policy.Rate != q.Policy.Rate {
				delete(r.limiters, p.Name)
			}
		}
		r.byName[p.Name] = q
		for _, k := range q.Keys {
			r.byHash[k.Hash] = p.Name
		}
	}
	for name, old := range r.byName {
		if seen[name] || r.version[name] != r.saved[name] {
			continue
		}
		for _, k := range old.Keys {
			if r.byHash[k.Hash] == name {
				delete(r.byHash, k.Hash)
			}
		}
		delete(r.byName, name)
		delete(r.limiters, name)
	}
}
