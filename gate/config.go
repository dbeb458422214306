package gate

import (
	"slices"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
)

// Config is a conversation's gate: whether it is on, who signs, the default
// M, the rules and the groups of signers they may require (PROTOCOL 9).
type Config struct {
	Enabled           bool                `json:"enabled"`
	Signers           []string            `json:"signers"`
	RequiredApprovals int                 `json:"required_approvals"`
	Rules             []Rule              `json:"rules"`
	Groups            map[string][]string `json:"groups,omitempty"`
}

// GroupSet is the groups as the records write them: never null.
func (c *Config) GroupSet() map[string][]string {
	if c.Groups == nil {
		return map[string][]string{}
	}
	return c.Groups
}

// IsSigner reports whether key signs for this gate.
func (c *Config) IsSigner(key string) bool { return c.Enabled && slices.Contains(c.Signers, key) }

// Clone returns a deep copy.
func (c Config) Clone() Config {
	c.Signers = slices.Clone(c.Signers)
	c.Rules = slices.Clone(c.Rules)
	c.Groups = CloneGroups(c.Groups)
	return c
}

// Enable checks a gate.enable against the members and returns the config.
func Enable(p EnablePayload, members []string) (Config, error) {
	if p.RequiredApprovals < 1 || p.RequiredApprovals > len(members) {
		return Config{}, twokey.Errorf(twokey.EBadPayload, "required_approvals %d must lie between 1 and the %d members who will sign", p.RequiredApprovals, len(members))
	}
	rules := Normalize(p.Rules)
	if err := ValidateRules(rules, len(members)); err != nil {
		return Config{}, err
	}
	if err := CheckGroups(p.Groups, members); err != nil {
		return Config{}, err
	}
	groups := CloneGroups(p.Groups)
	if err := ValidatePolicies(rules, groups, members); err != nil {
		return Config{}, err
	}
	return Config{Enabled: true, Signers: slices.Clone(members), RequiredApprovals: p.RequiredApprovals, Rules: rules, Groups: groups}, nil
}

// Proposal is a pending member.propose and its approvals.
type Proposal struct {
	ID        string         `json:"proposal_id"`
	Proposer  string         `json:"proposer"`
	Payload   ProposePayload `json:"payload"`
	Digest    string         `json:"proposal_digest"`
	Needed    []string       `json:"needed"` // the signers whose approval it needs
	Approvals []string       `json:"approvals"`
	Seq       uint64         `json:"seq"`
}

// Done reports whether every needed signer has approved.
func (p *Proposal) Done() bool {
	for _, k := range p.Needed {
		if !slices.Contains(p.Approvals, k) {
			return false
		}
	}
	return true
}

// Propose checks a member.propose against the gate and the members and
// returns the proposal (with the proposer's approval counted) and the
// state it would lead to.
func Propose(cfg Config, members []conversation.Member, author string, p ProposePayload, digest string) (*Proposal, Config, []conversation.Member, error) {
	if !cfg.IsSigner(author) {
		return nil, cfg, nil, twokey.Errorf(twokey.ENotSigner, "only a signer may propose a membership change")
	}
	if p.ProposalID == "" {
		return nil, cfg, nil, twokey.Errorf(twokey.EBadPayload, "member.propose needs proposal_id")
	}
	if len(p.Add) == 0 && len(p.Remove) == 0 && p.RequiredApprovals == 0 && p.Rules == nil && p.Groups == nil {
		return nil, cfg, nil, twokey.Errorf(twokey.EBadPayload, "member.propose changes nothing: give add, remove, required_approvals, rules or groups")
	}
	newMembers := slices.Clone(members)
	for _, k := range p.Remove {
		if _, err := conversation.ParseKeyID(k); err != nil {
			return nil, cfg, nil, &twokey.Error{Code: twokey.EBadPayload, Message: "remove: " + twokey.ErrorMessage(err)}
		}
		i := slices.IndexFunc(newMembers, func(m conversation.Member) bool { return m.Key == k })
		if i < 0 {
			return nil, cfg, nil, twokey.Errorf(twokey.EBadPayload, "remove: %s is not a member", conversation.ShortKey(k))
		}
		newMembers = slices.Delete(newMembers, i, i+1)
	}
	if err := conversation.ValidateMembers(p.Add); err != nil {
		return nil, cfg, nil, err
	}
	for _, m := range p.Add {
		if slices.ContainsFunc(newMembers, func(x conversation.Member) bool { return x.Key == m.Key }) {
			return nil, cfg, nil, twokey.Errorf(twokey.EBadPayload, "add: %s is already a member", conversation.ShortKey(m.Key))
		}
		newMembers = append(newMembers, m)
	}
	if len(newMembers) > twokey.MaxMembers {
		return nil, cfg, nil, twokey.Errorf(twokey.ETooLarge, "a conversation holds at most %d members", twokey.MaxMembers)
	}
	next := cfg.proposed(p)
	if len(next.Signers) == 0 {
		return nil, cfg, nil, twokey.Errorf(twokey.EBadPayload, "the proposal would leave no signers")
	}
	if next.RequiredApprovals < 1 || next.RequiredApprovals > len(next.Signers) {
		return nil, cfg, nil, twokey.Errorf(twokey.EBadPayload, "the proposal would leave required_approvals %d with %d signers; M must lie between 1 and the number of signers", next.RequiredApprovals, len(next.Signers))
	}
	if err := ValidateRules(next.Rules, len(next.Signers)); err != nil {
		return nil, cfg, nil, err
	}
	if p.Groups != nil {
		if err := CheckGroups(*p.Groups, next.Signers); err != nil {
			return nil, cfg, nil, err
		}
	}
	if err := ValidatePolicies(next.Rules, next.Groups, next.Signers); err != nil {
		return nil, cfg, nil, twokey.Errorf(twokey.EBadPayload, "the proposal would leave a rule no set of signers can meet: %s", twokey.ErrorMessage(err))
	}
	// Adding, or changing M, rules or groups, needs every current signer;
	// removing alone needs every signer not being removed.
	needed := slices.Clone(cfg.Signers)
	if len(p.Add) == 0 && p.RequiredApprovals == 0 && p.Rules == nil && p.Groups == nil {
		needed = slices.DeleteFunc(needed, func(s string) bool { return slices.Contains(p.Remove, s) })
	}
	prop := &Proposal{ID: p.ProposalID, Proposer: author, Payload: p, Digest: digest, Needed: needed}
	if slices.Contains(needed, author) {
		prop.Approvals = []string{author}
	}
	return prop, next, newMembers, nil
}
