package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/store"
)

// spec is what one attempt sends to, taken under the lock.
type spec struct {
	name, url, format string
	secrets           []string
}

func (t *target) spec(now time.Time) spec {
	return spec{name: t.hook.Name, url: t.hook.URL, format: t.hook.Format, secrets: t.secrets(now)}
}

// kick starts what may start on t: up to Workers attempts, each the
// earliest entry of its ordering key, due and not in flight; and arms
// the timer for the next one due. Called with n.mu held.
func (n *Notifier) kick(t *target) {
	if n.closed || t.deleted.Load() {
		return
	}
	now := n.clock.Now()
	blocked := map[string]bool{}
	var next time.Time
	for _, e := range t.queue {
		if t.running >= n.cfg.Workers {
			break // one that ends kicks again
		}
		if e.Key != "" {
			if blocked[e.Key] {
				continue // an earlier one of its request goes first
			}
			blocked[e.Key] = true
		}
		if e.busy {
			continue
		}
		if e.NextAt.After(now) {
			if next.IsZero() || e.NextAt.Before(next) {
				next = e.NextAt
			}
			continue
		}
		e.busy = true
		t.running++
		n.wg.Add(1)
		go n.attempt(t, e, t.spec(now))
	}
	if next.IsZero() || (t.timerStop != nil && !next.Before(t.timerAt)) {
		return
	}
	t.stopTimer()
	t.timerGen++
	gen := t.timerGen
	t.timerAt = next
	t.timerStop = n.clock.AfterFunc(next.Sub(now), func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if t.timerGen == gen {
			t.timerStop = nil
		}
		n.kick(t)
	})
}

// result is how one attempt went.
type result struct {
	status    int
	err       string
	ok        bool
	cancelled bool // the notifier closed: not an attempt
}

// attempt sends e once and files the outcome.
func (n *Notifier) attempt(t *target, e *entry, s spec) {
	defer n.wg.Done()
	res := n.send(n.ctx, s, &e.Event)
	n.file(t, e, res)
}

// send makes one attempt: POST, no redirect followed, at most 4 KiB of
// the answer read.
func (n *Notifier) send(ctx context.Context, s spec, ev *Event) result {
	r, err := render(s.format, ev)
	if err != nil {
		return result{err: "cannot render the event: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(r.body))
	if err != nil {
		return result{err: "bad URL"}
	}
	req.Header.Set("Content-Type", r.contentType)
	req.Header.Set("User-Agent", "twokey-webhooks/1")
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	ts := n.clock.Now().Unix()
	var sigs []string
	for _, sec := range s.secrets {
		sig, err := Sign(sec, ev.ID, ts, r.body)
		if err != nil {
			return result{err: "cannot sign: " + err.Error()}
		}
		sigs = append(sigs, sig)
	}
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, strings.Join(sigs, " "))
	resp, err := n.client.Do(req)
	if err != nil {
		if n.ctx.Err() != nil {
			return result{cancelled: true}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a token
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return result{err: fmt.Sprintf("no answer within %s", n.cfg.AttemptTimeout)}
		}
		return result{err: clip(err.Error())}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxRead))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return result{status: resp.StatusCode, ok: true}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return result{status: resp.StatusCode, err: fmt.Sprintf("answered %d: redirects are not followed; give the target's final URL", resp.StatusCode)}
	}
	msg := fmt.Sprintf("answered %d", resp.StatusCode)
	if b := strings.TrimSpace(string(body)); b != "" {
		msg += ": " + b
	}
	return result{status: resp.StatusCode, err: clip(msg)}
}

// clip bounds a receiver's words as kept and shown: one line, 200 bytes.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	return twokey.ClipAt(s, 200)
}

// backoff is the wait after the attempts-th failed attempt: 5 s doubling
// to 1 h, less up to a quarter at random.
func backoff(attempts int) time.Duration {
	d := maxBackoff
	if attempts < 20 {
		d = min(firstBackoff<<(attempts-1), maxBackoff)
	}
	return d - rand.N(d/4)
}

// file records an attempt's outcome: delivered and dead move to the
// history, a failure waits for its next time.
func (n *Notifier) file(t *target, e *entry, res result) {
	n.mu.Lock()
	if res.cancelled || n.closed || t.deleted.Load() {
		e.busy = false
		t.running--
		n.idle.Broadcast()
		n.mu.Unlock()
		return
	}
	now := n.clock.Now()
	e.Attempts++
	e.LastStatus, e.LastError = res.status, res.err
	state := api.DeliveryQueued
	switch {
	case res.ok:
		state = api.DeliveryDelivered
		e.NextAt = time.Time{}
	default:
		next := now.Add(backoff(e.Attempts))
		if next.After(e.Event.Timestamp.Add(n.cfg.RetryFor)) {
			state = api.DeliveryDead
			e.NextAt = time.Time{}
		} else {
			e.NextAt = next
		}
	}
	n.stats.count(t.hook.Name, state)
	var puts []store.Put
	key := orderKey(e.Target, e.Order)
	if state == api.DeliveryQueued {
		b, _ := json.Marshal(e)
		puts = append(puts, store.Put{Bucket: store.Outbox, Key: key, Value: b})
		n.log.Info("webhook attempt failed; retrying", AttrTarget, t.hook.Name, AttrEvent, e.Event.Type, AttrID, e.Event.ID,
			AttrStatus, res.status, AttrError, res.err, "next_at", e.NextAt)
	} else {
		d := e.delivery(state)
		d.DoneAt = now
		b, _ := json.Marshal(d)
		puts = append(puts, store.Put{Bucket: store.Outbox, Key: key}, store.Put{Bucket: store.Deliveries, Key: key, Value: b})
		puts = append(puts, n.keepHistory(t, e.Order, state == api.DeliveryDead)...)
		if state == api.DeliveryDead {
			n.log.Warn("webhook dead-lettered: its receiver failed for the whole retry window", AttrTarget, t.hook.Name,
				AttrEvent, e.Event.Type, AttrID, e.Event.ID, AttrStatus, res.status, AttrError, res.err)
		}
	}
	n.mu.Unlock()

	n.write(t, puts)

	n.mu.Lock()
	defer n.mu.Unlock()
	if state != api.DeliveryQueued {
		if i := sortSearch(t.queue, e.Order); i < len(t.queue) && t.queue[i] == e {
			t.queue = append(t.queue[:i], t.queue[i+1:]...)
		}
	}
	e.busy = false
	t.running--
	n.kick(t)
	n.idle.Broadcast()
}

