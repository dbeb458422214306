package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/conversation"
)

// ManagementOptions configure the management API under /v0/management/.
type ManagementOptions struct {
	Key            string        // empty disables the whole API (404)
	AllowRemote    bool          // else loopback clients only
	TrustedProxies []string      // IPs or CIDRs whose X-Forwarded-For is believed
	MaxFailures    int           // wrong keys from one address before it is blocked (default 5)
	BanFor         time.Duration // how long it stays blocked (default 30m)
}

// argon2id parameters for the management key (OWASP's minimum: 19 MiB,
// two passes, one lane). The key is hashed once at start; each request
// costs one derivation, at most maxHashing at a time.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	maxHashing   = 4
	maxClients   = 10000 // clients whose failures are remembered
)

// The global budget of wrong keys: once globalFailures wrong keys were
// checked within globalWindow, from any clients, every key check is
// refused (429) until the oldest of them is globalWindow old. Spreading
// guesses over many addresses then buys at most globalFailures guesses
// per globalWindow (2,880 a day).
const (
	globalFailures = 20
	globalWindow   = 10 * time.Minute
)

// loopbackClient is the one client all of loopback (127.0.0.0/8, ::1)
// counts as: any local user can send from 127.0.0.2, .3, ...
const loopbackClient = "loopback"

var v6Client = net.CIDRMask(64, 128)

