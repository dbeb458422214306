package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// EnableGate turns the gateway on in conv with default M and rules.
func (c *Client) EnableGate(ctx context.Context, conv string, m int, rules []gate.Rule) (conversation.Record, error) {
	h, err := c.Header(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	return c.Post(ctx, conv, conversation.KindGateEnable, gate.EnablePayload{Header: h, RequiredApprovals: m, Rules: rules})
}

// AddMember adds a member (admin only, before the gateway is enabled).
func (c *Client) AddMember(ctx context.Context, conv string, m conversation.Member) (conversation.Record, error) {
	h, err := c.Header(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	return c.Post(ctx, conv, conversation.KindMemberAdd, conversation.MemberPayload{Header: h, Key: m.Key, Name: m.Name})
}

// RemoveMember removes a member (admin only, before the gateway is enabled).
func (c *Client) RemoveMember(ctx context.Context, conv, key string) (conversation.Record, error) {
	h, err := c.Header(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	return c.Post(ctx, conv, conversation.KindMemberRemove, conversation.MemberPayload{Header: h, Key: key})
}

// Propose posts a member.propose; it counts as the proposer's approval.
func (c *Client) Propose(ctx context.Context, conv string, p gate.ProposePayload) (conversation.Record, error) {
	h, err := c.Header(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	p.Header = h
	if p.ProposalID == "" {
		p.ProposalID = NewID()
	}
	return c.Post(ctx, conv, conversation.KindMemberPropose, p)
}

// ApproveProposal approves an open proposal, binding to the digest of the
// proposal's payload as signed by its proposer (read from the log and
// verified here, not taken from the server's word).
func (c *Client) ApproveProposal(ctx context.Context, conv, proposalID string) (conversation.Record, error) {
	g, err := c.Gate(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	var prop *gate.Proposal
	for _, p := range g.Proposals {
		if p.ID == proposalID || (len(proposalID) >= 4 && len(p.ID) > len(proposalID) && p.ID[:len(proposalID)] == proposalID) {
			prop = p
		}
	}
	if prop == nil {
		return conversation.Record{}, twokey.Errorf(twokey.EUnknownRequest, "no open proposal %q in this conversation ('twokey gate show' lists them)", proposalID)
	}
	m, err := c.VerifiedRecord(ctx, conv, prop.Seq, conversation.KindMemberPropose)
	if err != nil {
		return conversation.Record{}, err
	}
	h, err := c.Header(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	return c.Post(ctx, conv, conversation.KindMemberApprove, gate.MemberApprovePayload{Header: h, ProposalID: prop.ID, ProposalDigest: m.PayloadDigest()})
}

// VerifiedRecord fetches record seq of conv, checks its signature and
// kind, and returns the verified message.
func (c *Client) VerifiedRecord(ctx context.Context, conv string, seq uint64, kind string) (*conversation.Message, error) {
	if seq == 0 {
		return nil, fmt.Errorf("no record number given")
	}
	recs, err := c.Records(ctx, conv, seq-1, 1)
	if err != nil {
		return nil, err
	}
	if len(recs) != 1 || recs[0].Seq != seq {
		return nil, fmt.Errorf("record %d of the conversation is missing", seq)
	}
	m, err := conversation.Verify(recs[0].Envelope)
	if err != nil {
		return nil, fmt.Errorf("record %d does not verify: %w", seq, err)
	}
	if m.Kind != kind {
		return nil, fmt.Errorf("record %d is a %s, not a %s", seq, m.Kind, kind)
	}
	return m, nil
}

// TTLSeconds turns a secret's time to live into the protocol's
// ttl_seconds: 0 means no expiry; a part of a second rounds up (1.9 s is
// 2 s, never a shorter life than asked). A TTL that is negative, under a
// second, or over 10 years is a bad_payload error saying so.
func TTLSeconds(ttl time.Duration) (int64, error) {
	switch {
	case ttl == 0:
		return 0, nil
	case ttl < 0:
		return 0, twokey.Errorf(twokey.EBadPayload, "ttl %s is negative; give a positive duration such as 720h, or none for no expiry", ttl)
	case ttl < time.Second:
		return 0, twokey.Errorf(twokey.EBadPayload, "ttl %s is under a second; the gateway keeps TTLs in whole seconds: give at least 1s (e.g. 30s, 720h), or none for no expiry", ttl)
	case ttl > twokey.MaxSecretTTLSeconds*time.Second:
		return 0, twokey.Errorf(twokey.EBadPayload, "ttl %s is over 10 years, the longest a secret may live; give less, or none for no expiry", ttl)
	}
	return int64((ttl + time.Second - 1) / time.Second), nil
}

// AddSecret seals value to the gateway's box key on this machine and posts
// it. The value never leaves the process unsealed. ttl is rounded up to
// whole seconds (see TTLSeconds); 0 means no expiry.
func (c *Client) AddSecret(ctx context.Context, conv, service, header, template string, ttl time.Duration, value []byte) (conversation.Record, error) {
	ttlSeconds, err := TTLSeconds(ttl)
	if err != nil {
		return conversation.Record{}, err
	}
	g, err := c.Gateway(ctx)
	if err != nil {
		return conversation.Record{}, err
	}
	raw, err := base64.RawURLEncoding.DecodeString(g.BoxKey)
	if err != nil || len(raw) != 32 {
		return conversation.Record{}, fmt.Errorf("the server's box key is malformed")
	}
	var pub [32]byte
	copy(pub[:], raw)
	sealed, err := box.SealAnonymous(nil, value, &pub, rand.Reader)
	if err != nil {
		return conversation.Record{}, err
	}
	h, err := c.Header(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	return c.Post(ctx, conv, conversation.KindGateSecret, gate.SecretPayload{Header: h, SecretID: NewID(), Service: service,
		HeaderName: header, HeaderTemplate: template, TTLSeconds: ttlSeconds,
		Sealed: base64.StdEncoding.EncodeToString(sealed)})
}

// RevokeSecret revokes by secret id or by service.
func (c *Client) RevokeSecret(ctx context.Context, conv, secretID, service string) (conversation.Record, error) {
	h, err := c.Header(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	return c.Post(ctx, conv, conversation.KindGateSecretRevoke, gate.RevokePayload{Header: h, SecretID: secretID, Service: service})
}

// Submit posts a gate.request; it counts as the submitter's approval.
func (c *Client) Submit(ctx context.Context, conv string, p gate.RequestPayload) (conversation.Record, error) {
	h, err := c.Header(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	p.Header = h
	if p.RequestID == "" {
		p.RequestID = NewID()
	}
	return c.Post(ctx, conv, conversation.KindGateRequest, p)
}

// Vote approves (or rejects) request id. The digest is computed here from
// the submitter's signed request as it stands in the log, so the vote can
// only ever bind to the request this client has seen.
func (c *Client) Vote(ctx context.Context, conv, id string, approve bool, reason string) (conversation.Record, *gate.RequestPayload, error) {
	st, err := c.Request(ctx, conv, id)
	if err != nil {
		return conversation.Record{}, nil, err
	}
	// Pending takes votes; approved too, until its cool-off ends (a
	// rejection then is a veto, PROTOCOL 9).
	if st.State != gate.StatePending && st.State != gate.StateApproved {
		return conversation.Record{}, nil, twokey.Errorf(twokey.ERequestClosed, "request %s is %s; it takes no more votes", id, st.State)
	}
	p, digest, err := c.RequestPayload(ctx, conv, st)
	if err != nil {
		return conversation.Record{}, nil, err
	}
	rec, err := c.VoteDigest(ctx, conv, st.RequestID, digest, approve, reason)
	return rec, p, err
}

// RequestPayload reads and verifies a request's signed payload from the
// log and returns it with its digest.
func (c *Client) RequestPayload(ctx context.Context, conv string, st *api.RequestState) (*gate.RequestPayload, string, error) {
	m, err := c.VerifiedRecord(ctx, conv, st.Seq, conversation.KindGateRequest)
	if err != nil {
		return nil, "", err
	}
	var p gate.RequestPayload
	if err := json.Unmarshal(m.Payload, &p); err != nil || p.RequestID != st.RequestID {
		return nil, "", fmt.Errorf("record %d is not request %s", st.Seq, st.RequestID)
	}
	return &p, m.PayloadDigest(), nil
}

// VoteDigest posts an approval or rejection bound to digest.
func (c *Client) VoteDigest(ctx context.Context, conv, id, digest string, approve bool, reason string) (conversation.Record, error) {
	h, err := c.Header(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	kind := conversation.KindGateApprove
	if !approve {
		kind = conversation.KindGateReject
	}
	return c.Post(ctx, conv, kind, gate.VotePayload{Header: h, RequestID: id, RequestDigest: digest, Reason: reason})
}

// Cancel withdraws the caller's own pending request.
func (c *Client) Cancel(ctx context.Context, conv, id string) (conversation.Record, error) {
	h, err := c.Header(ctx, conv)
	if err != nil {
		return conversation.Record{}, err
	}
	return c.Post(ctx, conv, conversation.KindGateCancel, gate.CancelPayload{Header: h, RequestID: id})
}

// WaitRequest follows conv's log until request id settles, then returns
// its state.
func (c *Client) WaitRequest(ctx context.Context, conv, id string) (*api.RequestState, error) {
	st, err := c.Request(ctx, conv, id)
	if err != nil || gate.Settled(st.State) {
		return st, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = c.Follow(ctx, conv, st.Seq, FollowOptions{}, func(r conversation.Record) error {
		var p struct {
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(r.Body, &p) != nil || p.RequestID != id {
			return nil
		}
		st, err = c.Request(ctx, conv, id)
		if err != nil {
			return err
		}
		if gate.Settled(st.State) {
			return errStop
		}
		return nil
	})
	if err == errStop {
		return st, nil
	}
	return st, err
}

// Preview asks the server what a request from template with params would
// be in conv and what M it would get (POST .../preview): the call, its
// rule, the payload fields ready to sign (Request), and the Lines
// 'twokey request --preview' prints. Nothing is submitted.
func (c *Client) Preview(ctx context.Context, conv, template string, params map[string]string) (*api.Preview, error) {
	body, err := json.Marshal(api.PreviewBody{Template: template, Params: params})
	if err != nil {
		return nil, err
	}
	var out api.Preview
	if err := c.do(ctx, "POST", "/v1/conversations/"+url.PathEscape(conv)+"/preview", body, true, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CheckRules asks the server what proposing rules as conv's whole rule
// set would do (POST .../rules/check): the set normalized, the shadows it
// newly adds, and the refusal it would get (RulesCheck.Error), if any.
func (c *Client) CheckRules(ctx context.Context, conv string, rules []gate.Rule) (*api.RulesCheck, error) {
	return c.CheckPolicies(ctx, conv, rules, nil)
}

// CheckPolicies is CheckRules with the groups the rules would be in force
// with (nil: the groups in force now).
func (c *Client) CheckPolicies(ctx context.Context, conv string, rules []gate.Rule, groups *map[string][]string) (*api.RulesCheck, error) {
	if rules == nil {
		rules = []gate.Rule{}
	}
	body, err := json.Marshal(api.RulesCheckBody{Rules: rules, Groups: groups})
	if err != nil {
		return nil, err
	}
	var out api.RulesCheck
	if err := c.do(ctx, "POST", "/v1/conversations/"+url.PathEscape(conv)+"/rules/check", body, true, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
