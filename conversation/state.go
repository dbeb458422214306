package conversation

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twokey/twokey"
)

// Member is one participant of a conversation.
type Member struct {
	Key  string `json:"key"`
	Name string `json:"name"`
}

// CreatePayload is conversation.create.
type CreatePayload struct {
	Header
	Name    string   `json:"name"`
	Members []Member `json:"members"`
}

// ChatPayload is chat.message.
type ChatPayload struct {
	Header
	Text string `json:"text"`
}

// MemberPayload is member.add and member.remove.
type MemberPayload struct {
	Header
	Key  string `json:"key"`
	Name string `json:"name"`
}

// State is what the log says about a conversation: who is in it, and where
// the log stands. The gate keeps its own state beside it.
type State struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Admin     string   `json:"admin"`
	Members   []Member `json:"members"`
	Seq       uint64   `json:"seq"`
	Chain     Chain    `json:"chain"`
	CreatedAt string   `json:"created_at"`
	// LastAt is the received_at of record Seq: the next record is never
	// stamped earlier, even if the server's clock steps back, so that
	// received_at never decreases along the log (the audit checks it).
	LastAt time.Time `json:"last_at,omitzero"`
}

// IsMember reports whether key is a member.
func (s *State) IsMember(key string) bool { return s.MemberIndex(key) >= 0 }

// MemberIndex returns the index of key in Members, or -1.
func (s *State) MemberIndex(key string) int {
	return slices.IndexFunc(s.Members, func(m Member) bool { return m.Key == key })
}

// MemberName returns the name of a member, or a short form of its key.
func (s *State) MemberName(key string) string {
	if i := s.MemberIndex(key); i >= 0 && s.Members[i].Name != "" {
		return s.Members[i].Name
	}
	return ShortKey(key)
}

// ShortKey abbreviates a key id for display.
func ShortKey(key string) string {
	if len(key) > 8 {
		return key[:8]
	}
	return key
}

// Keys returns the members' key ids in order.
func (s *State) Keys() []string {
	out := make([]string, len(s.Members))
	for i, m := range s.Members {
		out[i] = m.Key
	}
	return out
}

// Clone returns a deep copy.
func (s *State) Clone() *State {
	c := *s
	c.Members = slices.Clone(s.Members)
	return &c
}

// ValidateName checks a conversation or member name.
func ValidateName(what, name string, required bool) error {
	if name == "" {
		if required {
			return twokey.Errorf(twokey.EBadPayload, "%s name is required", what)
		}
		return nil
	}
	if len(name) > twokey.MaxNameBytes {
		return twokey.Errorf(twokey.ETooLarge, "%s name is %d bytes; the limit is %d", what, len(name), twokey.MaxNameBytes)
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return twokey.Errorf(twokey.EBadPayload, "%s name must be printable UTF-8", what)
	}
	return nil
}

// ValidateMembers checks a member list: canonical keys, valid names, no
// key twice, at most MaxMembers.
func ValidateMembers(members []Member) error {
	if len(members) > twokey.MaxMembers {
		return twokey.Errorf(twokey.ETooLarge, "%d members; a conversation holds at most %d", len(members), twokey.MaxMembers)
	}
	seen := map[string]bool{}
	for _, m := range members {
		if _, err := ParseKeyID(m.Key); err != nil {
			return &twokey.Error{Code: twokey.EBadPayload, Message: "member " + twokey.Clip(m.Name) + ": " + twokey.ErrorMessage(err), Err: err}
		}
		if err := ValidateName("member", m.Name, false); err != nil {
			return err
		}
		if seen[m.Key] {
			return twokey.Errorf(twokey.EBadPayload, "member %s is listed twice", m.Key)
		}
		seen[m.Key] = true
	}
	return nil
}

// NewState builds the state a conversation.create message founds. The
// author becomes admin and, if absent, a member.
func NewState(id string, m *Message) (*State, CreatePayload, error) {
	var p CreatePayload
	if err := m.Decode(&p); err != nil {
		return nil, p, err
	}
	if err := ValidateName("conversation", p.Name, true); err != nil {
		return nil, p, err
	}
	if p.Members == nil {
		p.Members = []Member{}
	}
	members := slices.Clone(p.Members)
	if !slices.ContainsFunc(members, func(x Member) bool { return x.Key == m.Author }) {
		members = append([]Member{{Key: m.Author}}, members...)
	}
	if err := ValidateMembers(members); err != nil {
		return nil, p, err
	}
	return &State{ID: id, Name: p.Name, Admin: m.Author, Members: members}, p, nil
}

// ApplyMember checks a member.add or member.remove against the state and
// returns the members after it. It does not change s.
func (s *State) ApplyMember(m *Message) ([]Member, error) {
	if m.Author != s.Admin {
		return nil, twokey.Errorf(twokey.ENotAdmin, "only the conversation's admin may change its members")
	}
	var p MemberPayload
	if err := m.Decode(&p); err != nil {
		return nil, err
	}
	if _, err := ParseKeyID(p.Key); err != nil {
		return nil, &twokey.Error{Code: twokey.EBadPayload, Message: "key: " + twokey.ErrorMessage(err), Err: err}
	}
	members := slices.Clone(s.Members)
	switch m.Kind {
	case KindMemberAdd:
		if err := ValidateName("member", p.Name, false); err != nil {
			return nil, err
		}
		if s.IsMember(p.Key) {
			return nil, twokey.Errorf(twokey.EBadPayload, "%s is already a member", ShortKey(p.Key))
		}
		members = append(members, Member{Key: p.Key, Name: p.Name})
		if len(members) > twokey.MaxMembers {
			return nil, twokey.Errorf(twokey.ETooLarge, "a conversation holds at most %d members", twokey.MaxMembers)
		}
	case KindMemberRemove:
		i := s.MemberIndex(p.Key)
		if i < 0 {
			return nil, twokey.Errorf(twokey.EBadPayload, "%s is not a member", ShortKey(p.Key))
		}
		if p.Key == s.Admin {
			return nil, twokey.Errorf(twokey.EBadPayload, "the admin cannot be removed")
		}
		members = slices.Delete(members, i, i+1)
	}
	return members, nil
}

// CheckChat validates a chat.message.
func CheckChat(m *Message) error {
	var p ChatPayload
	if err := m.Decode(&p); err != nil {
		return err
	}
	if p.Text == "" {
		return twokey.Errorf(twokey.EBadPayload, "chat.message needs text")
	}
	return CheckText(p.Text)
}

// CheckText refuses a chat message's text over twokey.MaxTextBytes or not
// UTF-8. The client asks it before signing, so that a text too long for
// the envelope (64 KiB) is named by the same limit as one that fits it.
func CheckText(text string) error {
	if len(text) > twokey.MaxTextBytes {
		return twokey.Errorf(twokey.ETooLarge, "the text is %d bytes, over the limit of %d bytes (%d KiB) for a message's text: shorten it or split it into several messages", len(text), twokey.MaxTextBytes, twokey.MaxTextBytes>>10)
	}
	if !utf8.ValidString(text) {
		return twokey.Errorf(twokey.EBadPayload, "text must be UTF-8")
	}
	return nil
}
