package client_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/internal/testutil"
)

// TestConversationNaming resolves conversations against a real server by
// id, unique id prefix and name, and refuses what is ambiguous, naming why.
func TestConversationNaming(t *testing.T) {
	srv := testutil.StartServer(t, nil)
	alice := testutil.Identity(t, "alice")
	bob := testutil.Identity(t, "bob")
	ca := testutil.Client(srv.URL(), alice, nil)
	cb := testutil.Client(srv.URL(), bob, nil)
	ctx := testutil.Ctx(t)
	create := func(c *client.Client, name string) string {
		t.Helper()
		rec, err := c.CreateConversation(ctx, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		var p conversation.CreatePayload
		_ = json.Unmarshal(rec.Body, &p)
		return p.Conversation
	}
	ops := create(ca, "ops")
	dup1 := create(ca, "twin")
	dup2 := create(ca, "twin")
	// Enough conversations that two share a first hex digit.
	ids := []string{ops, dup1, dup2}
	var shared string
	for shared == "" {
		id := create(ca, "x")
		for _, o := range ids {
			if o[0] == id[0] {
				shared = id[:1]
			}
		}
		ids = append(ids, id)
	}
	bobs := create(cb, "bobs")

	get := func(ref string) (string, error) {
		s, err := ca.Conversation(ctx, ref)
		return s.ID, err
	}
	for _, tc := range []struct {
		name, ref, want string
	}{
		{"full id", ops, ops},
		{"name", "ops", ops},
		{"unique id prefix", ops[:8], ops},
		{"shortest accepted prefix", uniquePrefix(ops, ids, 4), ops},
	} {
		got, err := get(tc.ref)
		if err != nil || got != tc.want {
			t.Errorf("%s %q: %s, %v; want %s", tc.name, tc.ref, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name, ref, code, says string
	}{
		{"ambiguous name", "twin", twokey.EBadPayload, "2 of your conversations are named"},
		{"ambiguous prefix", shared, twokey.EBadPayload, "prefix of"},
		{"unknown name", "nope", twokey.EUnknownConversation, "no conversation named"},
		{"another's conversation by name", "bobs", twokey.EUnknownConversation, "no conversation named"},
		{"another's conversation by prefix", bobs[:8], twokey.EUnknownConversation, ""},
	} {
		_, err := get(tc.ref)
		if twokey.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s %q: %v; want %s saying %q", tc.name, tc.ref, err, tc.code, tc.says)
		}
	}
	// The twins are each reachable by id.
	for _, id := range []string{dup1, dup2} {
		if got, err := get(id); err != nil || got != id {
			t.Errorf("twin %s: %s %v", id, got, err)
		}
	}
	// A full id the caller is not a member of is passed through, so that
	// the server says why.
	got, err := get(bobs)
	if err != nil || got != bobs {
		t.Fatalf("full id of another's conversation: %s %v", got, err)
	}
	if _, err := ca.Records(ctx, got, 0, 10); twokey.ErrorCode(err) != twokey.ENotMember {
		t.Fatalf("reading another's conversation: %v, want not_member", err)
	}
}

// uniquePrefix returns the shortest prefix of id, at least min long, that
// no other id shares.
func uniquePrefix(id string, all []string, min int) string {
	for n := min; n < len(id); n++ {
		unique := true
		for _, o := range all {
			if o != id && strings.HasPrefix(o, id[:n]) {
				unique = false
			}
		}
		if unique {
			return id[:n]
		}
	}
	return id
}

func TestTTLSeconds(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want int64
		ok   bool
	}{
		{0, 0, true},
		{time.Second, 1, true},
		{1900 * time.Millisecond, 2, true},
		{time.Second + time.Nanosecond, 2, true},
		{720 * time.Hour, 720 * 3600, true},
		{twokey.MaxSecretTTLSeconds * time.Second, twokey.MaxSecretTTLSeconds, true},
		{500 * time.Millisecond, 0, false},
		{time.Nanosecond, 0, false},
		{-time.Second, 0, false},
		{twokey.MaxSecretTTLSeconds*time.Second + time.Second, 0, false},
	} {
		got, err := client.TTLSeconds(tc.ttl)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("TTLSeconds(%s) = %d, %v; want %d", tc.ttl, got, err, tc.want)
		}
		if !tc.ok && twokey.ErrorCode(err) != twokey.EBadPayload {
			t.Errorf("TTLSeconds(%s) = %d, %v; want bad_payload", tc.ttl, got, err)
		}
	}
}
