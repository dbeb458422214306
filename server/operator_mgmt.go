package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
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
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/programs"
	"github.com/twokey/twokey/reqlog"
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
	maxClients   = 10000 // addresses whose failures are remembered
)

// management guards the management API: the key, checked against its
// argon2id hash; loopback only unless allowed; and a block on addresses
// that send wrong keys.
type management struct {
	salt, hash  []byte // nil hash: disabled
	allowRemote bool
	trusted     []*net.IPNet
	maxFailures int
	banFor      time.Duration
	now         func() time.Time
	log         *slog.Logger
	sem         chan struct{}

	mu      sync.Mutex
	clients map[string]*mgmtClient
}

type mgmtClient struct {
	failures int       // wrong keys since the last right one
	inflight int       // key checks running now, counted against the limit
	until    time.Time // blocked until
	last     time.Time
	// settled is closed (and replaced) whenever a check from this address
	// ends, waking the requests that wait for a slot.
	settled chan struct{}
}

// newManagement hashes the key; the caller drops its copy of the plaintext.
func newManagement(o ManagementOptions, now func() time.Time, log *slog.Logger) (*management, error) {
	m := &management{allowRemote: o.AllowRemote, maxFailures: o.MaxFailures, banFor: o.BanFor, now: now, log: log,
		sem: make(chan struct{}, maxHashing), clients: map[string]*mgmtClient{}}
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

// blocked returns until when addr is blocked, or the zero time.
func (m *management) blocked(addr string, now time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.clients[addr]; c != nil && now.Before(c.until) {
		return c.until
	}
	return time.Time{}
}

// reserve takes a key-check slot for addr. A check in flight counts
// against the limit as if it had failed, so concurrent wrong keys can
// never get more than maxFailures checks past the block: once failures
// plus checks in flight reach the limit, a request waits until one ends
// (and is then blocked, or checked). It returns the client to settle, or
// the time addr is blocked until, or ctx's error.
func (m *management) reserve(ctx context.Context, addr string) (*mgmtClient, time.Time, error) {
	for {
		m.mu.Lock()
		now := m.now()
		c := m.clients[addr]
		if c == nil {
			if len(m.clients) >= maxClients {
				m.forgetLocked(now)
			}
			c = &mgmtClient{settled: make(chan struct{})}
			m.clients[addr] = c
		}
		c.last = now
		if now.Before(c.until) {
			m.mu.Unlock()
			return nil, c.until, nil
		}
		if c.failures+c.inflight < m.maxFailures {
			c.inflight++
			m.mu.Unlock()
			return c, time.Time{}, nil
		}
		wait := c.settled
		m.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		}
	}
}

// settle ends a check reserve started: a wrong key is counted (and blocks
// the address at the limit), a right one clears the failures. It returns
// the failures counted and, when this one blocked the address, until when.
func (m *management) settle(addr string, c *mgmtClient, ok bool) (int, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	c.inflight--
	close(c.settled)
	c.settled = make(chan struct{})
	if m.clients[addr] == nil && !ok {
		m.clients[addr] = c // lifted while in flight: count this one afresh
	}
	if ok {
		c.failures = 0
		if c.inflight == 0 && c.until.IsZero() && m.clients[addr] == c {
			delete(m.clients, addr)
		}
		return 0, time.Time{}
	}
	c.last = now
	c.failures++
	if c.failures >= m.maxFailures {
		c.failures = 0
		c.until = now.Add(m.banFor)
		return m.maxFailures, c.until
	}
	return c.failures, time.Time{}
}

// forgetLocked drops addresses that are neither blocked nor being checked,
// to make room; when every one is, the oldest idle one.
func (m *management) forgetLocked(now time.Time) {
	for addr, c := range m.clients {
		if !now.Before(c.until) && c.inflight == 0 {
			delete(m.clients, addr)
		}
	}
	if len(m.clients) >= maxClients {
		var oldest string
		for addr, c := range m.clients {
			if c.inflight == 0 && (oldest == "" || c.last.Before(m.clients[oldest].last)) {
				oldest = addr
			}
		}
		if oldest != "" {
			delete(m.clients, oldest)
		}
	}
}

