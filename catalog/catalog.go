// Package catalog holds the services twokey can call and the templates for
// them, with the embedded starter catalog.
//
// A Catalog starts from the starter catalog (Starter) or empty (New);
// operators add YAML files (LoadFile) whose services and templates replace
// those of the same name, and may point a service at another base URL
// (OverrideBaseURL, for --service NAME=URL). Service.EndpointOf is the check
// that a URL stays on its service's base URL before a key is injected.
//
// A Catalog is safe for concurrent use. The services and templates it hands
// out are copies: changing them does not change the catalog.
package catalog

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/templates"
)

// Values of Service.Auth.
const (
	AuthRequired = "required" // no live secret: the call fails with no_secret and nothing is sent
	AuthOptional = "optional" // the secret is injected when there is one
	AuthNone     = "none"     // never injected
)

// Defaults filled in by Add.
const (
	DefaultHeaderName     = "Authorization"
	DefaultHeaderTemplate = "Bearer {value}"
)

// MaxFileSize is the largest catalog file Parse and LoadFile accept.
const MaxFileSize = 1 << 20

// Service is an upstream API.
type Service struct {
	Name    string `yaml:"name" json:"name"`
	BaseURL string `yaml:"base_url" json:"base_url"`
	// AllowedHosts is the host allowlist: the hosts ("host" or
	// "host:port"; no port means the scheme's default) a call to the
	// service may go to. EndpointOf enforces it on top of the base URL
	// containment, so it can only narrow, never widen, where a key goes;
	// the base URL's own host must be listed. It defaults to the base
	// URL's host, and --service NAME=URL resets it to the new URL's host.
	AllowedHosts []string `yaml:"allowed_hosts,omitempty" json:"allowed_hosts,omitempty"`
	// HeaderName and HeaderTemplate say how a secret is injected:
	// HeaderName: HeaderTemplate with {value} replaced by the secret.
	HeaderName     string `yaml:"header_name,omitempty" json:"header_name,omitempty"`         // default Authorization
	HeaderTemplate string `yaml:"header_template,omitempty" json:"header_template,omitempty"` // default "Bearer {value}"
	Auth           string `yaml:"auth,omitempty" json:"auth,omitempty"`                       // required | optional | none (default)
	Description    string `yaml:"description,omitempty" json:"description,omitempty"`
}

// File is the content of a catalog file.
type File struct {
	Services  []Service            `yaml:"services" json:"services"`
	Templates []templates.Template `yaml:"templates" json:"templates"`
}

// Catalog is a set of services and templates, each by name.
type Catalog struct {
	mu        sync.RWMutex
	services  map[string]*Service
	templates map[string]*templates.Template
}

// New returns an empty catalog.
func New() *Catalog {
	return &Catalog{services: map[string]*Service{}, templates: map[string]*templates.Template{}}
}

//go:embed starter.yaml
var starterYAML []byte

// StarterSource is the source name Starter gives its file.
const StarterSource = "starter.yaml"

// Starter returns a new catalog holding the embedded starter catalog.
func Starter() (*Catalog, error) {
	f, err := Parse(StarterSource, starterYAML)
	if err != nil {
		return nil, err
	}
	c := New()
	if err := c.Add(f, StarterSource); err != nil {
		return nil, err
	}
	return c, nil
}

// StarterYAML returns the text of the embedded starter catalog, for
// operators who want to copy and edit it.
func StarterYAML() []byte {
	return append([]byte(nil), starterYAML...)
}

// validateService checks a service on its own, before defaults are filled.
func validateService(s *Service) error {
	if !templates.ValidName(s.Name) {
		return twokey.Errorf(twokey.EBadPayload,
			"service name %q is not valid: use lower case letters, digits, '.', '_' and '-', starting with a letter or digit, at most %d characters (e.g. httpbin)",
			s.Name, templates.MaxNameLen)
	}
	bad := func(format string, args ...any) error {
		return twokey.Errorf(twokey.EBadPayload, "service %q: %s", s.Name, fmt.Sprintf(format, args...))
	}
	base, err := parseBaseURL(s.BaseURL)
	if err != nil {
		return bad("base_url %q %s", s.BaseURL, err.Error())
	}
	for _, h := range s.AllowedHosts {
		if !validHostPort(h) {
			return bad("allowed_hosts entry %q is not a host or host:port", h)
		}
	}
	if len(s.AllowedHosts) > 0 && !hostAllowed(base, s.AllowedHosts) {
		return bad("allowed_hosts %v does not list the base URL's host %s, so no call could be made: add %q to it",
			s.AllowedHosts, base.hostPort(), base.hostPort())
	}
	if s.HeaderName != "" {
		if !templates.ValidHeaderName(s.HeaderName) {
			return bad("header_name %q is not a valid HTTP header name (e.g. Authorization or x-api-key)", s.HeaderName)
		}
		switch strings.ToLower(s.HeaderName) {
		case "host", "content-length", "transfer-encoding", "connection", "content-type":
			return bad("header_name %q cannot carry a key: use Authorization or the API's own key header", s.HeaderName)
		}
	}
	if s.HeaderTemplate != "" {
		if !strings.Contains(s.HeaderTemplate, "{value}") {
			return bad("header_template %q does not contain {value}, where the key goes (e.g. \"Bearer {value}\")", s.HeaderTemplate)
		}
		if !templates.ValidHeaderValue(s.HeaderTemplate) {
			return bad("header_template %q has control characters or invalid UTF-8", s.HeaderTemplate)
		}
	}
	switch s.Auth {
	case "", AuthRequired, AuthOptional, AuthNone:
	default:
		return bad("auth %q is not one of required, optional, none", s.Auth)
	}
	return nil
}

