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
// gateway's key, a checkpoint and the catalog facts as the server states
// them at export time (service base URLs, template endpoint patterns). M is
// not taken from those unsigned facts where the gateway signed its
// decision: every record that closes a request states, under the gateway's
// signature, the M it was frozen at, the rule that set it and the endpoint
// (the URL's path below the base URL) it was matched on; the audit
// re-derives M from the rules for that endpoint, checks the endpoint
// against the request's URL and the export's base URL, and counts the
// approvals against it. It does no I/O; the CLI fetches and writes exports.
package audit

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
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
	// Services and Templates are catalog facts as the server states them
	// at export time; nothing signs them. A request's endpoint is its URL's
	// path below the service's base URL: the audit checks each endpoint the
	// gateway signed against it (a difference is a base URL changed since,
	// or a lie), and uses it for requests no gateway record closed yet.
	// Templates are informational: rules match the concrete path.
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
type Checkpoint = api.Checkpoint

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
		return nil, &Failure{Check: CheckFormat, Reason: fmt.Sprintf("format is %q, not %q; make it with 'twokey audit export'", twokey.Clip(x.Format), Format)}
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

// endpointOf is the request's endpoint by the export's base URL of its
// service: the URL's path below it.
func (x *Export) endpointOf(p *gate.RequestPayload) (string, error) {
	svc := x.service(p.Service)
	if svc == nil {
		return "", fmt.Errorf("the export has no base URL for service %q, and no gateway record states the request's endpoint", twokey.Clip(p.Service))
	}
	cs := &catalog.Service{Name: svc.Name, BaseURL: svc.BaseURL}
	path, err := cs.EndpointOf(p.URL)
	if err != nil {
		return "", fmt.Errorf("the request's URL is not below the export's base URL %s of service %s: %s", twokey.Clip(svc.BaseURL), twokey.Clip(svc.Name), twokey.ErrorMessage(err))
	}
	return path, nil
}

func (x *Export) template(name string) *Template {
	if name == "" {
		return nil
	}
	for i := range x.Templates {
		if x.Templates[i].Name == name {
			return &x.Templates[i]
		}
	}
	return nil
}

func (x *Export) service(name string) *Service {
	for i := range x.Services {
		if x.Services[i].Name == name {
			return &x.Services[i]
		}
	}
	return nil
}

// endpointProblem checks an endpoint the gateway signed for p: it must be
// what is left of the URL's path below some base URL (the path ends with
// it at a segment boundary), and exactly the URL's path below the export's
// base URL of the service. An export without that base URL fails: the
// signature alone would let a gateway split each URL where it liked (sign
// "/" and no endpoint rule would ever apply). It returns "" or what is
// wrong.
func (x *Export) endpointProblem(p *gate.RequestPayload, signed, pattern string) string {
	u, _, _ := strings.Cut(p.URL, "?")
	base := u
	if signed != "/" {
		if !strings.HasPrefix(signed, "/") || !strings.HasSuffix(u, signed) {
			return fmt.Sprintf("the gateway signed endpoint %q, which does not end the request's URL %s", twokey.Clip(signed), twokey.Clip(p.URL))
		}
		base = u[:len(u)-len(signed)]
	}
	if got, err := (&catalog.Service{Name: p.Service, BaseURL: base}).EndpointOf(p.URL); err != nil || got != signed {
		return fmt.Sprintf("the gateway signed endpoint %q, which is not the path of the request's URL %s below a base URL at a '/' boundary", twokey.Clip(signed), twokey.Clip(p.URL))
	}
	// The pattern (which a rule may name, PROTOCOL 6) is signed too: the
	// named template's, which the signed endpoint fits, and which is the
	// export's template's; none for a request naming no template.
	switch {
	case p.Template == "" && pattern != "":
		return fmt.Sprintf("the gateway signed pattern %q for a request that names no template", twokey.Clip(pattern))
	case p.Template != "" && pattern == "":
		return fmt.Sprintf("the gateway signed no pattern for a request naming template %s, so the rules it was matched with cannot be checked", twokey.Clip(p.Template))
	case p.Template != "":
		t := x.template(p.Template)
		if t == nil {
			return fmt.Sprintf("the export has no template %s, so the pattern %q the gateway signed cannot be checked against it; "+
				"export again with 'twokey audit export', which includes the server's catalog", twokey.Clip(p.Template), twokey.Clip(pattern))
		}
		if t.Service != p.Service || t.Method != p.Method || t.Endpoint != pattern || !templates.MatchEndpoint(pattern, signed) {
			return fmt.Sprintf("the gateway signed endpoint %q with pattern %q, but the export's template %s is %s %s %s: "+
				"either the template changed since this request, or one of the two is a lie; compare with your catalog",
				twokey.Clip(signed), twokey.Clip(pattern), twokey.Clip(t.Name), twokey.Clip(t.Method), twokey.Clip(t.Service), twokey.Clip(t.Endpoint))
		}
	}
	svc := x.service(p.Service)
	if svc == nil {
		return fmt.Sprintf("the export has no base URL for service %s, so the endpoint %q the gateway signed cannot be checked against it; "+
			"export again with 'twokey audit export', which includes the server's catalog", twokey.Clip(p.Service), twokey.Clip(signed))
	}
	got, err := x.endpointOf(p)
	if err != nil || got != signed {
		now := "a URL it does not contain"
		if err == nil {
			now = fmt.Sprintf("endpoint %q", twokey.Clip(got))
		}
		return fmt.Sprintf("the gateway signed endpoint %q (base URL %s), but the export's base URL of service %s, %s, makes it %s: "+
			"either the service's base URL changed since this request, or one of the two is a lie; compare with your configuration",
			twokey.Clip(signed), twokey.Clip(base), twokey.Clip(p.Service), twokey.Clip(svc.BaseURL), now)
	}
	return ""
}
