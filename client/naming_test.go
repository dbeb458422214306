package client_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/internal/testutil"
)

// TestTwoConversationsOfOneName (issue 18): the ambiguity error lists the
// candidates (id, created_at, members), oldest first, and names the way
// out; an alias picks one (and beats the shared name), and a summary
// resolved by id or alias carries a Name that names it.
func TestTwoConversationsOfOneName(t *testing.T) {
	srv := testutil.StartServer(t, nil)
	alice, bob := testutil.Identity(t, "alice"), testutil.Identity(t, "bob")
	ca := testutil.Client(srv.URL(), alice, nil)
	ctx := testutil.Ctx(t)
	create := func(members []conversation.Member) string {
		t.Helper()
		rec, err := ca.CreateConversation(ctx, "ops", members)
		if err != nil {
			t.Fatal(err)
		}
		var p conversation.CreatePayload
		_ = json.Unmarshal(rec.Body, &p)
		return p.Conversation
	}
	first := create([]conversation.Member{{Key: bob.KeyID(), Name: "bob"}})
	second := create(nil)
	all, err := ca.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]string{}
	for _, s := range all {
		created[s.ID] = s.CreatedAt
	}

	_, err = ca.Conversation(ctx, "ops")
	lines := []string{
		"\n  " + first + "  created " + created[first] + "  members alice, bob",
		"\n  " + second + "  created " + created[second] + "  members alice",
	}
	if created[second]+second < created[first]+first { // made in the same millisecond
		lines[0], lines[1] = lines[1], lines[0]
	}
	want := `2 of your conversations are named "ops": name one by its id (or a unique prefix of it), or give it a name of your own with 'twokey conv alias NAME ID'` +
		lines[0] + lines[1]
	if twokey.ErrorCode(err) != twokey.EBadPayload || err.Error() != want {
		t.Fatalf("ambiguous name:\n%v\nwant:\n%s", err, want)
	}

	// By id: the name is shared, so the summary names it by its id.
	if s, err := ca.Conversation(ctx, second); err != nil || s.Name != second {
		t.Fatalf("by id: %+v %v, want Name %s", s, err, second)
	}
	ca.Aliases = map[string]string{"ops": second, "ops-old": first}
	for ref, id := range map[string]string{"ops": second, "ops-old": first, first[:8]: first} {
		s, err := ca.Conversation(ctx, ref)
		if err != nil || s.ID != id {
			t.Errorf("%q: %s %v, want %s", ref, s.ID, err, id)
		}
		if want := map[string]string{second: "ops", first: "ops-old"}[id]; s.Name != want {
			t.Errorf("%q: Name %q, want the alias %q", ref, s.Name, want)
		}
	}
	ca.Aliases = map[string]string{"gone": "00000000-0000-4000-8000-000000000000"}
	if _, err := ca.Conversation(ctx, "gone"); twokey.ErrorCode(err) != twokey.EUnknownConversation || !strings.Contains(err.Error(), "twokey conv alias --remove gone") {
		t.Fatalf("an alias of a conversation not yours: %v", err)
	}
}

// TestAmbiguousNameOrder: oldest first, whatever order the list came in.
func TestAmbiguousNameOrder(t *testing.T) {
	err := client.AmbiguousName("x", []api.Summary{
		{ID: "b", CreatedAt: "2026-01-02T00:00:00.000Z"},
		{ID: "a", CreatedAt: "2026-01-01T00:00:00.000Z", Members: []conversation.Member{{Name: "m"}}},
	})
	if got := err.Error(); !strings.Contains(got, "\n  a  created 2026-01-01T00:00:00.000Z  members m\n  b  created") {
		t.Fatalf("%s", got)
	}
}

// TestServerURL: HOST:PORT without a scheme is http:// to this machine
// and https:// elsewhere; anything with a scheme, or not an address, is
// left for checkServer to judge.
func TestServerURL(t *testing.T) {
	for in, want := range map[string][2]string{
		"127.0.0.1:18080":        {"http://127.0.0.1:18080", "http"},
		"localhost:18080":        {"http://localhost:18080", "http"},
		"LOCALHOST:8080":         {"http://LOCALHOST:8080", "http"},
		"[::1]:8080":             {"http://[::1]:8080", "http"},
		"127.0.0.1":              {"http://127.0.0.1", "http"},
		"gw.example:8443":        {"https://gw.example:8443", "https"},
		"10.0.0.5:8080":          {"https://10.0.0.5:8080", "https"},
		"gw.example":             {"https://gw.example", "https"},
		"http://127.0.0.1:8080":  {"http://127.0.0.1:8080", ""},
		"https://gw.example":     {"https://gw.example", ""},
		"http://gw.example:8080": {"http://gw.example:8080", ""},
		"":                       {"", ""},
		"not a url":              {"not a url", ""},
		"host:port":              {"host:port", ""},
		"user@gw.example:8443":   {"user@gw.example:8443", ""},
		"ftp://gw.example":       {"ftp://gw.example", ""},
	} {
		u, assumed := client.ServerURL(in)
		if u != want[0] || assumed != want[1] {
			t.Errorf("ServerURL(%q) = %q, %q; want %q, %q", in, u, assumed, want[0], want[1])
		}
	}
}