// wrap guards a management handler. The order: disabled (404), not a known
// loopback client (403), blocked (403), no key (401, not counted), wrong
// key (401, counted), then the handler.
func (m *management) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !m.enabled() {
			writeError(w, m.log, twokey.Errorf(twokey.ENotFound, "no route %s %s; see docs/protocol.md", r.Method, r.URL.Path))
			return
		}
		ip, known := m.clientIP(r)
		addr := ""
		if ip != nil {
			addr = ip.String()
		}
		if !m.allowRemote && (!known || !ip.IsLoopback()) {
			m.log.Warn("management request from a remote address refused", attrClient, m.clientAddr(r))
			writeError(w, m.log, twokey.Errorf(twokey.EForbidden, "the management API answers loopback clients only; set management.allow_remote: true to open it"))
			return
		}
		refuseBlocked := func(until time.Time) {
			now := m.now()
			w.Header().Set("Retry-After", strconv.Itoa(int(until.Sub(now).Seconds())+1))
			writeError(w, m.log, twokey.Errorf(twokey.EForbidden, "too many wrong management keys from %s; it is blocked until %s", addr, until.UTC().Format(time.RFC3339)))
		}
		if until := m.blocked(addr, m.now()); !until.IsZero() {
			refuseBlocked(until)
			return
		}
		key := r.Header.Get("X-Management-Key")
		if key == "" {
			writeError(w, m.log, twokey.Errorf(twokey.EUnauthorized, "send the management key in X-Management-Key (twokey reads it from TWOKEY_MANAGEMENT_KEY)"))
			return
		}
		c, until, err := m.reserve(r.Context(), addr)
		if err != nil {
			return // the client went away while waiting
		}
		if !until.IsZero() {
			refuseBlocked(until)
			return
		}
		ok := m.verify(key)
		n, until := m.settle(addr, c, ok)
		if !ok {
			if !until.IsZero() {
				m.log.Warn("address blocked after wrong management keys", attrClient, m.clientAddr(r), "until", until.UTC().Format(time.RFC3339))
			} else {
				m.log.Warn("wrong management key", attrClient, m.clientAddr(r), "failures", n)
			}
			writeError(w, m.log, twokey.Errorf(twokey.EUnauthorized, "wrong management key"))
			return
		}
		h(w, r)
	}
}

// Ban is a blocked address.
type Ban struct {
	Addr  string `json:"addr"`
	Until string `json:"until"`
}

