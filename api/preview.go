package api

import "github.com/twokey/twokey/gate"

// PreviewBody is the body of POST /v1/conversations/{id}/preview: a
// template and its arguments, as 'twokey request CONV TEMPLATE k=v' gives
// them.
type PreviewBody struct {
	Template string            `json:"template"`
	Params   map[string]string `json:"params"`
}

// Preview is the answer of POST /v1/conversations/{id}/preview: the call
// resolved, its M and rule, and the lines 'twokey request --preview'
// prints, all made by gate.NewPreview.
type Preview = gate.Preview

// RulesCheckBody is the body of POST /v1/conversations/{id}/rules/check:
// the whole proposed rule set and, optionally, the whole proposed set of
// groups (PROTOCOL 9; absent: the groups in force).
type RulesCheckBody struct {
	Rules  []gate.Rule          `json:"rules"`
	Groups *map[string][]string `json:"groups,omitempty"`
}

// RulesCheck is the answer of POST /v1/conversations/{id}/rules/check:
// the set normalized, the shadows it would newly add (each said as the
// CLI says it after "note: "), and the refusal setting it would get, or
// nil when it would be accepted.
type RulesCheck struct {
	Rules   []gate.Rule  `json:"rules"`
	Shadows []string     `json:"shadows"`
	Error   *ErrorDetail `json:"error"`
}
