package server

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
)

// decodeHelperBody reads one JSON object of known fields: the body of an
// endpoint that answers a question and writes nothing (preview,
// rules/check). fields names them for the refusal.
func decodeHelperBody(w http.ResponseWriter, r *http.Request, v any, what, fields string) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return twokey.Errorf(twokey.EBadPayload, "the body is not %s: %s (send one JSON object: %s)", what, twokey.ClipAt(err.Error(), 200), fields)
	}
	if dec.More() {
		return twokey.Errorf(twokey.EBadPayload, "the body holds more than one JSON value; send one object: %s", fields)
	}
	return nil
}

// preview answers POST /v1/conversations/{id}/preview: what a request
// from a template would be and the M it would get (engine.Preview).
func (a *API) preview(w http.ResponseWriter, r *http.Request, key string) {
	var in api.PreviewBody
	if err := decodeHelperBody(w, r, &in, "a preview request", `{"template": NAME, "params": {"name": "value", ...}}`); err != nil {
		writeError(w, a.log, err)
		return
	}
	p, err := a.eng.Preview(r.PathValue("id"), key, in.Template, in.Params)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// checkRules answers POST /v1/conversations/{id}/rules/check: what a
// proposed rule set would do (engine.CheckRules).
func (a *API) checkRules(w http.ResponseWriter, r *http.Request, key string) {
	var in api.RulesCheckBody
	if err := decodeHelperBody(w, r, &in, "a rule set", `{"rules": [{"service", "endpoint", "method", "required_approvals"}, ...]}`); err != nil {
		writeError(w, a.log, err)
		return
	}
	if in.Rules == nil {
		writeError(w, a.log, twokey.Errorf(twokey.EBadPayload, `give "rules": the whole proposed rule set ([] for none)`))
		return
	}
	out, err := a.eng.CheckRules(r.PathValue("id"), key, in.Rules, in.Groups)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
