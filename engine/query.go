package engine

import (
	"encoding/json"
	"slices"
	"sort"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
)

// Conversations lists the conversations key is a member of, by name.
func (e *Engine) Conversations(key string) []api.Summary {
	e.mu.RLock()
	all := make([]*conv, 0, len(e.convs))
	for _, c := range e.convs {
		all = append(all, c)
	}
	e.mu.RUnlock()
	out := []api.Summary{}
	for _, c := range all {
		c.mu.Lock()
		if c.st.Seq > 0 && c.st.IsMember(key) {
			out = append(out, c.summary())
		}
		c.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (c *conv) summary() api.Summary {
	n := len(c.lazy) // pending, not decoded yet
	for _, r := range c.requests {
		if r.State == gate.StatePending {
			n++
		}
	}
	return api.Summary{ID: c.st.ID, Name: c.st.Name, Admin: c.st.Admin, Members: slices.Clone(c.st.Members),
		Seq: c.st.Seq, Chain: c.st.Chain.String(), CreatedAt: c.st.CreatedAt, GateEnabled: c.gate.Enabled, Pending: n}
}

// member returns the conversation if key is one of its members.
func (e *Engine) member(convID, key string) (*conv, error) {
	c, err := e.lookup(convID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.Seq == 0 {
		return nil, twokey.Errorf(twokey.EUnknownConversation, "no conversation %q on this server", twokey.Clip(convID))
	}
	if !c.st.IsMember(key) {
		// Added on another node a moment ago? Read what this one missed.
		if moved, _ := e.sync(c); !moved || !c.st.IsMember(key) {
			return nil, twokey.Errorf(twokey.ENotMember, "you are not a member of conversation %s", convID)
		}
	}
	return c, nil
}

// CheckMember returns nil if key may read convID.
func (e *Engine) CheckMember(convID, key string) error {
	_, err := e.member(convID, key)
	return err
}

// Records returns up to limit records of convID after seq, for a member.
func (e *Engine) Records(convID, key string, after uint64, limit int) ([]conversation.Record, error) {
	if _, err := e.member(convID, key); err != nil {
		return nil, err
	}
	return e.ReadRecords(convID, after, limit)
}

// ReadRecords reads records without a membership check (the caller did it).
func (e *Engine) ReadRecords(convID string, after uint64, limit int) ([]conversation.Record, error) {
	if limit <= 0 {
		limit = twokey.DefaultPageRecords
	}
	if limit > twokey.MaxPageRecords {
		return nil, twokey.Errorf(twokey.ETooLarge, "limit %d is over the %d records a page holds", limit, twokey.MaxPageRecords)
	}
	if recs, ok := e.hub.Since(convID, after, limit); ok {
		return recs, nil
	}
	return e.st.Records(convID, after, limit)
}

// Gate describes convID's gate to a member.
func (e *Engine) Gate(convID, key string) (*api.GateInfo, error) {
	c, err := e.member(convID, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := e.clock.Now()
	g := &api.GateInfo{Enabled: c.gate.Enabled, Signers: slices.Clone(c.gate.Signers), RequiredApprovals: c.gate.RequiredApprovals,
		Rules: slices.Clone(c.gate.Rules), Groups: gate.CloneGroups(c.gate.GroupSet()), Secrets: []api.SecretInfo{}, Gateway: e.gwKey, BoxKey: e.box,
		Members: slices.Clone(c.st.Members), Admin: c.st.Admin, Proposals: []*gate.Proposal{}}
	if g.Signers == nil {
		g.Signers = []string{}
	}
	if g.Rules == nil {
		g.Rules = []gate.Rule{}
	}
	for _, s := range c.secrets {
		// The one execute would inject: the newest live one, of a service
		// that takes a key.
		inUse, _ := c.liveSecret(s.Service, now)
		if svc, ok := e.cfg.Catalog.Service(s.Service); !ok || !svc.TakesKey() {
			inUse = nil
		}
		si := api.SecretInfo{SecretID: s.ID, Service: s.Service, HeaderName: s.HeaderName, HeaderTemplate: s.HeaderTemplate,
			CreatedAt: conversation.FormatTime(s.CreatedAt), ProvisionedBy: s.ProvisionedBy, Live: s.Live(now), InUse: inUse == s}
		if !s.ExpiresAt.IsZero() {
			si.ExpiresAt = conversation.FormatTime(s.ExpiresAt)
		}
		g.Secrets = append(g.Secrets, si)
	}
	sort.Slice(g.Secrets, func(i, j int) bool { return g.Secrets[i].CreatedAt < g.Secrets[j].CreatedAt })
	for _, p := range c.proposals {
		g.Proposals = append(g.Proposals, p)
	}
	sort.Slice(g.Proposals, func(i, j int) bool { return g.Proposals[i].Seq < g.Proposals[j].Seq })
	return g, nil
}

func stateOf(r *gate.Request) *api.RequestState {
	return &api.RequestState{RequestID: r.ID, State: r.State, RequiredApprovals: r.Required,
		Approvals: nonNil(r.Approvals), Rejections: nonNil(r.Rejections), RequestDigest: r.Digest,
		ExpiresAt: conversation.FormatTime(r.ExpiresAt), Result: r.Result, Submitter: r.Submitter,
		Program: r.Program, Rule: r.Rule, Request: r.Payload, Seq: r.SubmittedSeq,
		Policy: api.PolicyOf(r), Assignment: r.Assignment, Vetoes: r.Vetoes}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func decodeRequest(raw []byte) (*gate.Request, error) {
	var r gate.Request
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Request returns a request's state to a member, by its full id (clients
// expand a prefix themselves).
func (e *Engine) Request(convID, key, id string) (*api.RequestState, error) {
	c, err := e.member(convID, key)
	if err != nil {
		return nil, err
	}
	return e.requestState(c, convID, id)
}

// requestState returns the state of request id of conversation c (convID),
// open or closed.
func (e *Engine) requestState(c *conv, convID, id string) (*api.RequestState, error) {
	c.mu.Lock()
	r, err := e.req(c, id)
	if r == nil && err == nil && e.cl != nil {
		// Submitted or moved on another node a moment ago: the closed
		// ones are read from the store below, an open one is read now.
		if moved, _ := e.sync(c); moved {
			r, err = e.req(c, id)
		}
	}
	if r != nil {
		r = r.Clone()
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if r == nil {
		raw, err := e.st.Get(store.Requests, id)
		if err != nil {
			return nil, err
		}
		if raw != nil {
			if r, err = decodeRequest(raw); err != nil {
				return nil, err
			}
		}
	}
	if r == nil || r.Conversation != convID {
		return nil, twokey.Errorf(twokey.EUnknownRequest, "no request %s in this conversation", twokey.Clip(id))
	}
	return stateOf(r), nil
}

// Requests lists a conversation's requests, newest first, optionally only
// those in state, at most limit (all when limit <= 0). It walks the
// conversation's own index, never the whole server's requests.
func (e *Engine) Requests(convID, key, state string, limit int) ([]*api.RequestState, error) {
	c, err := e.member(convID, key)
	if err != nil {
		return nil, err
	}
	return e.requests(c, convID, state, limit, func(*gate.Request) bool { return true })
}

// requests is Requests of c (convID), of the requests keep keeps.
func (e *Engine) requests(c *conv, convID, state string, limit int, keep func(*gate.Request) bool) ([]*api.RequestState, error) {
	out := []*api.RequestState{}
	if state == gate.StatePending || state == gate.StateExecuting {
		c.mu.Lock()
		if err := e.reqAll(c); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		for _, r := range c.requests {
			if r.State == state && keep(r) {
				out = append(out, stateOf(r))
			}
		}
		c.mu.Unlock()
		sort.Slice(out, func(i, j int) bool { return out[i].Seq > out[j].Seq })
		if limit > 0 && len(out) > limit {
			out = out[:limit]
		}
		return out, nil
	}
	var ids []string
	err := e.st.Reverse(store.ConvReqs, convID+"/", func(_ string, v []byte) bool {
		ids = append(ids, string(v))
		return true
	})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		c.mu.Lock()
		r, err := e.req(c, id)
		if r != nil {
			r = r.Clone()
		}
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if r == nil {
			raw, err := e.st.Get(store.Requests, id)
			if err != nil || raw == nil {
				continue
			}
			if r, err = decodeRequest(raw); err != nil {
				return nil, err
			}
		}
		if (state == "" || r.State == state) && keep(r) {
			out = append(out, stateOf(r))
			if limit > 0 && len(out) >= limit {
				break
			}
		}
	}
	return out, nil
}
