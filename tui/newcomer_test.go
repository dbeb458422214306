package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/api"
)

// TestHeaderNamesYouFromYourIdentity: with no conversation naming the user,
// the header shows the name in their identity file and their key's prefix,
// not the prefix alone; the empty list says which key id to give an admin.
func TestHeaderNamesYouFromYourIdentity(t *testing.T) {
	ps := newPeople(t)
	m := New(context.Background(), Options{Backend: &fakeBackend{}, Self: ps.dave.KeyID(), SelfName: "dave", Now: func() time.Time { return t0 }, Location: time.UTC})
	m.Update(startMsg{gw: &api.Gateway{SigningKey: ps.gw.KeyID()}, cat: testCatalog(t)})
	s := screen(m)
	mustContain(t, s, "twokey · you are dave ("+shortKey(ps.dave.KeyID())+")")
	if !strings.Contains(m.status, "no conversations yet") || !strings.Contains(m.status, "ask a conversation's admin to add your key id "+ps.dave.KeyID()) {
		t.Errorf("status %q", m.status)
	}
}

// TestNamedConversationYouAreNotIn: 'twokey tui ops' as someone who is not
// in ops says so by name, with the command its admin runs to add their key
// id; once they are added, ops is selected.
func TestNamedConversationYouAreNotIn(t *testing.T) {
	ps := newPeople(t)
	m := New(context.Background(), Options{Backend: &fakeBackend{}, Self: ps.dave.KeyID(), SelfName: "dave", Conversation: "ops",
		Now: func() time.Time { return t0 }, Location: time.UTC})
	m.Update(startMsg{gw: &api.Gateway{SigningKey: ps.gw.KeyID()}, cat: testCatalog(t), convs: []api.Summary{{ID: convLab, Name: "lab"}}})
	key := ps.dave.KeyID()
	want := `you are not a member of a conversation "ops": ask its admin to add your key id, with 'twokey member add ops dave=` + key +
		`' (or 'twokey member propose ops --add dave=` + key + `' once its gateway is on)`
	if m.status != want || !m.statusErr {
		t.Errorf("status %q\nwant   %q", m.status, want)
	}
	mustContain(t, screen(m), `you are not a member of a conversation "ops"`, "add ops dave="+key[:20])

	// The admin adds dave; the next refresh lists ops, and selects it.
	m.Update(convsMsg{convs: []api.Summary{{ID: convLab, Name: "lab"}, {ID: convOps, Name: "ops"}}})
	if c := m.conv(); c == nil || c.name != "ops" || m.statusErr || m.status != "you are now a member of ops" {
		t.Errorf("after being added: selected %v, status %q", c, m.status)
	}
}
