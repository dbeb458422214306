// Package api holds the JSON shapes of the HTTP API's answers, shared by the
// server that writes them and the client that reads them.
package api

import (
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/templates"
)

// Gateway is GET /v1/gateway.
type Gateway struct {
	Version    string `json:"version"`
	SigningKey string `json:"signing_key"`
	BoxKey     string `json:"box_key"`
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
}

// GateInfo is GET /v1/conversations/{id}/gate.
type GateInfo struct {
	Enabled           bool                  `json:"enabled"`
	Signers           []string              `json:"signers"`
	RequiredApprovals int                   `json:"required_approvals"`
	Rules             []gate.Rule           `json:"rules"`
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
}

// Catalog is GET /v1/catalog.
type Catalog struct {
	Services  []*catalog.Service    `json:"services"`
	Templates []*templates.Template `json:"templates"`
}