// clientKey names the client whose failures a request from ip counts
// against: loopback as one, an IPv6 address by its /64 (what one host or
// site is usually given), an IPv4 address by itself. "" for no address.
func clientKey(ip net.IP) string {
	switch {
	case ip == nil:
		return ""
	case ip.IsLoopback():
		return loopbackClient
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return (&net.IPNet{IP: ip.Mask(v6Client), Mask: v6Client}).String()
}

// clientKeyOf reads a client as DELETE /bans?addr= names it: an address,
// or a name GET /bans lists (loopback, an IPv6 /64).
func clientKeyOf(s string) (string, bool) {
	if s == loopbackClient {
		return s, true
	}
	if ip := net.ParseIP(s); ip != nil {
		return clientKey(ip), true
	}
	if ip, n, err := net.ParseCIDR(s); err == nil && ip.To4() == nil {
		if ones, bits := n.Mask.Size(); ones == 64 && bits == 128 {
			return clientKey(n.IP), true
		}
	}
	return "", false
}

// management guards the management API: the key, checked against its
// argon2id hash; loopback only unless allowed; a block on clients that
// send wrong keys; and a global budget of wrong keys. Blocks and the
// budget are kept in the store (when one is set), so a restart does not
// clear them.
type management struct {
	salt, hash  []byte // nil hash: disabled
	allowRemote bool
	trusted     []*net.IPNet
	maxFailures int
	banFor      time.Duration
	globalMax   int
	window      time.Duration
	now         func() time.Time
	log         *slog.Logger
	sem         chan struct{}
	store       banPersister // nil: blocks live in memory only

	mu      sync.Mutex
	clients map[string]*mgmtClient
	// global holds when each wrong key within the window was checked,
	// oldest first; globalInflight the checks running now, counted
	// against the budget; globalSettled is closed (and replaced) whenever
	// a check ends.
	global         []time.Time
	globalInflight int
	globalSettled  chan struct{}
	// dirty names the clients whose record the next persist writes (or
	// deletes); globalDirty says it writes the global budget too.
	dirty       map[string]bool
	globalDirty bool
	// persistMu orders the writes, so that a later state is never
	// overwritten by an earlier one.
	persistMu sync.Mutex
}

type mgmtClient struct {
	failures int       // wrong keys since the last right one
	inflight int       // key checks running now, counted against the limit
	until    time.Time // blocked until
	last     time.Time
	stored   bool // the store holds a record of it
	// settled is closed (and replaced) whenever a check from this client
	// ends, waking the requests that wait for a slot.
	settled chan struct{}
}

// banPersister keeps the management API's failure counts and blocks
// (server/operator_store.go: banStore).
type banPersister interface {
	loadBans() (map[string]banRecord, []time.Time, error)
	// saveBans writes the records of clients (a nil record deletes it)
	// and, when saveGlobal, the global budget's failures, in one commit.
	saveBans(clients map[string]*banRecord, global []time.Time, saveGlobal bool) error
}

// banRecord is one client's failures and block, as stored. A block is
// kept as when it began: it lasts ban_for from then, under the ban_for
// the server runs with, so a restart with a shorter ban_for shortens it.
type banRecord struct {
	Failures int       `json:"failures,omitempty"`
	BannedAt time.Time `json:"banned_at,omitzero"`
	Last     time.Time `json:"last"`
}

// newManagement hashes the key; the caller drops its copy of the plaintext.
func newManagement(o ManagementOptions, now func() time.Time, log *slog.Logger) (*management, error) {
	m := &management{allowRemote: o.AllowRemote, maxFailures: o.MaxFailures, banFor: o.BanFor, now: now, log: log,
		globalMax: globalFailures, window: globalWindow, sem: make(chan struct{}, maxHashing),
		clients: map[string]*mgmtClient{}, globalSettled: make(chan struct{}), dirty: map[string]bool{}}
	if m.maxFailures <= 0 {
		m.maxFailures = 5
	}
	if m.banFor <= 0 {
		m.banFor = 30 * time.Minute
	}
	for _, p := range o.TrustedProxies {
		if ip := net.ParseIP(p); ip != nil {
			bits := 32
			if ip.To4() == nil {
				bits = 128
			}
			m.trusted = append(m.trusted, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("management.trusted_proxies: %q is not an IP address or CIDR", p)
		}
		m.trusted = append(m.trusted, n)
	}
	if o.Key != "" {
		m.salt = make([]byte, 16)
		if _, err := rand.Read(m.salt); err != nil {
			return nil, err
		}
		m.hash = argon2.IDKey([]byte(o.Key), m.salt, argonTime, argonMemory, argonThreads, 32)
	}
	return m, nil
}

func (m *management) enabled() bool { return m.hash != nil }

func (m *management) isTrusted(ip net.IP) bool {
	for _, n := range m.trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the address a request came from and whether it is known:
// the connection's peer, or, when the peer is a trusted proxy, the nearest
// untrusted address in X-Forwarded-For. A trusted proxy that names no
// valid hop leaves the client unknown: known is false and ip is the
// proxy's own address, which then keys the failure count but is never
// taken for a loopback client.
func (m *management) clientIP(r *http.Request) (ip net.IP, known bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer := net.ParseIP(host)
	if peer == nil || !m.isTrusted(peer) {
		return peer, peer != nil
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	ip = nil
	for i := len(hops) - 1; i >= 0; i-- {
		hop := net.ParseIP(hops[i])
		if hop == nil {
			break // a malformed hop: believe nothing before it
		}
		ip = hop
		if !m.isTrusted(hop) {
			break
		}
	}
	if ip == nil {
		return peer, false
	}
	return ip, true
}

// clientAddr is the client's address for log lines.
func (m *management) clientAddr(r *http.Request) string {
	ip, known := m.clientIP(r)
	switch {
	case ip == nil:
		return "unknown"
	case !known:
		return "unknown via " + ip.String()
	}
	return ip.String()
}

// verify checks a management key against the hash in constant time.
func (m *management) verify(key string) bool {
	m.sem <- struct{}{}
	defer func() { <-m.sem }()
	got := argon2.IDKey([]byte(key), m.salt, argonTime, argonMemory, argonThreads, 32)
	return subtle.ConstantTimeCompare(got, m.hash) == 1
}

// restore reads the failure counts, blocks and global budget p keeps,
// and keeps them there from now on. Records that are over (a block that
// has lasted ban_for) are deleted now, so that a restart with a shorter
// ban_for lifts a block for good.
func (m *management) restore(p banPersister) error {
	clients, global, err := p.loadBans()
	if err != nil {
		return err
	}
	defer m.persist()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for name, r := range clients {
		c := &mgmtClient{failures: min(r.Failures, m.maxFailures-1), last: r.Last, stored: true, settled: make(chan struct{})}
		if !r.BannedAt.IsZero() {
			c.until = r.BannedAt.Add(m.banFor)
		}
		if (c.failures == 0 && !now.Before(c.until)) || len(m.clients) >= maxClients {
			m.dirty[name] = true
			continue
		}
		m.clients[name] = c
	}
	m.global = nil
	for _, t := range global {
		if now.Before(t.Add(m.window)) {
			m.global = append(m.global, t)
		}
	}
	slices.SortFunc(m.global, time.Time.Compare)
	m.globalDirty = len(m.global) != len(global)
	m.store = p
	return nil
}

// persist writes what changed since the last write: the dirty clients'
// records and the global budget. It is called after each change, before
// the answer, so a block is durable once it is answered.
func (m *management) persist() {
	m.persistMu.Lock()
	defer m.persistMu.Unlock()
	m.mu.Lock()
	if m.store == nil || (len(m.dirty) == 0 && !m.globalDirty) {
		m.mu.Unlock()
		return
	}
	now := m.now()
	puts := make(map[string]*banRecord, len(m.dirty))
	for name := range m.dirty {
		c := m.clients[name]
		if c == nil || (c.failures == 0 && !now.Before(c.until)) {
			puts[name] = nil
			if c != nil {
				c.stored = false
			}
			continue
		}
		r := &banRecord{Failures: c.failures, Last: c.last}
		if now.Before(c.until) {
			r.BannedAt = c.until.Add(-m.banFor)
		}
		puts[name] = r
		c.stored = true
	}
	saveGlobal := m.globalDirty
	var global []time.Time
	if saveGlobal {
		m.pruneLocked(now)
		global = slices.Clone(m.global)
	}
	clear(m.dirty)
	m.globalDirty = false
	m.mu.Unlock()
	if err := m.store.saveBans(puts, global, saveGlobal); err != nil {
		m.log.Error("cannot save the management API's blocks; they hold in memory until the server stops", "error", err.Error())
	}
}

// pruneLocked forgets the global budget's failures older than the window.
func (m *management) pruneLocked(now time.Time) {
	i := 0
	for i < len(m.global) && !now.Before(m.global[i].Add(m.window)) {
		i++
	}
	m.global = m.global[i:]
}

// pausedLocked returns until when every key check is paused because the
// global budget is spent, or the zero time.
func (m *management) pausedLocked(now time.Time) time.Time {
	m.pruneLocked(now)
	if len(m.global) < m.globalMax {
		return time.Time{}
	}
	return m.global[len(m.global)-m.globalMax].Add(m.window)
}

// blocked returns until when client is blocked, or the zero time.
func (m *management) blocked(client string, now time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.clients[client]; c != nil && now.Before(c.until) {
		return c.until
	}
	return time.Time{}
}

// refusal is why reserve gave no slot: the client is blocked (403), or
// every check is paused by the global budget (429), until a time.
type refusal struct {
	until  time.Time
	paused bool
}

// reserve takes a key-check slot for client. A check in flight counts
// against both limits as if it had failed, so concurrent wrong keys can
// never get more than maxFailures checks past a client's block, nor more
// than the global budget's: once failures plus checks in flight reach a
// limit, a request waits until one ends (and is then refused, or
// checked). It returns the client to settle, or the refusal, or ctx's
// error.
func (m *management) reserve(ctx context.Context, client string) (*mgmtClient, refusal, error) {
	for {
		m.mu.Lock()
		now := m.now()
		c := m.clients[client]
		if c == nil {
			if len(m.clients) >= maxClients {
				m.forgetLocked(now)
			}
			c = &mgmtClient{settled: make(chan struct{})}
			m.clients[client] = c
		}
		c.last = now
		if now.Before(c.until) {
			m.mu.Unlock()
			return nil, refusal{until: c.until}, nil
		}
		wait := c.settled
		if c.failures+c.inflight < m.maxFailures && client == loopbackClient {
			// This machine has its own cap (all of loopback is one client)
			// and is never paused by the others' failures, so a flood from
			// the network cannot lock the operator out.
			c.inflight++
			m.mu.Unlock()
			return c, refusal{}, nil
		}
		if c.failures+c.inflight < m.maxFailures {
			if until := m.pausedLocked(now); !until.IsZero() {
				m.mu.Unlock()
				return nil, refusal{until: until, paused: true}, nil
			}
			if len(m.global)+m.globalInflight < m.globalMax {
				c.inflight++
				m.globalInflight++
				m.mu.Unlock()
				return c, refusal{}, nil
			}
			wait = m.globalSettled
		}
		m.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, refusal{}, ctx.Err()
		}
	}
}

// settle ends a check reserve started: a wrong key is counted against the
// client (and blocks it at the limit) and the global budget; a right one
// clears the client's failures. It returns the client's failures counted,
// until when this one blocked the client, and until when this one paused
// every check (each the zero time if it did not).
func (m *management) settle(client string, c *mgmtClient, ok bool) (int, time.Time, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	global := client != loopbackClient // loopback is outside the global budget (reserve)
	c.inflight--
	close(c.settled)
	c.settled = make(chan struct{})
	if global {
		m.globalInflight--
		close(m.globalSettled)
		m.globalSettled = make(chan struct{})
	}
	if m.clients[client] == nil && !ok {
		m.clients[client] = c // lifted while in flight: count this one afresh
	}
	if ok {
		c.failures = 0
		if c.stored {
			m.dirty[client] = true
		}
		if c.inflight == 0 && !now.Before(c.until) && m.clients[client] == c {
			delete(m.clients, client)
		}
		return 0, time.Time{}, time.Time{}
	}
	m.dirty[client] = true
	var paused time.Time
	if global {
		m.globalDirty = true
		m.pruneLocked(now)
		m.global = append(m.global, now)
		slices.SortFunc(m.global, time.Time.Compare) // a clock set back
		if len(m.global) == m.globalMax {
			paused = m.pausedLocked(now)
		}
	}
	c.last = now
	c.failures++
	if c.failures >= m.maxFailures {
		c.failures = 0
		c.until = now.Add(m.banFor)
		return m.maxFailures, c.until, paused
	}
	return c.failures, time.Time{}, paused
}

// forgetLocked drops clients that are neither blocked nor being checked,
// to make room; when every one is, the oldest idle one.
func (m *management) forgetLocked(now time.Time) {
	drop := func(name string) {
		if m.clients[name].stored {
			m.dirty[name] = true
		}
		delete(m.clients, name)
	}
	for name, c := range m.clients {
		if !now.Before(c.until) && c.inflight == 0 {
			drop(name)
		}
	}
	if len(m.clients) >= maxClients {
		var oldest string
		for name, c := range m.clients {
			if c.inflight == 0 && (oldest == "" || c.last.Before(m.clients[oldest].last)) {
				oldest = name
			}
		}
		if oldest != "" {
			drop(oldest)
		}
	}
}

// wrap guards a management handler. The order: disabled (404), not a known
// loopback client (403), blocked (403), no key (401, not counted), the
// global budget spent (429), wrong key (401, counted), then the handler.
func (m *management) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !m.enabled() {
			writeError(w, m.log, twokey.Errorf(twokey.ENotFound, "no route %s %s; see docs/protocol.md", r.Method, r.URL.Path))
			return
		}
		ip, known := m.clientIP(r)
		client := clientKey(ip)
		if !m.allowRemote && (!known || !ip.IsLoopback()) {
			m.log.Warn("management request from a remote address refused", attrClient, m.clientAddr(r))
			writeError(w, m.log, twokey.Errorf(twokey.EForbidden, "the management API answers loopback clients only; set management.allow_remote: true to open it"))
			return
		}
		retryAfter := func(until time.Time) {
			w.Header().Set("Retry-After", strconv.Itoa(int(until.Sub(m.now()).Seconds())+1))
		}
		refuse := func(ref refusal) {
			retryAfter(ref.until)
			if ref.paused {
				writeError(w, m.log, twokey.Errorf(twokey.ERateLimited, "too many wrong management keys from all addresses (%d within %s); every key check is paused until %s",
					m.globalMax, m.window, ref.until.UTC().Format(time.RFC3339)))
				return
			}
			writeError(w, m.log, twokey.Errorf(twokey.EForbidden, "too many wrong management keys from %s; it is blocked until %s", client, ref.until.UTC().Format(time.RFC3339)))
		}
		if until := m.blocked(client, m.now()); !until.IsZero() {
			refuse(refusal{until: until})
			return
		}
		key := r.Header.Get("X-Management-Key")
		if key == "" {
			writeError(w, m.log, twokey.Errorf(twokey.EUnauthorized, "send the management key in X-Management-Key (twokey reads it from TWOKEY_MANAGEMENT_KEY)"))
			return
		}
		c, ref, err := m.reserve(r.Context(), client)
		if err != nil {
			return // the client went away while waiting
		}
		if !ref.until.IsZero() {
			m.persist() // clients reserve forgot to make room
			refuse(ref)
			return
		}
		ok := m.verify(key)
		n, until, paused := m.settle(client, c, ok)
		m.persist()
		if !ok {
			if !until.IsZero() {
				m.log.Warn("address blocked after wrong management keys", attrClient, m.clientAddr(r), "counted_as", client, "until", until.UTC().Format(time.RFC3339))
			} else {
				m.log.Warn("wrong management key", attrClient, m.clientAddr(r), "counted_as", client, "failures", n)
			}
			if !paused.IsZero() {
				m.log.Warn("every management key check paused: too many wrong keys from all addresses", "failures", m.globalMax, "window", m.window.String(), "until", paused.UTC().Format(time.RFC3339))
			}
			writeError(w, m.log, twokey.Errorf(twokey.EUnauthorized, "wrong management key"))
			return
		}
		h(w, r)
	}
}

func (m *management) bans(now time.Time) []api.Ban {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []api.Ban{}
	for name, c := range m.clients {
		if now.Before(c.until) {
			out = append(out, api.Ban{Addr: name, Until: conversation.FormatTime(c.until)})
		}
	}
	slices.SortFunc(out, func(a, b api.Ban) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// unban lifts the block and failures of client, or of every client when
// client is "", durably; it returns how many it lifted.
func (m *management) unban(client string) int {
	m.mu.Lock()
	n := 0
	for name, c := range m.clients {
		if client == "" || name == client {
			if c.stored {
				m.dirty[name] = true
			}
			delete(m.clients, name)
			n++
		}
	}
	if client == "" && len(m.global) > 0 {
		// Lifting every block lifts the pause too.
		m.global, m.globalDirty = nil, true
	}
	m.mu.Unlock()
	m.persist()
	return n
}