func (m *management) bans(now time.Time) []Ban {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Ban{}
	for addr, c := range m.clients {
		if now.Before(c.until) {
			out = append(out, Ban{Addr: addr, Until: conversation.FormatTime(c.until)})
		}
	}
	slices.SortFunc(out, func(a, b Ban) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

func (m *management) unban(addr string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for a := range m.clients {
		if addr == "" || a == addr {
			delete(m.clients, a)
			n++
		}
	}
	return n
}

// The management API's shapes.

// KeyInfo describes a program key; never the key itself.
type KeyInfo struct {
	Name             string   `json:"name"`
	Prefix           string   `json:"prefix"`
	Conversation     string   `json:"conversation"`
	ConversationName string   `json:"conversation_name"`
	Enabled          bool     `json:"enabled"`
	CreatedAt        string   `json:"created_at"`
	LastUsed         string   `json:"last_used,omitempty"`
	ExpiresAt        string   `json:"expires_at,omitempty"`
	Templates        []string `json:"templates"`
	Rate             string   `json:"rate"`
	Monthly          int64    `json:"monthly"`
	MonthUsage       int64    `json:"month_usage"`
	OldKeys          []OldKey `json:"old_keys,omitempty"`
}

// OldKey is a rotated-out key and when it stops (or stopped) working.
type OldKey struct {
	Prefix     string `json:"prefix"`
	ValidUntil string `json:"valid_until"`
}

// KeyCreate is the body of POST /v0/management/keys.
type KeyCreate struct {
	Name         string   `json:"name"`
	Conversation string   `json:"conversation"` // id or unique name
	Templates    []string `json:"templates,omitempty"`
	Rate         string   `json:"rate,omitempty"`    // e.g. 60/m
	Monthly      int64    `json:"monthly,omitempty"` // requests per month
	Expires      string   `json:"expires,omitempty"` // from now, e.g. 30d
}

// KeyRotate is the body of POST /v0/management/keys/{name}/rotate.
type KeyRotate struct {
	Grace string `json:"grace,omitempty"` // how long the old key stays valid, e.g. 1h; absent or "0": it ends now (programs.DefaultGrace)
}

// NewKey answers create and rotate: the key, shown this once.
type NewKey struct {
	Key     string  `json:"key"`
	Program KeyInfo `json:"program"`
}

func keyInfo(p *programs.Program, now time.Time) KeyInfo {
	k := KeyInfo{Name: p.Name, Prefix: p.Prefix(), Conversation: p.Conversation, ConversationName: p.ConversationName,
		Enabled: p.Enabled, CreatedAt: conversation.FormatTime(p.CreatedAt), Templates: p.Policy.Templates,
		Rate: p.Policy.Rate.String(), Monthly: p.Policy.Monthly, MonthUsage: p.UsedIn(now)}
	if k.Templates == nil {
		k.Templates = []string{}
	}
	if !p.LastUsed.IsZero() {
		k.LastUsed = conversation.FormatTime(p.LastUsed)
	}
	if !p.Policy.ExpiresAt.IsZero() {
		k.ExpiresAt = conversation.FormatTime(p.Policy.ExpiresAt)
	}
	for _, old := range p.Keys[min(1, len(p.Keys)):] {
		k.OldKeys = append(k.OldKeys, OldKey{Prefix: old.Prefix, ValidUntil: conversation.FormatTime(old.Until)})
	}
	return k
}

func (o *operator) mgmtRoutes(a *API) {
	g := o.mgmt.wrap
	a.Handle("GET /v0/management/keys", g(o.keysList))
	a.Handle("POST /v0/management/keys", g(o.keysCreate))
	a.Handle("GET /v0/management/keys/{name}", g(o.keysGet))
	a.Handle("DELETE /v0/management/keys/{name}", g(o.keysDelete))
	a.Handle("POST /v0/management/keys/{name}/enable", g(o.keysEnable(true)))
	a.Handle("POST /v0/management/keys/{name}/disable", g(o.keysEnable(false)))
	a.Handle("POST /v0/management/keys/{name}/rotate", g(o.keysRotate))
	a.Handle("GET /v0/management/logs", g(o.logsList))
	a.Handle("GET /v0/management/usage", g(o.usage))
	a.Handle("GET /v0/management/config", g(o.configShow))
	a.Handle("GET /v0/management/bans", g(o.bansList))
	a.Handle("DELETE /v0/management/bans", g(o.bansDelete))
	a.Handle("/v0/management/", g(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, o.log, twokey.Errorf(twokey.ENotFound, "no route %s %s; see docs/protocol.md", r.Method, r.URL.Path))
	}))
}

// decodeStrict reads a JSON body into v, refusing unknown fields.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return twokey.Errorf(twokey.EBadPayload, "the body is not what this endpoint takes: %v", err)
	}
	return nil
}

func (o *operator) keysList(w http.ResponseWriter, r *http.Request) {
	now := o.eng.Now()
	out := []KeyInfo{}
	for _, p := range o.progs.List() {
		out = append(out, keyInfo(p, now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

func (o *operator) keysGet(w http.ResponseWriter, r *http.Request) {
	p, err := o.progs.Get(r.PathValue("name"))
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	writeJSON(w, http.StatusOK, keyInfo(p, o.eng.Now()))
}

func (o *operator) keysCreate(w http.ResponseWriter, r *http.Request) {
	var in KeyCreate
	if err := decodeStrict(w, r, &in); err != nil {
		writeError(w, o.log, err)
		return
	}
	if in.Conversation == "" {
		writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "name the conversation the key proposes to (its id or name)"))
		return
	}
	convID, convName, err := o.eng.ResolveConversation(in.Conversation)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	rate, err := programs.ParseRate(in.Rate)
	if err != nil {
		writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "%v", err))
		return
	}
	pol := programs.Policy{Rate: rate, Monthly: in.Monthly}
	for _, t := range in.Templates {
		if t = strings.TrimSpace(t); t != "" {
			pol.Templates = append(pol.Templates, t)
		}
	}
	if in.Expires != "" {
		d, err := config.ParseDuration(in.Expires)
		if err != nil || d <= 0 {
			writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "expires %q: give a duration such as 30d or 12h", in.Expires))
			return
		}
		pol.ExpiresAt = o.eng.Now().Add(d)
	}
	p, key, err := o.progs.Create(programs.Spec{Name: in.Name, Conversation: convID, ConversationName: convName, Policy: pol})
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	o.log.Info("program key created", attrProgram, p.Name, attrKeyPrefix, p.Prefix(), "conversation", convID, attrClient, o.mgmt.clientAddr(r))
	writeJSON(w, http.StatusCreated, NewKey{Key: key, Program: keyInfo(p, o.eng.Now())})
}

