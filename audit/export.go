// Package audit re-checks an exported conversation offline, trusting only
// signatures: every envelope's signature over the bytes it carries, the hash
// chain from the first record, the gateway's signed checkpoint, and every
// decision the gateway recorded. Replaying the log through the gate's own
// rules, it proves that each executed request had M distinct valid approvals
// under the rule and the membership of its time, that nothing executed
// twice, that membership changed only with every needed signer, and that no
// record claims to be the gateway's without the gateway's signature.
//
// It needs nothing from a server: an Export carries the records, the
// gateway's key, a checkpoint and the catalog facts (service base URLs,
// template endpoint patterns) needed to recompute each request's M. It does
// no I/O; the CLI fetches and writes exports.
package audit

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/templates"
)

// Format names the export's layout; Parse refuses any other.
const Format = "twokey-audit/1"

// Export is one conversation's log with what an auditor needs to re-check
// it offline.
type Export struct {
	Format       string `json:"format"`
	ExportedAt   string `json:"exported_at"`
	Server       string `json:"server,omitempty"` // informational only
	Conversation string `json:"conversation"`
	// Gateway is the gateway's signing key id. Everything the gateway
	// wrote must verify under it; an auditor pins it with Options.Gateway.
	Gateway string `json:"gateway"`
	// Services and Templates are the catalog facts M depends on: a
	// request's endpoint is its URL's path below the service's base URL,
	// and a rule may name a template's endpoint pattern.
	Services  []Service  `json:"services"`
	Templates []Template `json:"templates"`
	// Checkpoint is the gateway's signed statement of the log's seq and
	// chain when the export was taken.
	Checkpoint *Checkpoint           `json:"checkpoint"`
	Records    []conversation.Record `json:"records"`
}

// Service is what the audit needs of a catalog service.
type Service struct {
	Name    string `json:"name"`
	BaseURL string `json:"base_url"`
}

// Template is what the audit needs of a catalog template.
type Template struct {
	Name     string `json:"name"`
	Service  string `json:"service"`
	Method   string `json:"method"`
	Endpoint string `json:"endpoint"`
}

// Checkpoint is GET /v1/conversations/{id}/checkpoint: a seq and chain
// value signed by the gateway.
type Checkpoint struct {
	Seq      uint64                `json:"seq"`
	Chain    string                `json:"chain"`
	Envelope conversation.Envelope `json:"envelope"`
}

// NewExport assembles an export. Of the catalog it keeps the services and
// templates that the log's requests name.
func NewExport(conv, gateway, server string, services []*catalog.Service, tmpls []*templates.Template,
	cp Checkpoint, records []conversation.Record, now time.Time) *Export {
	usedSvc, usedTmpl := map[string]bool{}, map[string]bool{}
	for _, r := range records {
		if r.Kind != conversation.KindGateRequest {
			continue
		}
		var p struct {
			Service  string `json:"service"`
			Template string `json:"template"`
		}
		if json.Unmarshal(r.Body, &p) == nil {
			usedSvc[p.Service] = true
			usedTmpl[p.Template] = true
		}
	}
	x := &Export{Format: Format, ExportedAt: conversation.FormatTime(now), Server: server, Conversation: conv,
		Gateway: gateway, Services: []Service{}, Templates: []Template{}, Checkpoint: &cp, Records: records}
	for _, s := range services {
		if usedSvc[s.Name] {
			x.Services = append(x.Services, Service{Name: s.Name, BaseURL: s.BaseURL})
		}
	}
	for _, t := range tmpls {
		if usedTmpl[t.Name] {
			x.Templates = append(x.Templates, Template{Name: t.Name, Service: t.Service, Method: t.Method, Endpoint: t.Endpoint})
		}
	}
	slices.SortFunc(x.Services, func(a, b Service) int { return cmpString(a.Name, b.Name) })
	slices.SortFunc(x.Templates, func(a, b Template) int { return cmpString(a.Name, b.Name) })
	if x.Records == nil {
		x.Records = []conversation.Record{}
	}
	return x
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Parse reads an export. It checks the layout only; Verify checks the rest.
func Parse(data []byte) (*Export, error) {
	var x Export
	if err := json.Unmarshal(data, &x); err != nil {
		return nil, &Failure{Check: CheckFormat, Reason: "the file is not a twokey audit export (JSON): " + err.Error()}
	}
	if x.Format != Format {
		return nil, &Failure{Check: CheckFormat, Reason: fmt.Sprintf("format is %q, not %q; make it with 'twokey audit export'", clip(x.Format), Format)}
	}
	if x.Conversation == "" {
		return nil, &Failure{Check: CheckFormat, Reason: "the export names no conversation"}
	}
	if x.Checkpoint == nil {
		return nil, &Failure{Check: CheckFormat, Reason: "the export has no gateway checkpoint, so a log cut short could not be told from a whole one"}
	}
	if len(x.Records) == 0 {
		return nil, &Failure{Check: CheckFormat, Reason: "the export holds no records"}
	}
	return &x, nil
}

// Marshal writes an export as indented JSON.
func (x *Export) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// requestTarget is used by the verifier to turn a request into the rule
// target, from the export's catalog facts.
func (x *Export) target(p *gate.RequestPayload) (gate.Target, error) {
	var svc *Service
	for i := range x.Services {
		if x.Services[i].Name == p.Service {
			svc = &x.Services[i]
		}
	}
	if svc == nil {
		return gate.Target{}, fmt.Errorf("the export has no base URL for service %q, which M depends on", clip(p.Service))
	}
	cs := &catalog.Service{Name: svc.Name, BaseURL: svc.BaseURL}
	path, err := cs.EndpointOf(p.URL)
	if err != nil {
		return gate.Target{}, fmt.Errorf("the gateway accepted a URL outside its service: %v", err)
	}
	t := gate.Target{Service: p.Service, Path: path, Method: p.Method}
	if p.Template != "" {
		var tm *Template
		for i := range x.Templates {
			if x.Templates[i].Name == p.Template {
				tm = &x.Templates[i]
			}
		}
		if tm == nil {
			return gate.Target{}, fmt.Errorf("the export has no endpoint pattern for template %q, which M depends on", clip(p.Template))
		}
		if tm.Service != p.Service || tm.Method != p.Method || !templates.MatchEndpoint(tm.Endpoint, path) {
			return gate.Target{}, fmt.Errorf("the request does not fit its template %s (%s %s %s)", tm.Name, tm.Method, tm.Service, tm.Endpoint)
		}
	}
	return t, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}
