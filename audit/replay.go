package audit

import (
	"encoding/json"
	"errors"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// The decisions of a log are replayed through gate.Fold, the one fold of
// records the engine is held to; this file gives it what only an auditor
// has (the export's catalog and the endpoints the gateway signed) and adds
// up the report from what each record did.

// resolve is the fold's Resolve for an export: the endpoint M is matched
// on is the one the gateway signed when it closed the request (checked
// against the URL and the export's base URL: what is wrong is reported at
// that record), else, for a request still open, the export's base URL's.
func (v *verifier) resolve(p *gate.RequestPayload) (gate.Target, string, error) {
	t := gate.Target{Service: p.Service, Method: p.Method}
	if signed, ok := v.decided[p.RequestID]; ok {
		t.Path, t.Pattern = signed.endpoint, signed.pattern
		return t, v.x.endpointProblem(p, signed.endpoint, signed.pattern), nil
	}
	path, err := v.x.endpointOf(p)
	if err != nil {
		return t, "", err
	}
	t.Path = path
	if tm := v.x.template(p.Template); tm != nil {
		t.Pattern = tm.Endpoint
	}
	return t, "", nil
}

// replay folds the record in and adds what it did to the report.
func (v *verifier) replay(m *conversation.Message, seq uint64) error {
	step, err := v.fold.Apply(m, seq, v.at)
	if err != nil {
		var bad *gate.Violation
		if errors.As(err, &bad) {
			return v.fail(Check(bad.Check), "%s", bad.Reason)
		}
		return v.fail(CheckState, "%s", twokey.ErrorMessage(err))
	}
	r := step.Request
	switch m.Kind {
	case conversation.KindGateRequest:
		v.rep.Requests++
	case conversation.KindGateExecuted, conversation.KindGateFailed:
		outcome := "executed"
		if m.Kind == conversation.KindGateExecuted {
			v.rep.Executed++
		} else {
			v.rep.Failed++
			if r.Result.Reason == gate.ReasonInterrupted {
				v.rep.Interrupted++
			}
			outcome = "failed " + twokey.Clip(r.Result.Reason)
		}
		v.rep.Approvals += r.Count()
		v.rep.Executions = append(v.rep.Executions, Execution{Seq: seq, RequestID: r.ID, Service: r.Payload.Service,
			Method: r.Payload.Method, Endpoint: r.Endpoint, Required: r.Required, Rule: r.Rule, Approvals: r.Count(), Outcome: outcome})
	case conversation.KindGateExpired:
		v.rep.Expired++
	case conversation.KindGateRejected:
		v.rep.Rejected++
	case conversation.KindGateCancelled:
		v.rep.Cancelled++
	case conversation.KindMemberChanged:
		v.rep.MembershipChanges++
	}
	return nil
}

// signedFacts is what a gateway record closing a request signs about how
// it matched the rules.
type signedFacts struct{ endpoint, pattern string }

// signedEndpoints reads ahead: for each request, the endpoint that the
// first gateway record closing it signs (only records whose signature is
// the gateway's count; each is checked in full when its turn comes). M
// is matched on this endpoint from the request's submission on.
func signedEndpoints(x *Export) map[string]signedFacts {
	out := map[string]signedFacts{}
	for i := range x.Records {
		switch x.Records[i].Kind {
		case conversation.KindGateExecuted, conversation.KindGateFailed, conversation.KindGateExpired,
			conversation.KindGateRejected, conversation.KindGateCancelled:
		default:
			continue
		}
		m, err := conversation.Verify(x.Records[i].Envelope)
		if err != nil || m.Author != x.Gateway || m.Kind != x.Records[i].Kind {
			continue
		}
		var q struct {
			RequestID string  `json:"request_id"`
			Endpoint  *string `json:"endpoint"`
			Pattern   string  `json:"pattern"`
		}
		if json.Unmarshal(m.Payload, &q) != nil || q.Endpoint == nil {
			continue
		}
		if _, seen := out[q.RequestID]; !seen {
			out[q.RequestID] = signedFacts{*q.Endpoint, q.Pattern}
		}
	}
	return out
}