func validHostPort(h string) bool {
	p, err := splitStrict("https://" + h)
	return err == nil && p.path == "" && !p.hasQuery
}

// withDefaults returns a copy of s with the defaults filled in.
func withDefaults(s *Service) *Service {
	c := cloneService(s)
	if c.HeaderName == "" {
		c.HeaderName = DefaultHeaderName
	}
	if c.HeaderTemplate == "" {
		c.HeaderTemplate = DefaultHeaderTemplate
	}
	if c.Auth == "" {
		c.Auth = AuthNone
	}
	if len(c.AllowedHosts) == 0 {
		if p, err := parseBaseURL(c.BaseURL); err == nil {
			c.AllowedHosts = []string{p.hostPort()}
		}
	}
	return c
}

// Add validates every service and template of f and adds them, or, on the
// first error, adds nothing. A service or template whose name is already in
// the catalog replaces the one there: an operator's file overrides the
// starter catalog, and a later file overrides an earlier one (a base URL set
// by OverrideBaseURL is replaced with the service, so apply overrides last).
// A template's service must be in f or already in the catalog, and its
// headers may not name its service's key header. source names f in errors
// (a file path, or "starter.yaml").
func (c *Catalog) Add(f *File, source string) error {
	if f == nil {
		return nil
	}
	bad := func(err error) error {
		return twokey.Errorf(twokey.EBadPayload, "catalog %s: %s", source, message(err))
	}
	newSvc := map[string]*Service{}
	for i := range f.Services {
		s := &f.Services[i]
		if err := validateService(s); err != nil {
			return bad(err)
		}
		if _, dup := newSvc[s.Name]; dup {
			return bad(fmt.Errorf("service %q is defined twice: keep one", s.Name))
		}
		newSvc[s.Name] = withDefaults(s)
	}
	newTmpl := map[string]*templates.Template{}
	for i := range f.Templates {
		t := &f.Templates[i]
		if err := t.Validate(); err != nil {
			return bad(err)
		}
		if _, dup := newTmpl[t.Name]; dup {
			return bad(fmt.Errorf("template %q is defined twice: keep one", t.Name))
		}
		newTmpl[t.Name] = cloneTemplate(t)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.services == nil {
		c.services = map[string]*Service{}
		c.templates = map[string]*templates.Template{}
	}
	service := func(name string) *Service {
		if s, ok := newSvc[name]; ok {
			return s
		}
		return c.services[name]
	}
	// Check every template of the result, since a replaced service may
	// change the key header an existing template must not set.
	check := func(t *templates.Template) error {
		s := service(t.Service)
		if s == nil {
			known := make([]string, 0, len(c.services)+len(newSvc))
			for n := range c.services {
				known = append(known, n)
			}
			for n := range newSvc {
				if c.services[n] == nil {
					known = append(known, n)
				}
			}
			sort.Strings(known)
			return fmt.Errorf("template %q: service %q is not in the catalog: define it under services (known: %s)",
				t.Name, t.Service, listOrNone(known))
		}
		for h := range t.Headers {
			if strings.EqualFold(h, s.HeaderName) {
				return fmt.Errorf("template %q: header %q is service %q's key header, which only the gateway sets: remove it", t.Name, h, s.Name)
			}
		}
		return nil
	}
	for _, t := range newTmpl {
		if err := check(t); err != nil {
			return bad(err)
		}
	}
	for name, t := range c.templates {
		if newTmpl[name] != nil {
			continue
		}
		if err := check(t); err != nil {
			return bad(err)
		}
	}
	for n, s := range newSvc {
		c.services[n] = s
	}
	for n, t := range newTmpl {
		c.templates[n] = t
	}
	return nil
}

// message is the text of err for a user: an *twokey.Error's message, else
// err's own text (errors built in this package say what to do).
func message(err error) string {
	var e *twokey.Error
	if errors.As(err, &e) {
		return twokey.ErrorMessage(err)
	}
	return err.Error()
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// LoadFile parses the catalog file at path and adds it (see Add).
func (c *Catalog) LoadFile(path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return twokey.Errorf(twokey.EBadPayload, "catalog %s: cannot open: %v", path, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return twokey.Errorf(twokey.EBadPayload, "catalog %s: cannot read: %v", path, err)
	}
	f, err := Parse(path, data)
	if err != nil {
		return err
	}
	return c.Add(f, path)
}

// ParseOverride splits a --service flag value "NAME=URL" and checks both
// parts.
func ParseOverride(s string) (name, baseURL string, err error) {
	name, baseURL, ok := strings.Cut(s, "=")
	if !ok || name == "" || baseURL == "" {
		return "", "", twokey.Errorf(twokey.EBadPayload,
			"service override %q is not NAME=URL: write e.g. --service httpbin=http://127.0.0.1:9000", s)
	}
	if !templates.ValidName(name) {
		return "", "", twokey.Errorf(twokey.EBadPayload,
			"service override %q: %q is not a service name (lower case letters, digits, '.', '_', '-')", s, name)
	}
	if _, err := parseBaseURL(baseURL); err != nil {
		return "", "", twokey.Errorf(twokey.EBadPayload, "service override %q: the URL %s", s, err.Error())
	}
	return name, baseURL, nil
}

// OverrideBaseURL points the service at another base URL (the server's
// --service NAME=URL) and makes that URL's host its allowed host. An unknown
// service is an error that lists the known ones.
func (c *Catalog) OverrideBaseURL(service, baseURL string) error {
	p, err := parseBaseURL(baseURL)
	if err != nil {
		return twokey.Errorf(twokey.EBadPayload, "service %q: base URL %q %s", service, baseURL, err.Error())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.services[service]
	if !ok {
		return twokey.Errorf(twokey.EBadPayload, "cannot override the base URL of service %q: there is no such service (known: %s)",
			service, listOrNone(c.serviceNames()))
	}
	s = cloneService(s)
	s.BaseURL = baseURL
	s.AllowedHosts = []string{p.hostPort()}
	c.services[service] = s
	return nil
}

func (c *Catalog) serviceNames() []string {
	names := make([]string, 0, len(c.services))
	for n := range c.services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TakesKey reports whether a secret stored for s is ever sent: s's auth
// is required or optional (none, or unset, means never).
func (s *Service) TakesKey() bool { return s.Auth == AuthRequired || s.Auth == AuthOptional }

// CheckTakesKey refuses a secret for s when s takes none: it would be
// stored and never sent. The message names, from all (the catalog's
// services), those that take one. The gateway refuses a gate.secret with
// it, and the CLI says it before it reads the key.
func CheckTakesKey(s *Service, all []*Service) error {
	if s.TakesKey() {
		return nil
	}
	var names []string
	for _, o := range all {
		if o.TakesKey() {
			names = append(names, o.Name)
		}
	}
	keyed := "no service of this gateway takes one"
	if len(names) > 0 {
		keyed = "the services that take one are " + strings.Join(names, ", ")
	}
	return twokey.Errorf(twokey.EBadPayload, "service %s takes no key (auth: none in this gateway's catalog): a secret for it would never be sent, so none is stored; %s", s.Name, keyed)
}

// Service returns a copy of the named service.
func (c *Catalog) Service(name string) (*Service, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.services[name]
	if !ok {
		return nil, false
	}
	return cloneService(s), true
}

// Template returns a copy of the named template.
func (c *Catalog) Template(name string) (*templates.Template, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.templates[name]
	if !ok {
		return nil, false
	}
	return cloneTemplate(t), true
}

// Services returns copies of all services, sorted by name.
func (c *Catalog) Services() []*Service {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*Service, 0, len(c.services))
	for _, s := range c.services {
		out = append(out, cloneService(s))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Templates returns copies of all templates, sorted by name.
func (c *Catalog) Templates() []*templates.Template {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*templates.Template, 0, len(c.templates))
	for _, t := range c.templates {
		out = append(out, cloneTemplate(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Resolve resolves the named template with args against its service's base
// URL (as overridden) and returns the call with a copy of the service. It
// checks that the resolved URL passes the service's EndpointOf.
func (c *Catalog) Resolve(template string, args map[string]string) (*templates.Resolved, *Service, error) {
	c.mu.RLock()
	t, ok := c.templates[template]
	var s *Service
	if ok {
		s = c.services[t.Service]
	}
	c.mu.RUnlock()
	if !ok {
		return nil, nil, twokey.Errorf(twokey.EBadPayload, "unknown template %s: list the templates with `twokey templates`", quoteShort(template))
	}
	if s == nil { // Add never lets this happen
		return nil, nil, twokey.Errorf(twokey.EBadPayload, "template %q: its service %q is not in the catalog", t.Name, t.Service)
	}
	s = cloneService(s)
	r, err := t.Resolve(s.BaseURL, args)
	if err != nil {
		return nil, nil, err
	}
	if p, err := s.EndpointOf(r.URL); err != nil || p != r.Path {
		return nil, nil, &twokey.Error{Code: twokey.EInternal,
			Err: fmt.Errorf("template %q resolved to %q, which EndpointOf reads as %q (%v)", t.Name, r.URL, p, err)}
	}
	return r, s, nil
}

func cloneService(s *Service) *Service {
	c := *s
	c.AllowedHosts = append([]string(nil), s.AllowedHosts...)
	return &c
}

func cloneTemplate(t *templates.Template) *templates.Template {
	c := *t
	c.Params = append([]templates.Param(nil), t.Params...)
	c.Headers = cloneMap(t.Headers)
	c.Query = cloneMap(t.Query)
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
