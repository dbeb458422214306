package api

import (
	"encoding/json"

	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/templates"
)

// The program endpoints (/v1/programs/...) and proxy mode (/v1/proxy/...):
// docs/protocol.md Part II H.

// ProgramRequest is the body of POST /v1/programs/requests: a template
// and its params, or a service, method and url (with optional headers and
// JSON body).
type ProgramRequest struct {
	RequestID string            `json:"request_id,omitempty"`
	Template  string            `json:"template,omitempty"`
	Params    map[string]string `json:"params,omitempty"`
	Service   string            `json:"service,omitempty"`
	Method    string            `json:"method,omitempty"`
	URL       string            `json:"url,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      json.RawMessage   `json:"body,omitempty"`
	// ExpiresIn is how long the request waits for approvals, e.g. "30m"
	// (default programs.request_ttl, at most 7d).
	ExpiresIn string `json:"expires_in,omitempty"`
}

// ProgramState is what the program endpoints answer: the request's state
// (PROTOCOL 5), its response once executed, where to poll it and where
// its signers see it.
type ProgramState struct {
	*RequestState
	Response *gate.ResponsePayload `json:"response,omitempty"`
	Location string                `json:"location"`
	// Link is the request in the browser app (public_url), for the people
	// who approve; omitted when public_url is unset.
	Link string `json:"link,omitempty"`
}

// ProxyFailure is what proxy mode answers when the call it became gave no
// upstream response: why, and the request as the program endpoints show
// it.
type ProxyFailure struct {
	Error   ErrorDetail  `json:"error"`
	Request ProgramState `json:"request"`
}

// ProgramTemplate is a template a program key may use, as GET
// /v1/programs/templates answers it: the template, its parameters (each
// with its type), and what a request of it would get in the key's
// conversation now: whether the gateway is on, the rule that sets M (nil
// for the default), M and the number of signers.
type ProgramTemplate struct {
	Name               string            `json:"name"`
	Service            string            `json:"service"`
	Method             string            `json:"method"`
	Endpoint           string            `json:"endpoint"`
	Description        string            `json:"description,omitempty"`
	Risk               string            `json:"risk"`
	SuggestedApprovals int               `json:"suggested_approvals"`
	Params             []templates.Param `json:"params"`
	GateEnabled        bool              `json:"gate_enabled"`
	Rule               *gate.Rule        `json:"rule"`
	RequiredApprovals  int               `json:"required_approvals"`
	Signers            int               `json:"signers"`
}

// ProgramTemplates is GET /v1/programs/templates: the templates the key
// may use, by name, and its conversation's name.
type ProgramTemplates struct {
	Conversation string            `json:"conversation"`
	Templates    []ProgramTemplate `json:"templates"`
}

// ProgramRequests is GET /v1/programs/requests: the program's requests,
// newest first.
type ProgramRequests struct {
	Requests []ProgramState `json:"requests"`
}
