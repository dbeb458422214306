package engine

// Sessions and bearer tokens: session.open, the tokens it issues, and the
// pruning of the nonces (and accepted payload digests) whose window has
// passed.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/store"
)

// IssueToken makes a bearer token for key, valid until exp.
func (e *Engine) IssueToken(key string, exp time.Time) string {
	body := make([]byte, 0, 64)
	body = append(body, key...)
	body = fmt.Appendf(body, ".%d", exp.Unix())
	mac := hmac.New(sha256.New, e.cfg.TokenKey)
	mac.Write(body)
	return "tk." + base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// CheckTokenUntil returns the key id a bearer token speaks for and when
// the token expires.
func (e *Engine) CheckTokenUntil(tok string) (string, time.Time, error) {
	bad := twokey.Errorf(twokey.EUnauthorized, "bearer token is missing, malformed or expired; open a new session (POST /v1/sessions)")
	if len(tok) < 4 || tok[:3] != "tk." {
		return "", time.Time{}, bad
	}
	var b64body, b64mac string
	rest := tok[3:]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '.' {
			b64body, b64mac = rest[:i], rest[i+1:]
			break
		}
	}
	body, err1 := base64.RawURLEncoding.DecodeString(b64body)
	got, err2 := base64.RawURLEncoding.DecodeString(b64mac)
	if err1 != nil || err2 != nil {
		return "", time.Time{}, bad
	}
	mac := hmac.New(sha256.New, e.cfg.TokenKey)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got) {
		return "", time.Time{}, bad
	}
	if len(body) < conversation.KeyIDLen+2 || body[conversation.KeyIDLen] != '.' {
		return "", time.Time{}, bad
	}
	var exp int64
	if _, err := fmt.Sscan(string(body[conversation.KeyIDLen+1:]), &exp); err != nil {
		return "", time.Time{}, bad
	}
	until := time.Unix(exp, 0).UTC()
	if !e.clock.Now().Before(until) {
		return "", time.Time{}, bad
	}
	return string(body[:conversation.KeyIDLen]), until, nil
}

// SessionPayload is session.open.
type SessionPayload struct {
	conversation.Header
	Nonce string `json:"nonce"`
}

// OpenSession checks a signed session.open and returns a bearer token.
// Each nonce is accepted once, and created_at must lie within the window.
func (e *Engine) OpenSession(raw []byte) (string, time.Time, error) {
	m, err := conversation.Open(raw)
	if err != nil {
		return "", time.Time{}, err
	}
	if m.Kind != conversation.KindSessionOpen {
		return "", time.Time{}, twokey.Errorf(twokey.EBadEnvelope, "POST /v1/sessions takes a session.open envelope, not %s", m.Kind)
	}
	var p SessionPayload
	if err := m.Decode(&p); err != nil {
		return "", time.Time{}, err
	}
	nonce, err := base64.StdEncoding.Strict().DecodeString(p.Nonce)
	if err != nil || len(nonce) < twokey.MinNonceBytes {
		return "", time.Time{}, twokey.Errorf(twokey.EBadPayload, "nonce must be at least %d random bytes in standard base64", twokey.MinNonceBytes)
	}
	now := e.clock.Now()
	// PROTOCOL 2 and 7: a created_at ahead of the window is a bad payload
	// like any other; a stale session.open is unauthorized.
	if ahead := m.CreatedAt.Sub(now); ahead > twokey.MaxFutureSkew {
		return "", time.Time{}, twokey.Errorf(twokey.EBadPayload, "session.open created_at is %s ahead of the server's time; it may be at most %s ahead (check your clock)", ahead.Round(time.Second), twokey.MaxFutureSkew)
	}
	if age := now.Sub(m.CreatedAt); age > twokey.SessionWindow {
		return "", time.Time{}, twokey.Errorf(twokey.EUnauthorized, "session.open created_at is %s old; it must be at most %s old: sign a new one (and check your clock)", age.Round(time.Second), twokey.SessionWindow)
	}
	// Nonces are kept until the window has surely passed.
	key := base64.RawURLEncoding.EncodeToString(nonce)
	e.nonceMu.Lock()
	defer e.nonceMu.Unlock()
	seen, err := e.st.Get(store.Nonces, key)
	if err != nil {
		return "", time.Time{}, err
	}
	if seen != nil {
		return "", time.Time{}, twokey.Errorf(twokey.EUnauthorized, "this session.open nonce was already used; sign a new one with a fresh nonce")
	}
	until := m.CreatedAt.Add(2 * twokey.SessionWindow).Format(time.RFC3339)
	if err := e.st.Put(store.Nonces, key, []byte(until)); err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(twokey.SessionTTL)
	return e.IssueToken(m.Author, exp), exp, nil
}

// NoncePruneEvery is how often, on the engine's clock, the session nonces
// whose window has passed are deleted (and once at start).
const NoncePruneEvery = time.Minute

// pruneTick prunes nonces and schedules the next pass, until Close.
func (e *Engine) pruneTick() {
	e.pruneMu.Lock()
	defer e.pruneMu.Unlock()
	if e.pruneStopped {
		return
	}
	if n, err := e.PruneNonces(); err != nil {
		e.log.Warn("cannot prune session nonces; will retry", AttrError, err.Error())
	} else if n > 0 {
		e.log.Debug("pruned session nonces", "count", n)
	}
	if n, err := e.PruneSeen(); err != nil {
		e.log.Warn("cannot prune the digests of accepted payloads; will retry", AttrError, err.Error())
	} else if n > 0 {
		e.log.Debug("pruned accepted payload digests", "count", n)
	}
	e.pruneStop = e.clock.AfterFunc(NoncePruneEvery, e.pruneTick)
}

// PruneNonces deletes nonces whose window has passed: each is kept until
// twice the session window after its created_at (the window itself, and
// as much again for clocks that disagree), so a nonce is gone only once
// its session.open is stale anyway. New runs it at start and every
// NoncePruneEvery.
func (e *Engine) PruneNonces() (int, error) { return e.pruneExpired(store.Nonces) }

// pruneExpired deletes the keys of bucket whose value, an RFC 3339 time,
// has passed.
func (e *Engine) pruneExpired(bucket string) (int, error) {
	now := e.clock.Now()
	var old []store.Put
	err := e.st.ForEach(bucket, func(k string, v []byte) error {
		if t, err := time.Parse(time.RFC3339, string(v)); err == nil && now.After(t) {
			old = append(old, store.Put{Bucket: bucket, Key: k})
		}
		return nil
	})
	if err != nil || len(old) == 0 {
		return 0, err
	}
	return len(old), e.st.Commit(&store.Write{Puts: old})
}

// NewTokenKey makes a random token key.
func NewTokenKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}
