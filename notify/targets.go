package notify

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/store"
)

// Keys of the Webhooks bucket.
const (
	keyTarget = "target/" // an API-made target's settings (storedTarget)
	keySecret = "secret/" // every target's sealed secrets (storedSecret)
)

// storedTarget is an API-made target at rest.
type storedTarget struct {
	V             int       `json:"v"`
	Name          string    `json:"name"`
	URL           string    `json:"url"`
	Format        string    `json:"format"`
	Conversations []string  `json:"conversations"`
	Events        []string  `json:"events"`
	Detail        string    `json:"detail"`
	CreatedAt     time.Time `json:"created_at"`
}

// storedSecret is a target's secrets, sealed.
type storedSecret struct {
	V             int       `json:"v"`
	Current       []byte    `json:"current"`
	Previous      []byte    `json:"previous,omitempty"`
	PreviousUntil time.Time `json:"previous_until,omitzero"`
	RotatedAt     time.Time `json:"rotated_at"`
}

// target is one target and its queue.
type target struct {
	hook      api.Webhook // settings; the queue's counts are filled in on reading
	yamlKey   bool        // its secret is twokey.yaml's
	secret    string
	previous  string
	convs     []string // ids or names; "*" all
	events    map[string]bool
	queue     []*entry // by order
	running   int
	timerStop func() bool
	timerAt   time.Time
	timerGen  int
	hist      []hist // delivered and dead, by order
	dead      int

	wmu     sync.Mutex  // held while the target's keys are written
	deleted atomic.Bool // set (under Notifier.mu) before its keys are dropped
}

type hist struct {
	order uint64
	dead  bool
}

func (t *target) wants(event, convID, convName string) bool {
	if !t.events[event] {
		return false
	}
	return slices.Contains(t.convs, "*") || slices.Contains(t.convs, convID) || (convName != "" && slices.Contains(t.convs, convName))
}

// enqueue puts e in order (commits of two conversations may come back in
// another order than their Puts).
func (t *target) enqueue(e *entry) {
	i := sort.Search(len(t.queue), func(i int) bool { return t.queue[i].Order > e.Order })
	t.queue = slices.Insert(t.queue, i, e)
}

// ready reports whether an entry could start now.
func (t *target) ready(now time.Time) bool {
	blocked := map[string]bool{}
	for _, e := range t.queue {
		if e.Key != "" {
			if blocked[e.Key] {
				continue
			}
			blocked[e.Key] = true
		}
		if !e.busy && !e.NextAt.After(now) {
			return true
		}
	}
	return false
}

func (t *target) addHistory(order uint64, dead bool) {
	i := sort.Search(len(t.hist), func(i int) bool { return t.hist[i].order > order })
	t.hist = slices.Insert(t.hist, i, hist{order, dead})
	if dead {
		t.dead++
	}
}

func (t *target) stopTimer() {
	if t.timerStop != nil {
		t.timerStop()
		t.timerStop = nil
	}
}

// secrets are the secrets that sign now: the current one, and the
// previous during its grace.
func (t *target) secrets(now time.Time) []string {
	s := []string{t.secret}
	if t.previous != "" && now.Before(t.hook.PreviousSecretUntil) {
		s = append(s, t.previous)
	}
	return s
}

// view is t as the management API shows it.
func (t *target) view() api.Webhook {
	w := t.hook
	w.Conversations, w.Events = slices.Clone(w.Conversations), slices.Clone(w.Events)
	for _, e := range t.queue {
		w.Queued++
		if w.OldestQueued.IsZero() || e.Event.Timestamp.Before(w.OldestQueued) {
			w.OldestQueued = e.Event.Timestamp
		}
	}
	w.Dead = t.dead
	return w
}

// newTarget builds a target from settings checked already.
func newTarget(n config.Notification, source string, created time.Time) *target {
	t := &target{hook: api.Webhook{Name: n.Name, URL: n.URL, Format: n.Format, Conversations: slices.Clone(n.Conversations),
		Events: slices.Clone(n.Events), Detail: n.Detail, Source: source, CreatedAt: created}}
	t.setup()
	return t
}

