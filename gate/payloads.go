package gate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/twokey/twokey/conversation"
)

// Payloads of the gate.* and member.* kinds (PROTOCOL 4). Each embeds the
// common header (conversation, created_at, gateway).

// EnablePayload is gate.enable.
type EnablePayload struct {
	conversation.Header
	RequiredApprovals int                 `json:"required_approvals"`
	Rules             []Rule              `json:"rules,omitempty"`
	Groups            map[string][]string `json:"groups,omitempty"`
}

// EnabledPayload is gate.enabled.
type EnabledPayload struct {
	conversation.Header
	Signers           []string `json:"signers"`
	RequiredApprovals int      `json:"required_approvals"`
	Rules             []Rule   `json:"rules"`
	BoxKey            string   `json:"box_key"`
	// Groups is the set in force (PROTOCOL 9), {} for none. A log from
	// before groups has no field: read as none.
	Groups map[string][]string `json:"groups"`
}

// SecretPayload is gate.secret.
type SecretPayload struct {
	conversation.Header
	SecretID       string `json:"secret_id"`
	Service        string `json:"service"`
	HeaderName     string `json:"header_name,omitempty"`
	HeaderTemplate string `json:"header_template,omitempty"`
	TTLSeconds     int64  `json:"ttl_seconds,omitempty"`
	Sealed         string `json:"sealed"`
}

// SecretStoredPayload is gate.secret.stored.
type SecretStoredPayload struct {
	conversation.Header
	SecretID       string  `json:"secret_id"`
	Service        string  `json:"service"`
	HeaderName     string  `json:"header_name"`
	HeaderTemplate string  `json:"header_template"`
	ExpiresAt      OptTime `json:"expires_at"` // null when the secret has no TTL
	ProvisionedBy  string  `json:"provisioned_by"`
}

// OptTime is a time that may not be there: the field is always written (the
// contract lists it), as null when empty, and read from null or a string.
type OptTime string

// MarshalJSON writes null for no time.
func (t OptTime) MarshalJSON() ([]byte, error) {
	if t == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(t))
}

// RevokePayload is gate.secret.revoke.
type RevokePayload struct {
	conversation.Header
	SecretID string `json:"secret_id,omitempty"`
	Service  string `json:"service,omitempty"`
}

// RevokedPayload is gate.secret.revoked.
type RevokedPayload struct {
	conversation.Header
	SecretIDs []string `json:"secret_ids"`
	By        string   `json:"by"`
}