func sortSearch(q []*entry, order uint64) int {
	return sort.Search(len(q), func(i int) bool { return q[i].Order >= order })
}

// keepHistory adds order to t's history and returns the deletes of what
// falls out of it. Called with n.mu held.
func (n *Notifier) keepHistory(t *target, order uint64, dead bool) []store.Put {
	t.addHistory(order, dead)
	var puts []store.Put
	for len(t.hist) > n.cfg.Keep {
		old := t.hist[0]
		t.hist = t.hist[1:]
		if old.dead {
			t.dead--
		}
		puts = append(puts, store.Put{Bucket: store.Deliveries, Key: orderKey(t.hook.Name, old.order)})
	}
	return puts
}

// write commits a target's keys unless it was deleted meanwhile.
func (n *Notifier) write(t *target, puts []store.Put) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.deleted.Load() {
		return
	}
	if err := n.st.Commit(&store.Write{Puts: puts}); err != nil {
		// The outbox keeps what it had: sent again after a restart.
		n.log.Error("cannot record a webhook delivery", AttrTarget, t.hook.Name, AttrError, err.Error())
	}
}

// Test sends one webhook.test to the target now and returns what became
// of it; it is recorded in the target's deliveries (delivered, or dead:
// a test is not retried).
func (n *Notifier) Test(ctx context.Context, name string) (api.WebhookDelivery, error) {
	n.mu.Lock()
	t := n.targets[name]
	if t == nil {
		n.mu.Unlock()
		return api.WebhookDelivery{}, notFound(name)
	}
	now := n.clock.Now()
	s := t.spec(now)
	n.mu.Unlock()
	e := &entry{V: entryVersion, Target: name, Order: n.nextOrder(),
		Event: Event{Type: WebhookTest, Version: SchemaVersion, ID: newID(), Timestamp: now,
			Data: Data{Message: "This is a test notification from twokey to webhook target " + name + "."}}}
	res := n.send(ctx, s, &e.Event)
	if res.cancelled {
		return api.WebhookDelivery{}, twokey.Errorf(twokey.EUnavailable, "the server is shutting down; try again")
	}
	if ctx.Err() != nil {
		return api.WebhookDelivery{}, ctx.Err()
	}
	e.Attempts, e.LastStatus, e.LastError = 1, res.status, res.err
	state := api.DeliveryDelivered
	if !res.ok {
		state = api.DeliveryDead
	}
	d := e.delivery(state)
	d.DoneAt = n.clock.Now()
	b, _ := json.Marshal(d)
	n.mu.Lock()
	if n.targets[name] != t {
		n.mu.Unlock()
		return d, nil
	}
	n.stats.count(name, state)
	puts := append([]store.Put{{Bucket: store.Deliveries, Key: orderKey(name, e.Order), Value: b}}, n.keepHistory(t, e.Order, !res.ok)...)
	n.mu.Unlock()
	n.write(t, puts)
	return d, nil
}

// Deliveries lists up to limit (default 100, at most 1000) of a target's
// notifications, newest first: those queued, delivered and dead, or of
// one state.
func (n *Notifier) Deliveries(name, state string, limit int) ([]api.WebhookDelivery, error) {
	switch state {
	case "", api.DeliveryQueued, api.DeliveryDelivered, api.DeliveryDead:
	default:
		return nil, twokey.Errorf(twokey.EBadPayload, "state %q is not queued, delivered or dead (or none, for all)", twokey.Clip(state))
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	type item struct {
		order uint64
		d     api.WebhookDelivery
	}
	var items []item
	seen := map[string]bool{}
	n.mu.Lock()
	t := n.targets[name]
	if t == nil {
		n.mu.Unlock()
		return nil, notFound(name)
	}
	if state == "" || state == api.DeliveryQueued {
		for i := len(t.queue) - 1; i >= 0 && len(items) < limit; i-- {
			e := t.queue[i]
			items = append(items, item{e.Order, e.delivery(api.DeliveryQueued)})
		}
	}
	n.mu.Unlock()
	if state != api.DeliveryQueued {
		var hist []item
		err := n.st.Reverse(store.Deliveries, name+"/", func(k string, v []byte) bool {
			d, order, err := decodeDelivery(k, v)
			if err != nil || (state != "" && d.State != state) {
				return true
			}
			hist = append(hist, item{order, d})
			seen[d.ID] = true
			return len(hist) < limit
		})
		if err != nil {
			return nil, fmt.Errorf("notify: read the deliveries of %s: %w", name, err)
		}
		items = append(items, hist...)
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].order > items[j].order })
	out := make([]api.WebhookDelivery, 0, min(len(items), limit))
	for _, it := range items {
		if len(out) == limit {
			break
		}
		if it.d.State == api.DeliveryQueued && seen[it.d.ID] {
			continue // finished while we read
		}
		out = append(out, it.d)
	}
	return out, nil
}
