package engine

import (
	"fmt"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/store"
)

// Freshness and replay (PROTOCOL 2). A posted envelope is accepted only
// while its created_at is within the window around the server's time, and
// only once: the digest of every accepted payload is kept in the store, in
// the same commit as the records it led to, until the window has surely
// passed. proposal_id and secret_id are kept for good, like request_id, so
// that neither an old membership change nor a revoked secret can be brought
// back by posting its envelope again.

// seenFor is how long a payload digest is remembered after its created_at:
// the window itself, and as much again for a clock that is set back.
const seenFor = twokey.MaxPastSkew + twokey.MaxFutureSkew

// checkFresh refuses a created_at that is too far in the past or future.
func (e *Engine) checkFresh(m *conversation.Message) error {
	now := e.clock.Now()
	if m.CreatedAt.After(now.Add(twokey.MaxFutureSkew)) {
		return twokey.Errorf(twokey.EBadPayload, "created_at %s is more than %s in the future (check your clock)", m.Header.CreatedAt, twokey.MaxFutureSkew)
	}
	if m.CreatedAt.Before(now.Add(-twokey.MaxPastSkew)) {
		return twokey.Errorf(twokey.EBadPayload, "created_at %s is more than %s in the past: an envelope is accepted only while it is fresh; sign it again (and check your clock)", m.Header.CreatedAt, twokey.MaxPastSkew)
	}
	return nil
}

// once refuses a payload the server has accepted before from the same
// signer and, when it is new, remembers it in ch's commit. It needs no
// reservation beside the store: a payload names its conversation, whose
// lock is held from this check to the commit (a conversation.create's
// new id is reserved in e.convs).
func (e *Engine) once(ch *change, m *conversation.Message) error {
	if err := e.unseen(m); err != nil {
		return err
	}
	ch.remember(m)
	return nil
}

// unseen refuses a payload the server has accepted before from the same
// signer.
func (e *Engine) unseen(m *conversation.Message) error {
	old, err := e.st.Get(store.Seen, seenKey(m))
	if err == nil && old == nil && e.legacySeen.Load() {
		old, err = e.st.Get(store.Seen, m.Author+"/"+m.PayloadDigest())
	}
	if err != nil {
		return err
	}
	if old != nil {
		return replayed("this " + m.Kind + " envelope")
	}
	return nil
}

// remember keeps m's payload in ch's commit until its window has passed.
func (ch *change) remember(m *conversation.Message) {
	until := m.CreatedAt.Add(seenFor).UTC().Format(time.RFC3339)
	ch.derived = append(ch.derived, store.Put{Bucket: store.Seen, Key: seenKey(m), Value: []byte(until)})
}

// seenKey names an accepted envelope: when it may be forgotten, its signer
// and its payload's digest. Two signers can sign byte-identical payloads
// (two approvals of one request in the same millisecond), and each is its
// author's own word; a replay is the same payload from the same signer
// (docs/protocol.md). The time comes first, from the payload's own
// created_at, so that new keys land at the end of the bucket, next to
// each other, instead of at random places (a digest's), and the expired
// ones are its first keys. "~" sorts after every key id's characters, so
// the keys written before this form ("KEYID/DIGEST") come first.
func seenKey(m *conversation.Message) string {
	return seenUntil(m.CreatedAt.Add(seenFor)) + "/" + m.Author + "/" + m.PayloadDigest()
}

// seenUntil is the part of a seenKey before the signer: "~" and the time
// it may be forgotten, so that the keys up to seenUntil(now) have expired.
func seenUntil(t time.Time) string { return fmt.Sprintf("~%016x", t.UnixMilli()) }

// hasLegacySeen reports whether the replay window holds keys of the form
// before seenKey's (until they expire, unseen checks that form too).
func (e *Engine) hasLegacySeen() (bool, error) {
	legacy := false
	err := e.st.Scan(store.Seen, "", "", false, func(k, _ []byte) bool {
		legacy = len(k) > 0 && k[0] != '~'
		return false
	})
	return legacy, err
}

func replayed(what string) error {
	return twokey.Errorf(twokey.EReplayed, "%s was already accepted by this server; a signed envelope counts once: sign a new one", what)
}

// claimID reserves an id accepted once per server (kind "proposal" or
// "secret") for ch: replayed when it was ever accepted, whatever the
// conversation.
func (e *Engine) claimID(ch *change, kind, id string) error {
	key := kind + "/" + id
	if err := e.reserve(ch, key, store.IDs, key, replayed(kind+"_id "+id)); err != nil {
		return err
	}
	ch.puts = append(ch.puts, store.Put{Bucket: store.IDs, Key: key, Value: []byte(ch.c.st.ID)})
	return nil
}

// reserve holds key in e.reserved while ch is built (released once it
// commits or is dropped), so that two conversations cannot claim one id at
// once, and answers refused when key is held or storeKey is in bucket.
func (e *Engine) reserve(ch *change, key, bucket, storeKey string, refused error) error {
	if _, loaded := e.reserved.LoadOrStore(key, true); loaded {
		return refused
	}
	release := func() { e.reserved.Delete(key) }
	ch.after = append(ch.after, release)
	ch.abort = append(ch.abort, release)
	old, err := e.st.Get(bucket, storeKey)
	if err != nil {
		return err
	}
	if old != nil {
		return refused
	}
	return nil
}

// usedID reports whether an id of kind was accepted in conversation conv.
func (e *Engine) usedID(kind, id, conv string) (bool, error) {
	v, err := e.st.Get(store.IDs, kind+"/"+id)
	return v != nil && string(v) == conv, err
}

// PruneSeen deletes the payload digests whose window has passed. New runs
// it at start and every NoncePruneEvery, with the session nonces.
// The keys are time-first (seenKey), so the expired ones are the first
// keys of the bucket: they are read as a range, without a scan of the
// window; keys of the old form are pruned by their values while any are
// left.
func (e *Engine) PruneSeen() (int, error) {
	old := 0
	if e.legacySeen.Load() {
		n, err := e.pruneExpired(store.Seen)
		if err != nil {
			return n, err
		}
		old = n
		legacy, err := e.hasLegacySeen()
		if err != nil {
			return old, err
		}
		e.legacySeen.Store(legacy)
	}
	var dead []store.Put
	to := seenUntil(e.clock.Now())
	err := e.st.Scan(store.Seen, "~", to, false, func(k, _ []byte) bool {
		dead = append(dead, store.Put{Bucket: store.Seen, Key: string(k)})
		return true
	})
	if err != nil || len(dead) == 0 {
		return old, err
	}
	return old + len(dead), e.st.Commit(&store.Write{Puts: dead})
}