// RequestPayload is gate.request.
type RequestPayload struct {
	conversation.Header
	RequestID string            `json:"request_id"`
	Template  string            `json:"template,omitempty"`
	Service   string            `json:"service"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      json.RawMessage   `json:"body,omitempty"`
	ExpiresAt string            `json:"expires_at"`
	// Program and Params are this implementation's additions: a request the
	// gateway writes for a program key names the program, and a request
	// made from a template may list the arguments it was filled with.
	Program string            `json:"program,omitempty"`
	Params  map[string]string `json:"params,omitempty"`
	// Reason is why the submitter asks (PROTOCOL 9): 1 to 1,000 code
	// points, required by a rule with reason_required.
	Reason string `json:"reason,omitempty"`
}

// VotePayload is gate.approve and gate.reject.
type VotePayload struct {
	conversation.Header
	RequestID     string `json:"request_id"`
	RequestDigest string `json:"request_digest"`
	Reason        string `json:"reason,omitempty"`
}

// CancelPayload is gate.cancel.
type CancelPayload struct {
	conversation.Header
	RequestID string `json:"request_id"`
}

// Decision is what the gateway decided a request under, signed in every
// record that closes it (this implementation's addition): M as frozen at
// submission, the rule that set it (null for the conversation's default),
// the endpoint it matched the rules against (the URL's path below the
// service's base URL) and, when the request names a template, that
// template's endpoint pattern. An auditor re-derives M from the rules and
// checks the endpoint against the URL and the pattern against the catalog,
// so a gateway that lowered M or split the URL dishonestly has signed the
// lie.
type Decision struct {
	RequiredApprovals int    `json:"required_approvals"`
	Rule              *Rule  `json:"rule"`
	Endpoint          string `json:"endpoint"`
	Pattern           string `json:"pattern,omitempty"`
}

// DecisionOf returns r's decision facts.
func DecisionOf(r *Request) Decision {
	d := Decision{RequiredApprovals: r.Required, Endpoint: r.Endpoint, Pattern: r.Pattern}
	if r.Rule != nil {
		rule := *r.Rule
		d.Rule = &rule
	}
	return d
}

// ExecutedPayload is gate.executed.
type ExecutedPayload struct {
	conversation.Header
	RequestID  string   `json:"request_id"`
	Status     int      `json:"status"`
	DurationMS int64    `json:"duration_ms"`
	Approvers  []string `json:"approvers"`
	// Assignment is where a rule has require (PROTOCOL 9): each key that
	// filled a slot, to its group.
	Assignment map[string]string `json:"assignment,omitempty"`
	Decision
}

// ApprovedPayload is gate.approved (PROTOCOL 9): a request under a rule
// with a cool-off met its requirement; it executes at executable_at
// unless vetoed, cancelled or voided by a membership change first.
type ApprovedPayload struct {
	conversation.Header
	RequestID    string            `json:"request_id"`
	Approvers    []string          `json:"approvers"`
	ExecutableAt string            `json:"executable_at"`
	Assignment   map[string]string `json:"assignment,omitempty"`
	Decision
}

// ResponsePayload is gate.response.
type ResponsePayload struct {
	conversation.Header
	RequestID   string            `json:"request_id"`
	Status      int               `json:"status"`
	ContentType string            `json:"content_type"`
	Headers     map[string]string `json:"headers"`
	Body        string            `json:"body"`
	// BodyEncoding is BodyBase64 for a body that is not UTF-8 (Body is
	// then its standard base64); empty (or BodyUTF8) for text.
	BodyEncoding string `json:"body_encoding,omitempty"`
	Truncated    bool   `json:"truncated"`
	BodyDigest   string `json:"body_digest"`
	Redactions   int    `json:"redactions"`
}

// The values of body_encoding (PROTOCOL 5).
const (
	BodyUTF8   = "utf-8"
	BodyBase64 = "base64"
)

// SetBody sets the body fields from b, the whole (redacted) body the
// upstream answered (PROTOCOL 5): BodyDigest is the digest of all of b.
// A b that is valid UTF-8 is given as text, its longest prefix of at most
// limit bytes that ends at a character boundary; any other b as the
// standard base64 of its first limit bytes, with BodyEncoding BodyBase64.
// Truncated says whether b is longer than limit. Text keeps body_encoding
// unset, as logs before it had none.
func (p *ResponsePayload) SetBody(b []byte, limit int) {
	p.BodyDigest = conversation.Digest(b)
	p.Truncated = len(b) > limit
	if utf8.Valid(b) {
		if p.Truncated {
			cut := limit
			for cut > 0 && !utf8.RuneStart(b[cut]) {
				cut--
			}
			b = b[:cut]
		}
		p.Body, p.BodyEncoding = string(b), ""
		return
	}
	p.Body, p.BodyEncoding = base64.StdEncoding.EncodeToString(b[:min(len(b), limit)]), BodyBase64
}

// BodyBytes returns the body's bytes as the upstream sent them (after
// redaction, and cut at 64 KiB when Truncated): Body itself for text, its
// decoding for base64. An unknown encoding, or base64 that is not standard
// and padded, is an error.
func (p *ResponsePayload) BodyBytes() ([]byte, error) {
	switch p.BodyEncoding {
	case "", BodyUTF8:
		return []byte(p.Body), nil
	case BodyBase64:
		b, err := base64.StdEncoding.Strict().DecodeString(p.Body)
		if err != nil || strings.ContainsAny(p.Body, "\r\n") {
			return nil, fmt.Errorf("body_encoding is base64, but the body is not standard padded base64")
		}
		return b, nil
	}
	enc := p.BodyEncoding
	if len(enc) > 32 {
		enc = enc[:32] + "..."
	}
	return nil, fmt.Errorf("body_encoding %q is neither %q nor %q", enc, BodyUTF8, BodyBase64)
}

// Binary reports whether the body is given as base64.
func (p *ResponsePayload) Binary() bool { return p.BodyEncoding == BodyBase64 }

// ClosedPayload is gate.failed, gate.expired, gate.rejected and gate.cancelled.
type ClosedPayload struct {
	conversation.Header
	RequestID string `json:"request_id"`
	Reason    string `json:"reason"`
	// Detail says more than the reason, for a person (e.g. which secret
	// expired when, for no_secret). Never a secret.
	Detail string `json:"detail,omitempty"`
	Decision
}

// ProposePayload is member.propose.
type ProposePayload struct {
	conversation.Header
	ProposalID        string                `json:"proposal_id"`
	Add               []conversation.Member `json:"add,omitempty"`
	Remove            []string              `json:"remove,omitempty"`
	RequiredApprovals int                   `json:"required_approvals,omitempty"`
	Rules             *[]Rule               `json:"rules,omitempty"`
	// Groups is the whole new set of groups (PROTOCOL 9); nil leaves them.
	Groups *map[string][]string `json:"groups,omitempty"`
}

// MemberApprovePayload is member.approve.
type MemberApprovePayload struct {
	conversation.Header
	ProposalID     string `json:"proposal_id"`
	ProposalDigest string `json:"proposal_digest"`
}

// ChangedPayload is member.changed.
type ChangedPayload struct {
	conversation.Header
	ProposalID        string                `json:"proposal_id"`
	Signers           []string              `json:"signers"`
	Members           []conversation.Member `json:"members"`
	RequiredApprovals int                   `json:"required_approvals"`
	Rules             []Rule                `json:"rules"`
	Groups            map[string][]string   `json:"groups"`
}

// Reasons a request closes without executing.
const (
	ReasonNoSecret          = "no_secret"
	ReasonInterrupted       = "interrupted"
	ReasonTimeout           = "timeout"
	ReasonConnection        = "connection_refused"
	ReasonUpstreamError     = "upstream_error"
	ReasonMembershipChanged = "membership_changed"
	ReasonExpired           = "expired"
	ReasonRejected          = "rejected"
	ReasonCancelled         = "cancelled_by_submitter"
	ReasonVetoed            = "vetoed"
	ReasonStorage           = "storage_error"
)