// setup fills in the defaults and the lookups of t.hook.
func (t *target) setup() {
	h := &t.hook
	if h.Format == "" {
		h.Format = api.WebhookJSON
	}
	if h.Detail == "" {
		h.Detail = api.DetailSummary
	}
	if len(h.Conversations) == 0 {
		h.Conversations = []string{"*"}
	}
	if h.Events == nil {
		h.Events = []string{}
	}
	t.convs = h.Conversations
	t.events = defaultEvents()
	if len(h.Events) > 0 {
		t.events = map[string]bool{}
		for _, e := range h.Events {
			t.events[e] = true
		}
	}
}

func aad(name string) []byte { return []byte("twokey/webhook-secret/" + name) }

// loadTargets reads twokey.yaml's targets and the API's, and each one's
// secrets (made now for a yaml target without any).
func (n *Notifier) loadTargets() error {
	now := n.clock.Now()
	for i, c := range n.cfg.Targets {
		if p := c.Problems(); len(p) > 0 {
			return fmt.Errorf("notify: notifications[%d].%s: %s", i, p[0][0], p[0][1])
		}
		if n.targets[c.Name] != nil {
			return fmt.Errorf("notify: two targets are named %s", c.Name)
		}
		t := newTarget(c, "config", time.Time{})
		if c.Secret != "" {
			t.secret, t.yamlKey = c.Secret, true
		}
		n.targets[c.Name] = t
	}
	stored := map[string][]byte{}
	if err := n.st.ForEach(store.Webhooks, func(k string, v []byte) error {
		stored[k] = v
		return nil
	}); err != nil {
		return fmt.Errorf("notify: read the webhook targets: %w", err)
	}
	for k, v := range stored {
		name, ok := strings.CutPrefix(k, keyTarget)
		if !ok {
			continue
		}
		var s storedTarget
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("notify: webhook target %s does not decode: %w", twokey.Clip(name), err)
		}
		if n.targets[name] != nil {
			n.log.Warn("a webhook target of the management API has the name of one in twokey.yaml; twokey.yaml's is used: delete the other through the API, or rename one", AttrTarget, name)
			continue
		}
		c := config.Notification{Name: s.Name, URL: s.URL, Format: s.Format, Conversations: s.Conversations, Events: s.Events, Detail: s.Detail}
		n.targets[name] = newTarget(c, "api", s.CreatedAt)
	}
	var made []string
	for name, t := range n.targets {
		v := stored[keySecret+name]
		if v == nil {
			if t.yamlKey {
				continue
			}
			if t.hook.Source == "api" {
				return fmt.Errorf("notify: webhook target %s has no secret in the store; delete it and create it again", name)
			}
			// A yaml target without a secret: make one.
			t.secret = NewSecret()
			t.hook.SecretRotatedAt = now
			b, err := n.sealed(name, t, now)
			if err != nil {
				return err
			}
			if err := n.st.Put(store.Webhooks, keySecret+name, b); err != nil {
				return fmt.Errorf("notify: store the secret of webhook target %s: %w", name, err)
			}
			made = append(made, name)
			continue
		}
		var s storedSecret
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("notify: the secret of webhook target %s does not decode: %w", name, err)
		}
		if t.yamlKey {
			continue // twokey.yaml's wins
		}
		cur, err := n.cfg.Sealer.Open(s.Current, aad(name))
		if err != nil {
			return fmt.Errorf("notify: open the secret of webhook target %s: %w", name, err)
		}
		t.secret, t.hook.SecretRotatedAt = string(cur), s.RotatedAt
		if len(s.Previous) > 0 && now.Before(s.PreviousUntil) {
			prev, err := n.cfg.Sealer.Open(s.Previous, aad(name))
			if err != nil {
				return fmt.Errorf("notify: open the previous secret of webhook target %s: %w", name, err)
			}
			t.previous, t.hook.PreviousSecretUntil = string(prev), s.PreviousUntil
		}
	}
	sort.Strings(made)
	for _, name := range made {
		n.log.Info("made a signing secret for webhook target of twokey.yaml; rotate it through the management API (PATCH /v0/management/webhooks/NAME, rotate_secret) to see one", AttrTarget, name)
	}
	return nil
}

