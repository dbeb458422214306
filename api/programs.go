package api

import (
	"encoding/json"

	"github.com/twokey/twokey/gate"
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
// (PROTOCOL 5), its response once executed, and where to poll it.
type ProgramState struct {
	*RequestState
	Response *gate.ResponsePayload `json:"response,omitempty"`
	Location string                `json:"location"`
}

// ProxyFailure is what proxy mode answers when the call it became gave no
// upstream response: why, and the request as the program endpoints show
// it.
type ProxyFailure struct {
	Error   ErrorDetail  `json:"error"`
	Request ProgramState `json:"request"`
}
