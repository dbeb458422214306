package conversation

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twokey/twokey"
)

// signed verifies an envelope of kind over v, signed by id.
func signedMsg(t testing.TB, id *Identity, kind string, v any) *Message {
	t.Helper()
	env, err := SignJSON(id, kind, v)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Verify(env)
	wantCode(t, err)
	return m
}

func hdr() Header { return Header{Conversation: testConv, CreatedAt: testCreated} }

// someKeys returns n distinct canonical key ids.
func someKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fixedIdentity(byte(100 + i)).KeyID()
	}
	return out
}

func TestNewState(t *testing.T) {
	tests := []struct {
		name    string
		payload CreatePayload
		members []string // want, in order
		code    string
	}{
		{"author added as admin and member", CreatePayload{Header: hdr(), Name: "ops", Members: []Member{{Key: bob.KeyID(), Name: "bob"}}},
			[]string{alice.KeyID(), bob.KeyID()}, ""},
		{"no members", CreatePayload{Header: hdr(), Name: "solo"}, []string{alice.KeyID()}, ""},
		{"author listed is not added twice", CreatePayload{Header: hdr(), Name: "ops", Members: []Member{{Key: bob.KeyID()}, {Key: alice.KeyID(), Name: "me"}}},
			[]string{bob.KeyID(), alice.KeyID()}, ""},
		{"name missing", CreatePayload{Header: hdr()}, nil, twokey.EBadPayload},
		{"name too long", CreatePayload{Header: hdr(), Name: strings.Repeat("n", twokey.MaxNameBytes+1)}, nil, twokey.ETooLarge},
		{"name with a control character", CreatePayload{Header: hdr(), Name: "a\x1bb"}, nil, twokey.EBadPayload},
		{"member with a non-canonical key", CreatePayload{Header: hdr(), Name: "ops", Members: []Member{{Key: setSpareBits(bob.KeyID())}}}, nil, twokey.EBadPayload},
		{"member with a small-order key", CreatePayload{Header: hdr(), Name: "ops", Members: []Member{{Key: "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}}, nil, twokey.EBadPayload},
		{"member listed twice", CreatePayload{Header: hdr(), Name: "ops", Members: []Member{{Key: bob.KeyID()}, {Key: bob.KeyID()}}}, nil, twokey.EBadPayload},
		{"MaxMembers others plus the author", CreatePayload{Header: hdr(), Name: "ops", Members: members(someKeys(twokey.MaxMembers))}, nil, twokey.ETooLarge},
		{"MaxMembers with the author", CreatePayload{Header: hdr(), Name: "ops", Members: members(someKeys(twokey.MaxMembers - 1))},
			append([]string{alice.KeyID()}, someKeys(twokey.MaxMembers-1)...), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := signedMsg(t, alice, KindConversationCreate, tt.payload)
			s, _, err := NewState(testConv, m)
			if tt.code != "" {
				wantCode(t, err, tt.code)
				return
			}
			wantCode(t, err)
			if s.Admin != alice.KeyID() || s.ID != testConv || s.Name != tt.payload.Name {
				t.Fatalf("state %+v", s)
			}
			if got := strings.Join(s.Keys(), ","); got != strings.Join(tt.members, ",") {
				t.Fatalf("members %s\nwant %s", got, strings.Join(tt.members, ","))
			}
			if !s.IsMember(alice.KeyID()) || s.IsMember(carol.KeyID()) {
				t.Fatal("IsMember")
			}
		})
	}
	// A wrongly typed field.
	env := Sign(alice, KindConversationCreate, []byte(`{"conversation":"c","created_at":"`+testCreated+`","name":"x","members":"bob"}`))
	m, err := Verify(env)
	wantCode(t, err)
	_, _, err = NewState(testConv, m)
	wantCode(t, err, twokey.EBadPayload)
}

func members(keys []string) []Member {
	out := make([]Member, len(keys))
	for i, k := range keys {
		out[i] = Member{Key: k, Name: fmt.Sprintf("m%d", i)}
	}
	return out
}

func TestApplyMember(t *testing.T) {
	base := func() *State {
		return &State{ID: testConv, Name: "ops", Admin: alice.KeyID(), Members: []Member{{Key: alice.KeyID()}, {Key: bob.KeyID(), Name: "bob"}}}
	}
	full := func() *State {
		s := base()
		s.Members = members(append([]string{alice.KeyID()}, someKeys(twokey.MaxMembers-1)...))
		return s
	}
	tests := []struct {
		name   string
		state  func() *State
		author *Identity
		kind   string
		key    string
		mname  string
		want   []string
		code   string
	}{
		{"admin adds", base, alice, KindMemberAdd, carol.KeyID(), "carol", []string{alice.KeyID(), bob.KeyID(), carol.KeyID()}, ""},
		{"admin removes", base, alice, KindMemberRemove, bob.KeyID(), "", []string{alice.KeyID()}, ""},
		{"non-admin member adds", base, bob, KindMemberAdd, carol.KeyID(), "", nil, twokey.ENotAdmin},
		{"non-admin member removes", base, bob, KindMemberRemove, bob.KeyID(), "", nil, twokey.ENotAdmin},
		{"outsider adds", base, carol, KindMemberAdd, carol.KeyID(), "", nil, twokey.ENotAdmin},
		{"add an existing member", base, alice, KindMemberAdd, bob.KeyID(), "", nil, twokey.EBadPayload},
		{"add the admin again", base, alice, KindMemberAdd, alice.KeyID(), "", nil, twokey.EBadPayload},
		{"remove the admin", base, alice, KindMemberRemove, alice.KeyID(), "", nil, twokey.EBadPayload},
		{"remove a non-member", base, alice, KindMemberRemove, carol.KeyID(), "", nil, twokey.EBadPayload},
		{"add a padded key", base, alice, KindMemberAdd, carol.KeyID() + "=", "", nil, twokey.EBadPayload},
		{"add a key with spare bits", base, alice, KindMemberAdd, setSpareBits(carol.KeyID()), "", nil, twokey.EBadPayload},
		{"add the identity point", base, alice, KindMemberAdd, "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", nil, twokey.EBadPayload},
		{"add a standard-alphabet spelling", base, alice, KindMemberAdd, strings.NewReplacer("-", "+", "_", "/").Replace(keyWithURLChars(t).KeyID()), "", nil, twokey.EBadPayload},
		{"add with no key", base, alice, KindMemberAdd, "", "", nil, twokey.EBadPayload},
		{"remove bob spelled otherwise", base, alice, KindMemberRemove, setSpareBits(bob.KeyID()), "", nil, twokey.EBadPayload},
		{"add with a bad name", base, alice, KindMemberAdd, carol.KeyID(), "a\nb", nil, twokey.EBadPayload},
		{"add beyond MaxMembers", full, alice, KindMemberAdd, carol.KeyID(), "", nil, twokey.ETooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.state()
			before := strings.Join(s.Keys(), ",")
			m := signedMsg(t, tt.author, tt.kind, MemberPayload{Header: hdr(), Key: tt.key, Name: tt.mname})
			got, err := s.ApplyMember(m)
			if after := strings.Join(s.Keys(), ","); after != before {
				t.Fatal("ApplyMember changed the state")
			}
			if tt.code != "" {
				wantCode(t, err, tt.code)
				return
			}
			wantCode(t, err)
			keys := make([]string, len(got))
			for i, g := range got {
				keys[i] = g.Key
			}
			if strings.Join(keys, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("members %v, want %v", keys, tt.want)
			}
		})
	}
}

func TestValidateMembers(t *testing.T) {
	tests := []struct {
		name    string
		members []Member
		code    string
	}{
		{"none", nil, ""},
		{"MaxMembers", members(someKeys(twokey.MaxMembers)), ""},
		{"MaxMembers+1", members(someKeys(twokey.MaxMembers + 1)), twokey.ETooLarge},
		{"duplicate key", []Member{{Key: bob.KeyID(), Name: "a"}, {Key: bob.KeyID(), Name: "b"}}, twokey.EBadPayload},
		{"empty key", []Member{{Key: "", Name: "a"}}, twokey.EBadPayload},
		{"non-canonical key", []Member{{Key: bob.KeyID() + "="}}, twokey.EBadPayload},
		{"name at MaxNameBytes", []Member{{Key: bob.KeyID(), Name: strings.Repeat("é", twokey.MaxNameBytes/2)}}, ""},
		{"name over MaxNameBytes", []Member{{Key: bob.KeyID(), Name: strings.Repeat("n", twokey.MaxNameBytes+1)}}, twokey.ETooLarge},
		{"name not UTF-8", []Member{{Key: bob.KeyID(), Name: "a\xffb"}}, twokey.EBadPayload},
		{"name with DEL", []Member{{Key: bob.KeyID(), Name: "a\x7f"}}, twokey.EBadPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateMembers(tt.members)
			if tt.code == "" {
				wantCode(t, err)
			} else {
				wantCode(t, err, tt.code)
			}
		})
	}
}

func TestCheckChat(t *testing.T) {
	tests := []struct {
		text string
		code string
	}{
		{"hello", ""},
		{strings.Repeat("x", twokey.MaxTextBytes), ""},
		{strings.Repeat("x", twokey.MaxTextBytes+1), twokey.ETooLarge},
		{"", twokey.EBadPayload},
	}
	for _, tt := range tests {
		m := signedMsg(t, bob, KindChatMessage, ChatPayload{Header: hdr(), Text: tt.text})
		err := CheckChat(m)
		if tt.code == "" {
			wantCode(t, err)
		} else {
			wantCode(t, err, tt.code)
		}
	}
}

func TestStateHelpers(t *testing.T) {
	s := &State{Admin: alice.KeyID(), Members: []Member{{Key: alice.KeyID(), Name: "alice"}, {Key: bob.KeyID()}}}
	if s.MemberName(alice.KeyID()) != "alice" || s.MemberName(bob.KeyID()) != bob.KeyID()[:8] || s.MemberName("xy") != "xy" {
		t.Fatal("MemberName")
	}
	c := s.Clone()
	c.Members[0].Name = "changed"
	if s.Members[0].Name != "alice" {
		t.Fatal("Clone shares members")
	}
}