func (o *operator) keysEnable(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := o.progs.SetEnabled(r.PathValue("name"), on)
		if err != nil {
			writeError(w, o.log, err)
			return
		}
		o.log.Info("program key changed", attrProgram, p.Name, "enabled", on, attrClient, o.mgmt.clientAddr(r))
		writeJSON(w, http.StatusOK, keyInfo(p, o.eng.Now()))
	}
}

func (o *operator) keysRotate(w http.ResponseWriter, r *http.Request) {
	var in KeyRotate
	if err := decodeStrict(w, r, &in); err != nil {
		writeError(w, o.log, err)
		return
	}
	grace := programs.DefaultGrace
	if in.Grace != "" {
		d, err := config.ParseDuration(in.Grace)
		if err != nil {
			writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "grace %q: give a duration such as 24h (0 ends the old key now)", in.Grace))
			return
		}
		grace = d
	}
	p, key, err := o.progs.Rotate(r.PathValue("name"), grace)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	o.log.Info("program key rotated", attrProgram, p.Name, attrKeyPrefix, p.Prefix(), "grace", grace.String(), attrClient, o.mgmt.clientAddr(r))
	writeJSON(w, http.StatusOK, NewKey{Key: key, Program: keyInfo(p, o.eng.Now())})
}

func (o *operator) keysDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := o.progs.Delete(name); err != nil {
		writeError(w, o.log, err)
		return
	}
	o.log.Info("program key deleted", attrProgram, name, attrClient, o.mgmt.clientAddr(r))
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

// since reads ?since= as a duration back from now ("24h", "7d") or a time.
func (o *operator) since(r *http.Request, name string) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := config.ParseDuration(s); err == nil {
		return o.eng.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, twokey.Errorf(twokey.EBadPayload, "%s=%q: give a duration back from now (24h, 7d) or an RFC 3339 time", name, clipURL(s))
}

func (o *operator) filter(r *http.Request) (reqlog.Filter, error) {
	q := r.URL.Query()
	f := reqlog.Filter{Service: q.Get("service"), Conversation: q.Get("conversation"), Key: q.Get("key"), Program: q.Get("program")}
	if f.Conversation != "" {
		if id, _, err := o.eng.ResolveConversation(f.Conversation); err == nil {
			f.Conversation = id
		}
	}
	if ev := q.Get("event"); ev != "" {
		f.Events = strings.Split(ev, ",")
	}
	var err error
	if f.Since, err = o.since(r, "since"); err != nil {
		return f, err
	}
	if s := q.Get("until"); s != "" {
		if f.Until, err = time.Parse(time.RFC3339, s); err != nil {
			return f, twokey.Errorf(twokey.EBadPayload, "until=%q is not an RFC 3339 time", clipURL(s))
		}
	}
	return f, nil
}

func (o *operator) logsList(w http.ResponseWriter, r *http.Request) {
	f, err := o.filter(r)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	limit, err := queryUint(r, "limit", 100)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	f.Limit = int(min(limit, 100000))
	entries, err := o.logs.Entries(f)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	if entries == nil {
		entries = []reqlog.Entry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

func (o *operator) usage(w http.ResponseWriter, r *http.Request) {
	f, err := o.filter(r)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	by := r.URL.Query().Get("by")
	if by == "" {
		by = reqlog.ByKey
	}
	if by != reqlog.ByKey && by != reqlog.ByService && by != reqlog.ByDay {
		writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "by=%q: group by key, service or day", clipURL(by)))
		return
	}
	rows, err := o.logs.Usage(by, f)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"by": by, "rows": rows})
}

func (o *operator) configShow(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"config": o.effective})
}

func (o *operator) bansList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"bans": o.mgmt.bans(o.eng.Now())})
}

func (o *operator) bansDelete(w http.ResponseWriter, r *http.Request) {
	addr := r.URL.Query().Get("addr")
	if addr != "" {
		ip := net.ParseIP(addr)
		if ip == nil {
			writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "addr=%q is not an IP address", clipURL(addr)))
			return
		}
		addr = ip.String()
	}
	n := o.mgmt.unban(addr)
	o.log.Info("management blocks lifted", attrClient, addr, "count", n)
	writeJSON(w, http.StatusOK, map[string]int{"unbanned": n})
}
