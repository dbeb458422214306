package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/templates"
)

// The program endpoints (/v1/programs/...) and proxy mode (/v1/proxy/...):
// docs/protocol.md Part II H.
//
// Policies beyond M-of-N (PROTOCOL 9) show in every answer: a template and
// a preview carry the policy a request of them would get now (policy, and
// policy_text, Policy.Describe's line), a request's state its policy (with
// executable_at during a cool-off) and progress, one line for a person.

// ProgramRequest is the body of POST /v1/programs/requests (and of POST
// /v1/programs/preview): a template and its params, or a service, method
// and url (with optional headers and JSON body).
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
	// Reason is why the program asks, for the signers (PROTOCOL 9): at
	// most 1,000 characters (code points), signed into the gate.request.
	// A request under a rule with reason_required is refused without one
	// (bad_payload, saying so); the template's or preview's policy says
	// whether it is required.
	Reason string `json:"reason,omitempty"`
}

// ProgramState is what the program endpoints answer: the request's state
// (PROTOCOL 5, with its policy: PROTOCOL 9), its response once executed,
// where to poll it and where its signers see it.
type ProgramState struct {
	*RequestState
	Response *gate.ResponsePayload `json:"response,omitempty"`
	Location string                `json:"location"`
	// Link is the request in the browser app (public_url), for the people
	// who approve; omitted when public_url is unset.
	Link string `json:"link,omitempty"`
	// PolicyText is the request's policy in one line (Policy.Describe):
	// "3 approvals, including 1 of finance; reason required; 15 min
	// cool-off, 1 veto".
	PolicyText string `json:"policy_text"`
	// Progress is where the request stands, in one line (Progress):
	// "1 of 2 approvals; expires at ...", "approved: executes at ...
	// unless vetoed (cool-off 15 min)", "rejected (vetoed)".
	Progress string `json:"progress"`
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
// for the default), M and the number of signers, and the whole policy
// (PROTOCOL 9: groups required, whether the submitter counts, whether a
// reason is required, the cool-off and vetoes) with its line of text.
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
	Policy             gate.Policy       `json:"policy"`
	PolicyText         string            `json:"policy_text"`
}

// ProgramPreview is POST /v1/programs/preview: the preview (what the same
// body would submit and the M it would get) and the policy the request
// would get, with its line of text. A request that the policy would
// refuse as it stands (no reason where one is required) is previewed all
// the same; Policy.ReasonRequired says to give one.
type ProgramPreview struct {
	Preview
	Policy     gate.Policy `json:"policy"`
	PolicyText string      `json:"policy_text"`
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

// NewProgramState is st as the program endpoints answer it: with its
// location, link, policy text and progress (no response).
func NewProgramState(st *RequestState, location, link string) ProgramState {
	return ProgramState{RequestState: st, Location: location, Link: link,
		PolicyText: StatePolicyOf(st).Describe(), Progress: Progress(st)}
}

// StatePolicyOf is st's policy; a state from a server before policies has
// none, and gets M with the defaults.
func StatePolicyOf(st *RequestState) gate.Policy {
	if st.Policy.RequiredApprovals == 0 {
		return gate.DefaultPolicy(st.RequiredApprovals)
	}
	return st.Policy.Policy
}

// Progress is where a request stands in one line, for a person or an
// agent: "1 of 2 approvals; expires at 2026-12-07T18:30:00Z", "approved:
// executes at 2026-12-07T18:45:00Z unless vetoed (cool-off 15 min)",
// "executing", "executed: the service answered 200", "rejected
// (vetoed)", "expired with 1 of 2 approvals".
func Progress(st *RequestState) string {
	k, m := len(st.Approvals), st.RequiredApprovals
	why := ""
	if st.Result != nil && st.Result.Reason != "" {
		why = " (" + st.Result.Reason + ")"
	}
	switch st.State {
	case gate.StatePending:
		return fmt.Sprintf("%d of %d approvals; expires at %s", k, m, plainTime(st.ExpiresAt))
	case gate.StateApproved:
		return ApprovedText(st, plainTime(st.Policy.ExecutableAt))
	case gate.StateExecuting:
		return "executing: the gateway is making the call"
	case gate.StateExecuted:
		if st.Result != nil && st.Result.Status != 0 {
			return fmt.Sprintf("executed: the service answered %d", st.Result.Status)
		}
		return "executed"
	case gate.StateExpired:
		return fmt.Sprintf("expired with %d of %d approvals", k, m)
	}
	return st.State + why
}

// ApprovedText is an approved request's progress, at the time at (as
// given): "approved: executes at AT unless vetoed (cool-off 15 min)", and
// the vetoes so far once there are any ("; 1 of 2 vetoes").
func ApprovedText(st *RequestState, at string) string {
	p := StatePolicyOf(st)
	if at == "" {
		at = "the end of its cool-off"
	}
	s := fmt.Sprintf("approved: executes at %s unless vetoed (cool-off %s", at, gate.DelayText(p.DelaySeconds))
	if n := len(st.Vetoes); n > 0 {
		s += fmt.Sprintf("; %d of %d vetoes", n, p.Veto)
	}
	return s + ")"
}

// plainTime is a state's time to the second ("2026-12-07T18:45:00Z"), or
// as it is when it does not parse.
func plainTime(s string) string {
	t, err := conversation.ParseTime(s)
	if err != nil {
		return s
	}
	return t.UTC().Format(time.RFC3339)
}

// ExecutableAt is an approved request's executable_at as a time (zero
// when absent or unreadable).
func ExecutableAt(st *RequestState) time.Time {
	t, err := conversation.ParseTime(st.Policy.ExecutableAt)
	if err != nil {
		return time.Time{}
	}
	return t
}
