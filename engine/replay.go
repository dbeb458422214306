package engine

import (
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
// signer and, when it is new, remembers it in ch's commit.
func (e *Engine) once(ch *change, m *conversation.Message) error {
	d := seenKey(m)
	if _, loaded := e.reserved.LoadOrStore("payload/"+d, true); loaded {
		return replayed("this " + m.Kind + " envelope")
	}
	release := func() { e.reserved.Delete("payload/" + d) }
	ch.after = append(ch.after, release)
	ch.abort = append(ch.abort, release)
	old, err := e.st.Get(store.Seen, d)
	if err != nil {
		return err
	}
	if old != nil {
		return replayed("this " + m.Kind + " envelope")
	}
	until := m.CreatedAt.Add(seenFor).UTC().Format(time.RFC3339)
	ch.puts = append(ch.puts, store.Put{Bucket: store.Seen, Key: d, Value: []byte(until)})
	return nil
}

// seenKey names an accepted envelope: its signer and its payload's digest.
// Two signers can sign byte-identical payloads (two approvals of one
// request in the same millisecond), and each is its author's own word;
// a replay is the same payload from the same signer (docs/protocol.md).
func seenKey(m *conversation.Message) string { return m.Author + "/" + m.PayloadDigest() }

func replayed(what string) error {
	return twokey.Errorf(twokey.EReplayed, "%s was already accepted by this server; a signed envelope counts once: sign a new one", what)
}

// claimID reserves an id accepted once per server (kind "proposal" or
// "secret") for ch: replayed when it was ever accepted, whatever the
// conversation.
func (e *Engine) claimID(ch *change, kind, id string) error {
	key := kind + "/" + id
	if _, loaded := e.reserved.LoadOrStore(key, true); loaded {
		return replayed(kind + "_id " + id)
	}
	release := func() { e.reserved.Delete(key) }
	ch.after = append(ch.after, release)
	ch.abort = append(ch.abort, release)
	old, err := e.st.Get(store.IDs, key)
	if err != nil {
		return err
	}
	if old != nil {
		return replayed(kind + "_id " + id)
	}
	ch.puts = append(ch.puts, store.Put{Bucket: store.IDs, Key: key, Value: []byte(ch.c.st.ID)})
	return nil
}

// usedID reports whether an id of kind was accepted in conversation conv.
func (e *Engine) usedID(kind, id, conv string) (bool, error) {
	v, err := e.st.Get(store.IDs, kind+"/"+id)
	return v != nil && string(v) == conv, err
}

// PruneSeen deletes the payload digests whose window has passed. New runs
// it at start and every NoncePruneEvery, with the session nonces.
func (e *Engine) PruneSeen() (int, error) {
	now := e.clock.Now()
	var old []store.Put
	err := e.st.ForEach(store.Seen, func(k string, v []byte) error {
		if t, err := time.Parse(time.RFC3339, string(v)); err == nil && now.After(t) {
			old = append(old, store.Put{Bucket: store.Seen, Key: k})
		}
		return nil
	})
	if err != nil || len(old) == 0 {
		return 0, err
	}
	return len(old), e.st.Commit(&store.Write{Puts: old})
}
