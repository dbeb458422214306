package engine

import (
	"context"
	"log/slog"
	"regexp"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/vault"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ValidID checks a UUID in lower-case text form.
func ValidID(what, id string) error {
	if !uuidRE.MatchString(id) {
		return twokey.Errorf(twokey.EBadPayload, "%s %q is not a lower-case UUID", what, twokey.Clip(id))
	}
	return nil
}

// CheckToken returns the key id a bearer token speaks for.
func (e *Engine) CheckToken(tok string) (string, error) {
	key, _, err := e.CheckTokenUntil(tok)
	return key, err
}

// Clock returns the engine's clock, for timers that must follow its time
// (a WebSocket closes when its token expires).
func (e *Engine) Clock() clock.Clock { return e.clock }

// checkCommon applies the rules every posted message obeys.
func (e *Engine) checkCommon(m *conversation.Message) error {
	if err := e.checkFresh(m); err != nil {
		return err
	}
	if conversation.GatewayKind(m.Kind) {
		return twokey.Errorf(twokey.EForbidden, "%s records are written only by the gateway", m.Kind)
	}
	if conversation.NeedsGateway(m.Kind) && m.Header.Gateway != e.gwKey {
		return twokey.Errorf(twokey.EBadPayload, "payload gateway %q is not this gateway's key %s; the signature is bound to another gateway", twokey.Clip(m.Header.Gateway), e.gwKey)
	}
	return nil
}

// Create founds a conversation from a signed conversation.create.
func (e *Engine) Create(raw []byte) (conversation.Record, error) {
	m, err := conversation.Open(raw)
	if err != nil {
		return conversation.Record{}, err
	}
	if m.Kind != conversation.KindConversationCreate {
		return conversation.Record{}, twokey.Errorf(twokey.EBadEnvelope, "POST /v1/conversations takes a conversation.create envelope, not %s", m.Kind)
	}
	if err := e.checkCommon(m); err != nil {
		return conversation.Record{}, err
	}
	id := m.Header.Conversation
	if err := ValidID("conversation", id); err != nil {
		return conversation.Record{}, err
	}
	st, _, err := conversation.NewState(id, m)
	if err != nil {
		return conversation.Record{}, err
	}
	st.CreatedAt = conversation.FormatTime(e.clock.Now())
	c := &conv{st: &conversation.State{ID: id}, proposals: map[string]*gate.Proposal{}, lazy: map[string]time.Time{},
		requests: map[string]*gate.Request{}, secrets: map[string]*vault.Secret{}}
	// Before the id's reservation, so that a replay is answered replayed,
	// not as an existing conversation.
	if err := e.unseen(m); err != nil {
		return conversation.Record{}, err
	}
	e.mu.Lock()
	if e.convs[id] != nil {
		e.mu.Unlock()
		return conversation.Record{}, twokey.Errorf(twokey.EBadPayload, "conversation %s already exists; make a new id", id)
	}
	e.convs[id] = c // reserved; visible only once it has a record
	c.mu.Lock()
	e.mu.Unlock()
	defer c.mu.Unlock()
	ch := e.begin(c)
	ch.st = st
	rec := ch.append(m, e.clock.Now())
	ch.remember(m)
	if err := e.commit(ch); err != nil {
		e.mu.Lock()
		delete(e.convs, id)
		e.mu.Unlock()
		return conversation.Record{}, conflictErr(err, id)
	}
	e.log.Info("conversation created", AttrConv, id, AttrAuthor, m.Author)
	return rec, nil
}

// Post applies a signed envelope to a conversation and returns the record
// the poster is answered with.
func (e *Engine) Post(convID string, raw []byte) (conversation.Record, error) {
	m, err := conversation.Open(raw)
	if err != nil {
		return conversation.Record{}, err
	}
	return e.PostMessage(convID, m)
}

// PostMessage applies an already verified message.
func (e *Engine) PostMessage(convID string, m *conversation.Message) (conversation.Record, error) {
	c, err := e.admit(convID, m)
	if err != nil {
		return conversation.Record{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var rec conversation.Record
	err = e.attempt(c, func() error {
		ch, err := e.decide(c, convID, m)
		if ch != nil {
			defer ch.drop() // a no-op once committed
		}
		if err != nil {
			return err
		}
		if err := e.commit(ch); err != nil {
			return err
		}
		rec = ch.records[0]
		return nil
	})
	if err != nil {
		return conversation.Record{}, err
	}
	if ctx := context.Background(); e.log.Enabled(ctx, slog.LevelDebug) {
		e.log.LogAttrs(ctx, slog.LevelDebug, "accepted", slog.String(AttrConv, convID), slog.String(AttrKind, m.Kind),
			slog.Uint64(AttrSeq, rec.Seq), slog.String(AttrAuthor, m.Author))
	}
	return rec, nil
}

// admit finds a posted message's conversation and applies the checks that
// need no lock.
func (e *Engine) admit(convID string, m *conversation.Message) (*conv, error) {
	c, err := e.lookup(convID)
	if err != nil {
		return nil, err
	}
	if m.Header.Conversation != convID {
		return nil, twokey.Errorf(twokey.EBadPayload, "payload is for conversation %q, not %s; a signature is bound to its conversation", twokey.Clip(m.Header.Conversation), convID)
	}
	switch m.Kind {
	case conversation.KindConversationCreate, conversation.KindSessionOpen:
		return nil, twokey.Errorf(twokey.EBadPayload, "%s is not posted to a conversation", m.Kind)
	}
	if err := e.checkCommon(m); err != nil {
		return nil, err
	}
	return c, nil
}

// decide builds the change a posted message makes to c, everything but
// its commit. Called with c.mu held. The change, once begun, is returned
// even with an error: the caller drops it.
func (e *Engine) decide(c *conv, convID string, m *conversation.Message) (*change, error) {
	if c.st.Seq == 0 {
		return nil, twokey.Errorf(twokey.EUnknownConversation, "no conversation %q on this server", convID)
	}
	if !c.st.IsMember(m.Author) {
		return nil, twokey.Errorf(twokey.ENotMember, "key %s is not a member of conversation %s", conversation.ShortKey(m.Author), c.st.Name)
	}
	ch := e.begin(c)
	if m.Kind != conversation.KindGateSecret {
		// The member's message is logged first, then what follows from it.
		// gate.secret alone is never logged: it carries the sealed key.
		ch.append(m, e.clock.Now())
	}
	switch m.Kind {
	case conversation.KindChatMessage:
		if err := conversation.CheckChat(m); err != nil {
			return ch, err
		}
	case conversation.KindMemberAdd, conversation.KindMemberRemove:
		if c.gate.Enabled {
			return ch, twokey.Errorf(twokey.EGateEnabled, "the gateway is on: members change only through a member.propose every signer approves")
		}
		members, err := c.st.ApplyMember(m)
		if err != nil {
			return ch, err
		}
		ch.st.Members = members
	default:
		if err := e.gateKind(ch, m); err != nil {
			return ch, err
		}
	}
	// Checked last, so that a replayed request or vote is answered with
	// what it is (duplicate_request, already_voted, request_closed).
	if err := e.once(ch, m); err != nil {
		return ch, err
	}
	return ch, nil
}