// sealed is t's secrets sealed, as stored.
func (n *Notifier) sealed(name string, t *target, now time.Time) ([]byte, error) {
	cur, err := n.cfg.Sealer.Seal([]byte(t.secret), aad(name))
	if err != nil {
		return nil, fmt.Errorf("notify: seal the secret of webhook target %s: %w", name, err)
	}
	s := storedSecret{V: 1, Current: cur, RotatedAt: t.hook.SecretRotatedAt}
	if t.previous != "" && now.Before(t.hook.PreviousSecretUntil) {
		if s.Previous, err = n.cfg.Sealer.Seal([]byte(t.previous), aad(name)); err != nil {
			return nil, fmt.Errorf("notify: seal the secret of webhook target %s: %w", name, err)
		}
		s.PreviousUntil = t.hook.PreviousSecretUntil
	}
	return json.Marshal(s)
}

// Targets lists the targets by name, never their secrets.
func (n *Notifier) Targets() []api.Webhook {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]api.Webhook, 0, len(n.targets))
	for _, t := range n.targets {
		out = append(out, t.view())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Target returns one target.
func (n *Notifier) Target(name string) (api.Webhook, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.targets[name]
	if t == nil {
		return api.Webhook{}, notFound(name)
	}
	return t.view(), nil
}

func notFound(name string) error {
	return twokey.Errorf(twokey.ENotFound, "no webhook target is named %q; list them with GET /v0/management/webhooks", twokey.Clip(name))
}

// checked refuses settings that are not valid, with what to give.
func checked(c config.Notification) error {
	if p := c.Problems(); len(p) > 0 {
		msgs := make([]string, len(p))
		for i, x := range p {
			msgs[i] = x[0] + ": " + x[1]
		}
		return twokey.Errorf(twokey.EBadPayload, "webhook target: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// Create makes a target and its secret, shown this once.
func (n *Notifier) Create(in api.WebhookCreate) (api.WebhookSecret, error) {
	c := config.Notification{Name: in.Name, URL: in.URL, Format: in.Format, Conversations: in.Conversations, Events: in.Events, Detail: in.Detail}
	if err := checked(c); err != nil {
		return api.WebhookSecret{}, err
	}
	now := n.clock.Now()
	t := newTarget(c, "api", now)
	t.secret, t.hook.SecretRotatedAt = NewSecret(), now
	n.mu.Lock()
	if n.targets[in.Name] != nil {
		n.mu.Unlock()
		return api.WebhookSecret{}, twokey.Errorf(twokey.EBadPayload, "a webhook target is already named %q; choose another name, or change that one with PATCH", in.Name)
	}
	n.targets[in.Name] = t // reserved; Puts may use it once stored
	n.mu.Unlock()
	if err := n.storeTarget(t, now); err != nil {
		n.mu.Lock()
		delete(n.targets, in.Name)
		n.mu.Unlock()
		return api.WebhookSecret{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return api.WebhookSecret{Webhook: t.view(), Secret: t.secret}, nil
}

// storeTarget writes t's settings (an API target's) and sealed secrets.
func (n *Notifier) storeTarget(t *target, now time.Time) error {
	n.mu.Lock()
	name := t.hook.Name
	s := storedTarget{V: 1, Name: name, URL: t.hook.URL, Format: t.hook.Format, Conversations: t.hook.Conversations,
		Events: t.hook.Events, Detail: t.hook.Detail, CreatedAt: t.hook.CreatedAt}
	isAPI := t.hook.Source == "api"
	sec, err := n.sealed(name, t, now)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	puts := []store.Put{{Bucket: store.Webhooks, Key: keySecret + name, Value: sec}}
	if isAPI {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		puts = append(puts, store.Put{Bucket: store.Webhooks, Key: keyTarget + name, Value: b})
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.deleted.Load() {
		return notFound(name)
	}
	if err := n.st.Commit(&store.Write{Puts: puts}); err != nil {
		return fmt.Errorf("notify: store webhook target %s: %w", name, err)
	}
	return nil
}

// Update changes a target's settings and, with RotateSecret, makes a new
// secret (returned this once) while the previous one signs beside it for
// the grace. A twokey.yaml target takes only a rotation.
func (n *Notifier) Update(name string, in api.WebhookUpdate) (api.WebhookSecret, error) {
	grace := DefaultGrace
	if in.Grace != "" {
		d, err := config.ParseDuration(in.Grace)
		if err != nil || d > 30*24*time.Hour {
			return api.WebhookSecret{}, twokey.Errorf(twokey.EBadPayload, "grace %q is not a duration from 0 to 30d (e.g. 24h; 0 ends the previous secret now)", twokey.Clip(in.Grace))
		}
		grace = d
	}
	n.mu.Lock()
	t := n.targets[name]
	if t == nil {
		n.mu.Unlock()
		return api.WebhookSecret{}, notFound(name)
	}
	settings := in.URL != nil || in.Format != nil || in.Conversations != nil || in.Events != nil || in.Detail != nil
	if t.hook.Source == "config" {
		if settings {
			n.mu.Unlock()
			return api.WebhookSecret{}, twokey.Errorf(twokey.EForbidden, "webhook target %s is set in twokey.yaml: edit it there and restart the server (through the API it only rotates its secret)", name)
		}
		if in.RotateSecret && t.yamlKey {
			n.mu.Unlock()
			return api.WebhookSecret{}, twokey.Errorf(twokey.EForbidden, "the secret of webhook target %s is set in twokey.yaml: change it there, or remove it there and rotate it here", name)
		}
	}
	h := t.hook
	c := config.Notification{Name: name, URL: h.URL, Format: h.Format, Conversations: h.Conversations, Events: h.Events, Detail: h.Detail}
	if in.URL != nil {
		c.URL = *in.URL
	}
	if in.Format != nil {
		c.Format = *in.Format
	}
	if in.Conversations != nil {
		c.Conversations = *in.Conversations
	}
	if in.Events != nil {
		c.Events = *in.Events
	}
	if in.Detail != nil {
		c.Detail = *in.Detail
	}
	n.mu.Unlock()
	if err := checked(c); err != nil {
		return api.WebhookSecret{}, err
	}
	if !settings && !in.RotateSecret {
		return api.WebhookSecret{}, twokey.Errorf(twokey.EBadPayload, "the update changes nothing: give url, format, conversations, events, detail or rotate_secret")
	}
	now := n.clock.Now()
	n.mu.Lock()
	if n.targets[name] != t {
		n.mu.Unlock()
		return api.WebhookSecret{}, notFound(name)
	}
	oldHook, oldSecret, oldPrev := t.hook, t.secret, t.previous
	t.hook.URL, t.hook.Format, t.hook.Conversations, t.hook.Events, t.hook.Detail = c.URL, c.Format, c.Conversations, c.Events, c.Detail
	t.setup()
	secret := ""
	if in.RotateSecret {
		secret = NewSecret()
		t.previous, t.hook.PreviousSecretUntil = t.secret, now.Add(grace)
		if grace == 0 {
			t.previous, t.hook.PreviousSecretUntil = "", time.Time{}
		}
		t.secret, t.hook.SecretRotatedAt = secret, now
	}
	n.mu.Unlock()
	if err := n.storeTarget(t, now); err != nil {
		n.mu.Lock()
		t.hook, t.secret, t.previous = oldHook, oldSecret, oldPrev
		t.setup()
		n.mu.Unlock()
		return api.WebhookSecret{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return api.WebhookSecret{Webhook: t.view(), Secret: secret}, nil
}

// Delete drops an API target, its queue and its history.
func (n *Notifier) Delete(name string) error {
	n.mu.Lock()
	t := n.targets[name]
	if t == nil {
		n.mu.Unlock()
		return notFound(name)
	}
	if t.hook.Source == "config" {
		n.mu.Unlock()
		return twokey.Errorf(twokey.EForbidden, "webhook target %s is set in twokey.yaml: remove it there and restart the server", name)
	}
	delete(n.targets, name)
	t.deleted.Store(true)
	t.stopTimer()
	t.queue = nil
	n.idle.Broadcast()
	n.mu.Unlock()
	t.wmu.Lock()
	defer t.wmu.Unlock()
	puts := []store.Put{{Bucket: store.Webhooks, Key: keyTarget + name}, {Bucket: store.Webhooks, Key: keySecret + name}}
	for _, b := range []string{store.Outbox, store.Deliveries} {
		if err := n.st.Scan(b, name+"/", name+"0", false, func(k, _ []byte) bool {
			// "0" follows "/": [name/, name0) is exactly name's keys.
			puts = append(puts, store.Put{Bucket: b, Key: string(k)})
			return true
		}); err != nil {
			return fmt.Errorf("notify: list the queue of webhook target %s: %w", name, err)
		}
	}
	if err := n.st.Commit(&store.Write{Puts: puts}); err != nil {
		return fmt.Errorf("notify: delete webhook target %s: %w", name, err)
	}
	return nil
}
