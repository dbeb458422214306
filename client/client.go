// Package client is the one way the CLI and the TUI reach a twokey server:
// it signs envelopes with the caller's identity, opens sessions, reads and
// follows logs over the WebSocket (verifying every record), and turns the
// protocol's error bodies back into classified errors.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/conversation"
)

// Client talks to one server as one identity.
type Client struct {
	Base string
	HTTP *http.Client
	ID   *conversation.Identity
	// Now is the client's clock (tests may replace it).
	Now func() time.Time
	// Aliases are the caller's own names for conversations (alias to id),
	// which Conversation resolves first after an exact id: the CLI keeps
	// them in a file beside the identity ('twokey conv alias').
	Aliases map[string]string

	mu      sync.Mutex
	token   string
	expires time.Time
	gw      *api.Gateway
}

// New returns a client for the server at base acting as id, with Go's
// default trust. It does not check base; Open does (the CLI and the TUI
// use Open). Redirects are treated as transport.go says either way.
func New(base string, id *conversation.Identity) *Client {
	return &Client{Base: strings.TrimSuffix(base, "/"), HTTP: newHTTPClient(base, nil), ID: id,
		Now: func() time.Time { return time.Now().UTC() }}
}

// Error is returned for an answer the server refused.
type Error = twokey.Error

func (c *Client) url(path string) string { return c.Base + path }

// do sends a request and decodes a JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, body []byte, auth bool, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		tok, err := c.Token(ctx)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ce := AsRefusal(err); ce != nil {
			return ce // a redirect refused or a bad setting: its words, as they are
		}
		return &twokey.Error{Code: twokey.EUnavailable, Message: fmt.Sprintf("cannot reach the twokey server at %s: %v (is 'twokey serve' running? choose another with --server or TWOKEY_SERVER)", c.Base, unwrapURLErr(err)), Err: err}
	}
	defer resp.Body.Close()
	err = answer(resp, method, path, out)
	switch {
	case !errors.Is(err, errForeign):
		return err
	case path == "/v1/gateway": // the question notTwokey would ask, answered
		return notTwokeyError(c.Base, err, "")
	}
	return notTwokey(ctx, c.HTTP, c.Base, err)
}

