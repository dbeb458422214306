package api

import "github.com/twokey/twokey/gate"

// Target is a log reader's gate.Fold Resolve from the catalog the server
// answered with: the request's service and method, the path of its URL
// below the service's base URL, and the named template's endpoint pattern
// (PROTOCOL 6). What the catalog does not have (a nil catalog, an unknown
// service or template, a URL off its base) is left empty, so M is matched
// on what is known: a reader draws; it is the audit that refuses.
func (c *Catalog) Target(p *gate.RequestPayload) (gate.Target, string, error) {
	t := gate.Target{Service: p.Service, Method: p.Method}
	if c == nil {
		return t, "", nil
	}
	for _, s := range c.Services {
		if s.Name == p.Service {
			t.Path, _ = s.EndpointOf(p.URL)
		}
	}
	for _, tm := range c.Templates {
		if p.Template != "" && tm.Name == p.Template {
			t.Pattern = tm.Endpoint
		}
	}
	return t, "", nil
}
