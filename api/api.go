// Package api holds every JSON shape of the HTTP API: the bodies the
// server answers with and the ones it accepts, shared by the server that
// writes (or reads) them and the client that reads (or writes) them. The
// protocol's signed payloads are not here: they live with their kinds
// (conversation, gate, engine).
package api

import (
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/templates"
)

// Gateway is GET /v1/gateway. (Its fields are in the order the server has
// always written them.)
type Gateway struct {
	BoxKey     string `json:"box_key"`
	SigningKey string `json:"signing_key"`
	Version    string `json:"version"`
}

// Health is GET /healthz.
type Health struct {
	Status string `json:"status"`
	// On a shared store (docs/ha.md): this node's name, whether it is
	// the executor, and why it is unavailable (status "unavailable",
	// answered 503) when it cannot reach the store.
	Node      string `json:"node,omitempty"`
	Executing *bool  `json:"executing,omitempty"`
	Error     string `json:"error,omitempty"`
}

// ClusterStatus is GET /v0/management/cluster: the shared store as this
// node sees it (docs/ha.md, Status).
type ClusterStatus struct {
	Store     string            `json:"store"` // bolt or etcd
	Node      string            `json:"node,omitempty"`
	Executing bool              `json:"executing"`
	Executor  string            `json:"executor,omitempty"`
	LagMS     int64             `json:"lag_ms"`
	Endpoints []ClusterEndpoint `json:"endpoints,omitempty"`
	Nodes     []ClusterNode     `json:"nodes,omitempty"`
}

// ClusterEndpoint is one etcd endpoint's health.
type ClusterEndpoint struct {
	Endpoint string `json:"endpoint"`
	Healthy  bool   `json:"healthy"`
	Leader   bool   `json:"leader,omitempty"`
	Revision int64  `json:"revision,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ClusterNode is one twokey node as it last reported itself.
type ClusterNode struct {
	Node     string `json:"node"`
	LagMS    int64  `json:"lag_ms"`
	Reported string `json:"reported"`
}

// Session is POST /v1/sessions: a bearer token and when it expires.
// (Its fields are in the order the server has always written them.)
type Session struct {
	ExpiresAt string `json:"expires_at"`
	Token     string `json:"token"`
}

// ErrorBody is every refusal's body (PROTOCOL 7).
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a refusal: its code and the words a user reads.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ConversationList is GET /v1/conversations.
type ConversationList struct {
	Conversations []Summary `json:"conversations"`
}

// RecordPage is GET /v1/conversations/{id}/messages: records after a seq.
type RecordPage struct {
	Records []conversation.Record `json:"records"`
}

// RequestList is GET /v1/conversations/{id}/requests, newest first.
type RequestList struct {
	Requests []*RequestState `json:"requests"`
}

// Summary describes a conversation to one of its members.
type Summary struct {
	ID          string                `json:"id"`
	Name        string                `json:"name"`
	Admin       string                `json:"admin"`
	Members     []conversation.Member `json:"members"`
	Seq         uint64                `json:"seq"`
	Chain       string                `json:"chain"`
	CreatedAt   string                `json:"created_at"`
	GateEnabled bool                  `json:"gate_enabled"`
	Pending     int                   `json:"pending_requests"`
}

// SecretInfo is a secret's metadata, never its value.
type SecretInfo struct {
	SecretID       string `json:"secret_id"`
	Service        string `json:"service"`
	HeaderName     string `json:"header_name"`
	HeaderTemplate string `json:"header_template"`
	CreatedAt      string `json:"created_at"`
	ExpiresAt      string `json:"expires_at,omitempty"`
	ProvisionedBy  string `json:"provisioned_by"`
	Live           bool   `json:"live"`
	// InUse marks the one secret of its service that a call made now
	// gets: the newest live one. Another live one of the service is
	// superseded (docs/protocol.md, "Secrets").
	InUse bool `json:"in_use"`
}

// GateInfo is GET /v1/conversations/{id}/gate.
type GateInfo struct {
	Enabled           bool                  `json:"enabled"`
	Signers           []string              `json:"signers"`
	RequiredApprovals int                   `json:"required_approvals"`
	Rules             []gate.Rule           `json:"rules"`
	Groups            map[string][]string   `json:"groups"` // PROTOCOL 9: {} for none
	Secrets           []SecretInfo          `json:"secrets"`
	Gateway           string                `json:"gateway"`
	BoxKey            string                `json:"box_key"`
	Members           []conversation.Member `json:"members"`
	Admin             string                `json:"admin"`
	Proposals         []*gate.Proposal      `json:"proposals"`
}

// RequestState is GET /v1/conversations/{id}/requests/{request_id}.
type RequestState struct {
	RequestID         string              `json:"request_id"`
	State             string              `json:"state"`
	RequiredApprovals int                 `json:"required_approvals"`
	Approvals         []string            `json:"approvals"`
	Rejections        []string            `json:"rejections"`
	RequestDigest     string              `json:"request_digest"`
	ExpiresAt         string              `json:"expires_at"`
	Result            *gate.Result        `json:"result"`
	Submitter         string              `json:"submitter"`
	Program           string              `json:"program,omitempty"`
	Rule              *gate.Rule          `json:"rule"`
	Request           gate.RequestPayload `json:"request"`
	Seq               uint64              `json:"seq"`
	// Policy is what the request needs (PROTOCOL 9), with executable_at
	// while it is approved.
	Policy StatePolicy `json:"policy"`
	// Assignment is, once the requirement is met under a rule with
	// require, the slot each key filled; Vetoes the rejections recorded
	// during the cool-off.
	Assignment map[string]string `json:"assignment,omitempty"`
	Vetoes     []string          `json:"vetoes,omitempty"`
}

// StatePolicy is the policy in a request's state object (PROTOCOL 9): the
// winning rule's fields with the defaults filled in, and executable_at
// while the request is approved.
type StatePolicy struct {
	gate.Policy
	ExecutableAt string `json:"executable_at,omitempty"`
}

// Catalog is GET /v1/catalog.
type Catalog struct {
	Services  []*catalog.Service    `json:"services"`
	Templates []*templates.Template `json:"templates"`
}

// Checkpoint is GET /v1/conversations/{id}/checkpoint: the latest seq and
// chain, signed by the gateway. A client that keeps one can later prove the
// server rewrote nothing up to it (every later chain value depends on it).
type Checkpoint struct {
	Seq      uint64                `json:"seq"`
	Chain    string                `json:"chain"`
	Envelope conversation.Envelope `json:"envelope"`
}

// PolicyOf is r's policy as the state object gives it.
func PolicyOf(r *gate.Request) StatePolicy {
	p := StatePolicy{Policy: r.Needs()}
	if p.Require == nil {
		p.Require = []gate.Require{}
	}
	if r.State == gate.StateApproved && !r.ExecutableAt.IsZero() {
		p.ExecutableAt = conversation.FormatTime(r.ExecutableAt)
	}
	return p
}