// AsRefusal returns the *RedirectError or *SettingError in err's chain, or
// nil: what the client refused to do, which callers show as it is rather
// than as a server that cannot be reached.
func AsRefusal(err error) error {
	var re *RedirectError
	if errors.As(err, &re) {
		return re
	}
	var se *SettingError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

func unwrapURLErr(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// Gateway returns (and caches) the server's keys.
func (c *Client) Gateway(ctx context.Context) (*api.Gateway, error) {
	c.mu.Lock()
	gw := c.gw
	c.mu.Unlock()
	if gw != nil {
		return gw, nil
	}
	var g api.Gateway
	if err := c.do(ctx, "GET", "/v1/gateway", nil, false, &g); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.gw = &g
	c.mu.Unlock()
	return &g, nil
}

func (c *Client) needID() error {
	if c.ID == nil {
		return &twokey.Error{Code: twokey.EUnauthorized, Message: "no identity; make one with 'twokey id new --name NAME' or choose one with --identity FILE"}
	}
	return nil
}

// Token returns a bearer token, opening a session when there is none or it
// is about to expire.
func (c *Client) Token(ctx context.Context) (string, error) {
	if err := c.needID(); err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.token != "" && c.Now().Add(time.Minute).Before(c.expires) {
		t := c.token
		c.mu.Unlock()
		return t, nil
	}
	c.mu.Unlock()
	nonce := make([]byte, 24)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	env, err := conversation.SignJSON(c.ID, conversation.KindSessionOpen, map[string]string{
		"created_at": conversation.FormatTime(c.Now()), "nonce": base64.StdEncoding.EncodeToString(nonce)})
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(env)
	var out api.Session
	if err := c.do(ctx, "POST", "/v1/sessions", body, false, &out); err != nil {
		return "", err
	}
	exp, _ := time.Parse(time.RFC3339, out.ExpiresAt)
	c.mu.Lock()
	c.token, c.expires = out.Token, exp
	c.mu.Unlock()
	return out.Token, nil
}

// Header returns the common payload fields for conv, including the
// gateway's key id (which binds gate.* and member.* signatures to it).
func (c *Client) Header(ctx context.Context, conv string) (conversation.Header, error) {
	gw, err := c.Gateway(ctx)
	if err != nil {
		return conversation.Header{}, err
	}
	return conversation.Header{Conversation: conv, CreatedAt: conversation.FormatTime(c.Now()), Gateway: gw.SigningKey}, nil
}

// NewID returns a fresh lower-case UUID.
func NewID() string { return uuid.NewString() }

// PostEnvelope posts a signed envelope to conv and returns the record.
func (c *Client) PostEnvelope(ctx context.Context, conv string, env conversation.Envelope) (conversation.Record, error) {
	body, err := json.Marshal(env)
	if err != nil {
		return conversation.Record{}, err
	}
	var rec conversation.Record
	err = c.do(ctx, "POST", "/v1/conversations/"+url.PathEscape(conv)+"/messages", body, false, &rec)
	return rec, err
}

// Post signs payload as kind and posts it to conv.
func (c *Client) Post(ctx context.Context, conv, kind string, payload any) (conversation.Record, error) {
	if err := c.needID(); err != nil {
		return conversation.Record{}, err
	}
	env, err := conversation.SignJSON(c.ID, kind, payload)
	if err != nil {
		return conversation.Record{}, err
	}
	return c.PostEnvelope(ctx, conv, env)
}

// CreateConversation founds a conversation with the given other members.
func (c *Client) CreateConversation(ctx context.Context, name string, members []conversation.Member) (conversation.Record, error) {
	if err := c.needID(); err != nil {
		return conversation.Record{}, err
	}
	self := false
	for _, m := range members {
		self = self || m.Key == c.ID.KeyID()
	}
	if !self {
		// Name ourselves, so that others see a name and not a key.
		members = append([]conversation.Member{{Key: c.ID.KeyID(), Name: c.ID.Name}}, members...)
	}
	p := conversation.CreatePayload{Header: conversation.Header{Conversation: NewID(), CreatedAt: conversation.FormatTime(c.Now())},
		Name: name, Members: members}
	env, err := conversation.SignJSON(c.ID, conversation.KindConversationCreate, p)
	if err != nil {
		return conversation.Record{}, err
	}
	body, _ := json.Marshal(env)
	var rec conversation.Record
	err = c.do(ctx, "POST", "/v1/conversations", body, false, &rec)
	return rec, err
}

// Say posts a chat message. A text over the limit is refused here, before
// signing, with the limit's own words (conversation.CheckText): one too
// long even for the envelope would otherwise be named by that limit.
func (c *Client) Say(ctx context.Context, conv, text string) (conversation.Record, error) {
	if err := conversation.CheckText(text); err != nil {
		return conversation.Record{}, err
	}
	return c.Post(ctx, conv, conversation.KindChatMessage, conversation.ChatPayload{
		Header: conversation.Header{Conversation: conv, CreatedAt: conversation.FormatTime(c.Now())}, Text: text})
}

// Conversations lists the caller's conversations.
func (c *Client) Conversations(ctx context.Context) ([]api.Summary, error) {
	var out api.ConversationList
	err := c.do(ctx, "GET", "/v1/conversations", nil, true, &out)
	return out.Conversations, err
}

// Records reads up to limit records of conv after seq.
func (c *Client) Records(ctx context.Context, conv string, after uint64, limit int) ([]conversation.Record, error) {
	var out api.RecordPage
	err := c.do(ctx, "GET", fmt.Sprintf("/v1/conversations/%s/messages?after=%d&limit=%d", url.PathEscape(conv), after, limit), nil, true, &out)
	return out.Records, err
}

// Gate returns conv's gate.
func (c *Client) Gate(ctx context.Context, conv string) (*api.GateInfo, error) {
	var g api.GateInfo
	err := c.do(ctx, "GET", "/v1/conversations/"+url.PathEscape(conv)+"/gate", nil, true, &g)
	return &g, err
}

// Request returns one request's state.
func (c *Client) Request(ctx context.Context, conv, id string) (*api.RequestState, error) {
	var r api.RequestState
	err := c.do(ctx, "GET", "/v1/conversations/"+url.PathEscape(conv)+"/requests/"+url.PathEscape(id), nil, true, &r)
	return &r, err
}

// Requests lists conv's requests, newest first, optionally in one state.
func (c *Client) Requests(ctx context.Context, conv, state string) ([]*api.RequestState, error) {
	var out api.RequestList
	q := "?limit=1000"
	if state != "" {
		q += "&state=" + url.QueryEscape(state)
	}
	err := c.do(ctx, "GET", "/v1/conversations/"+url.PathEscape(conv)+"/requests"+q, nil, true, &out)
	return out.Requests, err
}

// Catalog returns the server's services and templates.
func (c *Client) Catalog(ctx context.Context) (*api.Catalog, error) {
	var out api.Catalog
	err := c.do(ctx, "GET", "/v1/catalog", nil, false, &out)
	return &out, err
}

// Conversation resolves a conversation named by id, alias (c.Aliases),
// name, or unique id prefix among the caller's conversations, in that
// order. The summary's Name is then how the caller can name it in another
// command: its alias if it has one, its name if no other of the caller's
// shares it, else its id.
func (c *Client) Conversation(ctx context.Context, ref string) (api.Summary, error) {
	all, err := c.Conversations(ctx)
	if err != nil {
		return api.Summary{}, err
	}
	if id, ok := c.Aliases[ref]; ok {
		for _, s := range all {
			if s.ID == id {
				return c.named(s, all), nil
			}
		}
		return api.Summary{}, twokey.Errorf(twokey.EUnknownConversation, "your alias %q names conversation %s, which is not among yours (any more); remove it with 'twokey conv alias --remove %s'", ref, id, ref)
	}
	var byName, byPrefix []api.Summary
	for _, s := range all {
		if s.ID == ref {
			return c.named(s, all), nil
		}
		if s.Name == ref {
			byName = append(byName, s)
		}
		if strings.HasPrefix(s.ID, ref) {
			byPrefix = append(byPrefix, s)
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0], nil
	case len(byName) > 1:
		return api.Summary{}, AmbiguousName(ref, byName)
	case len(byPrefix) == 1 && len(ref) >= 4:
		return c.named(byPrefix[0], all), nil
	case len(byPrefix) > 1:
		return api.Summary{}, twokey.Errorf(twokey.EBadPayload, "%q is a prefix of %d conversation ids; give more of it", ref, len(byPrefix))
	}
	if len(ref) == 36 && strings.Count(ref, "-") == 4 {
		// A full id the caller is not (yet) a member of: let the server say
		// why (not_member, unknown_conversation).
		return api.Summary{ID: ref, Name: ref}, nil
	}
	return api.Summary{}, twokey.Errorf(twokey.EUnknownConversation, "you have no conversation named %q (twokey conv ls lists yours)", ref)
}

// named returns s with Name set to how the caller can name it (see
// Conversation): a name no other of the caller's conversations shares is
// kept; a shared one gives way to the alias (the first, if several), or
// to the id.
func (c *Client) named(s api.Summary, all []api.Summary) api.Summary {
	if !sharesName(s, all) {
		return s
	}
	s.Name = s.ID
	best := ""
	for alias, id := range c.Aliases {
		if id == s.ID && (best == "" || alias < best) {
			best = alias
		}
	}
	if best != "" {
		s.Name = best
	}
	return s
}

func sharesName(s api.Summary, all []api.Summary) bool {
	for _, o := range all {
		if o.ID != s.ID && o.Name == s.Name {
			return true
		}
	}
	return false
}

// AmbiguousName is the error for a name that several of the caller's
// conversations share: it lists them (id, when created, members), oldest
// first, and says how to name one.
func AmbiguousName(name string, same []api.Summary) error {
	same = slices.Clone(same)
	slices.SortFunc(same, func(a, b api.Summary) int { return strings.Compare(a.CreatedAt+a.ID, b.CreatedAt+b.ID) })
	var b strings.Builder
	fmt.Fprintf(&b, "%d of your conversations are named %q: name one by its id (or a unique prefix of it), or give it a name of your own with 'twokey conv alias NAME ID'", len(same), name)
	for _, s := range same {
		names := make([]string, len(s.Members))
		for i, m := range s.Members {
			names[i] = m.Name
		}
		fmt.Fprintf(&b, "\n  %s  created %s  members %s", s.ID, s.CreatedAt, strings.Join(names, ", "))
	}
	return twokey.Errorf(twokey.EBadPayload, "%s", b.String())
}

// ResolveRequest expands a unique prefix of a request id in conv.
func (c *Client) ResolveRequest(ctx context.Context, conv, ref string) (string, error) {
	if len(ref) == 36 {
		return ref, nil
	}
	// Among every open request (the ones a vote or a cancel is for, however
	// old) and the newest of all.
	var hits []string
	for _, state := range []string{"pending", ""} {
		all, err := c.Requests(ctx, conv, state)
		if err != nil {
			return "", err
		}
		for _, r := range all {
			if strings.HasPrefix(r.RequestID, ref) && !slices.Contains(hits, r.RequestID) {
				hits = append(hits, r.RequestID)
			}
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return "", twokey.Errorf(twokey.EUnknownRequest, "no request id starting with %q in this conversation (twokey requests CONV lists them)", ref)
	}
	return "", twokey.Errorf(twokey.EBadPayload, "%q is a prefix of %d request ids; give more of it", ref, len(hits))
}

// Checkpoint fetches conv's signed checkpoint and verifies the gateway's
// signature on it.
func (c *Client) Checkpoint(ctx context.Context, conv string) (*api.Checkpoint, error) {
	var cp api.Checkpoint
	if err := c.do(ctx, "GET", "/v1/conversations/"+url.PathEscape(conv)+"/checkpoint", nil, true, &cp); err != nil {
		return nil, err
	}
	gw, err := c.Gateway(ctx)
	if err != nil {
		return nil, err
	}
	m, err := conversation.Verify(cp.Envelope)
	if err != nil || m.Author != gw.SigningKey || m.Kind != conversation.KindCheckpoint {
		return nil, fmt.Errorf("checkpoint is not signed by the gateway %s", gw.SigningKey)
	}
	var p struct {
		Conversation string `json:"conversation"`
		Seq          uint64 `json:"seq"`
		Chain        string `json:"chain"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || p.Seq != cp.Seq || p.Chain != cp.Chain || p.Conversation != conv {
		return nil, fmt.Errorf("checkpoint's signed payload does not match its fields")
	}
	return &cp, nil
}
