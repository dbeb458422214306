// Package templates is the template model and its resolution into a concrete
// HTTP call.
//
// A template is a named call pattern against one service: a method, an
// endpoint with {param} placeholders, and typed parameters that go into the
// path, the query or a JSON body. Validate checks a template on its own
// (whether its service exists is the catalog's business); Resolve fills it
// with a user's arguments against a base URL; MatchEndpoint tells whether a
// concrete path below a base URL fits a template's endpoint pattern.
//
// Every error is a *twokey.Error with code bad_payload whose message names the
// template, the field or parameter at fault, and what to write instead.
package templates

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/twokey/twokey"
)

// Where a parameter goes.
const (
	InPath  = "path"
	InQuery = "query"
	InBody  = "body"
)

// Parameter types. The empty type means string.
const (
	TypeString  = "string"
	TypeInteger = "integer"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
)

// Risk tiers, shown to signers.
const (
	RiskRead  = "read"
	RiskWrite = "write"
	RiskAdmin = "admin"
)

// Limits on a template's size, so that a template from outside (a catalog
// file, a conversation message) cannot make resolution expensive.
const (
	MaxNameLen     = 64
	MaxEndpointLen = 512
	MaxParams      = 64
	MaxFixed       = 64 // fixed headers, fixed query parameters, each
)

// Methods are the HTTP methods a template may use.
var Methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}

// Param is one parameter of a template. A path parameter is required
// whatever Required says, unless it has a default.
type Param struct {
	Name        string `yaml:"name" json:"name"`
	In          string `yaml:"in" json:"in"`     // path | query | body
	Type        string `yaml:"type" json:"type"` // string (default) | integer | number | boolean
	Required    bool   `yaml:"required" json:"required"`
	Default     string `yaml:"default,omitempty" json:"default,omitempty"` // text form, parsed by Type
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	Example     string `yaml:"example,omitempty" json:"example,omitempty"`
}

// Template is a named call pattern a user fills with parameters.
type Template struct {
	Name     string  `yaml:"name" json:"name"`
	Service  string  `yaml:"service" json:"service"`
	Method   string  `yaml:"method" json:"method"`
	Endpoint string  `yaml:"endpoint" json:"endpoint"` // "/item/{id}.json"
	Params   []Param `yaml:"params,omitempty" json:"params,omitempty"`
	// SuggestedApprovals is shown to users and offered when they add a rule
	// for the template; what is enforced is the conversation's M and rules.
	SuggestedApprovals int               `yaml:"suggested_approvals" json:"suggested_approvals"`
	Risk               string            `yaml:"risk" json:"risk"`                           // read | write | admin
	Headers            map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"` // extra request headers
	Query              map[string]string `yaml:"query,omitempty" json:"query,omitempty"`     // fixed query parameters
	Description        string            `yaml:"description,omitempty" json:"description,omitempty"`
}

// Resolved is a template filled with arguments: the concrete call.
type Resolved struct {
	Method string
	URL    string // base URL + Path + "?" + query
	// Path is the concrete endpoint path below the base URL, escaped as it
	// appears in URL, e.g. "/item/8863.json".
	Path    string
	Headers map[string]string
	// Body is nil when the template has no body parameters, else a JSON
	// object of the typed body parameters.
	Body json.RawMessage
}

var (
	nameRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	paramNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
)

// ValidName reports whether s is a valid template or service name: a lower
// case letter or digit, then lower case letters, digits, '.', '_' or '-', at
// most MaxNameLen bytes.
func ValidName(s string) bool {
	return len(s) <= MaxNameLen && nameRE.MatchString(s)
}

func validParamName(s string) bool {
	return len(s) <= MaxNameLen && paramNameRE.MatchString(s)
}

// badf returns a bad_payload error about template t.
func (t *Template) badf(format string, args ...any) error {
	return twokey.Errorf(twokey.EBadPayload, "template %q: %s", t.Name, fmt.Sprintf(format, args...))
}

// Validate checks the template on its own: its name, method, endpoint,
// parameters, fixed headers and query, risk and suggested approvals. It does
// not check that the service exists.
func (t *Template) Validate() error {
	if !ValidName(t.Name) {
		return twokey.Errorf(twokey.EBadPayload,
			"template name %q is not valid: use lower case letters, digits, '.', '_' and '-', starting with a letter or digit, at most %d characters (e.g. hn.get-item)",
			t.Name, MaxNameLen)
	}
	if t.Service == "" {
		return t.badf("service is missing: name the service the template calls (e.g. service: hackernews)")
	}
	if !ValidName(t.Service) {
		return t.badf("service %q is not a valid service name: use lower case letters, digits, '.', '_' and '-'", t.Service)
	}
	if !validMethod(t.Method) {
		return t.badf("method %q is not one of %s (upper case)", t.Method, strings.Join(Methods, ", "))
	}
	switch t.Risk {
	case RiskRead, RiskWrite, RiskAdmin:
	case "":
		return t.badf("risk is missing: set risk to read, write or admin")
	default:
		return t.badf("risk %q is not one of read, write, admin", t.Risk)
	}
	if t.SuggestedApprovals < 1 {
		return t.badf("suggested_approvals is %d: set it to 1 or more (how many signers should approve a call)", t.SuggestedApprovals)
	}
	if len(t.Params) > MaxParams {
		return t.badf("has %d params; at most %d are allowed", len(t.Params), MaxParams)
	}
	seen := make(map[string]bool, len(t.Params))
	hasBody := false
	for i := range t.Params {
		p := &t.Params[i]
		if err := t.validateParam(p); err != nil {
			return err
		}
		if seen[p.Name] {
			return t.badf("param %q is declared twice: give each parameter a unique name", p.Name)
		}
		seen[p.Name] = true
		if p.In == InBody {
			hasBody = true
		}
		if p.In == InQuery {
			if _, ok := t.Query[p.Name]; ok {
				return t.badf("param %q is also a fixed query parameter: remove it from query or from params", p.Name)
			}
		}
	}
	if hasBody && (t.Method == "GET" || t.Method == "HEAD") {
		return t.badf("method %s cannot carry body params: use POST, PUT, PATCH or DELETE, or put the params in the query", t.Method)
	}
	if err := t.validateEndpoint(); err != nil {
		return err
	}
	if err := t.validateHeaders(); err != nil {
		return err
	}
	return t.validateQuery()
}

func validMethod(m string) bool {
	for _, x := range Methods {
		if m == x {
			return true
		}
	}
	return false
}

func (t *Template) validateParam(p *Param) error {
	if !validParamName(p.Name) {
		return t.badf("param name %q is not valid: use letters, digits, '_', '.' and '-', starting with a letter or '_', at most %d characters", p.Name, MaxNameLen)
	}
	switch p.In {
	case InPath, InQuery, InBody:
	case "":
		return t.badf("param %q: in is missing: set in to path, query or body", p.Name)
	default:
		return t.badf("param %q: in %q is not one of path, query, body", p.Name, p.In)
	}
	switch p.Type {
	case "", TypeString, TypeInteger, TypeNumber, TypeBoolean:
	default:
		return t.badf("param %q: type %q is not one of string, integer, number, boolean", p.Name, p.Type)
	}
	if p.Default != "" {
		if p.Required {
			return t.badf("param %q is required and has a default: a default makes it optional, so remove required or the default", p.Name)
		}
		if _, err := p.canonical(p.Default); err != nil {
			return t.badf("param %q: default %q %s", p.Name, p.Default, err.Error())
		}
	}
	if p.Example != "" {
		if _, err := p.canonical(p.Example); err != nil {
			return t.badf("param %q: example %q %s", p.Name, p.Example, err.Error())
		}
	}
	return nil
}

// segment is one piece of an endpoint pattern: literal text or a placeholder.
type segment struct {
	lit  string
	name string // placeholder name when lit == ""
}

// parsePattern splits an endpoint pattern into literal text and {name}
// placeholders. It fails on an unbalanced brace or an invalid name.
func parsePattern(p string) ([]segment, error) {
	var segs []segment
	for p != "" {
		open := strings.IndexByte(p, '{')
		closeB := strings.IndexByte(p, '}')
		if open < 0 {
			if closeB >= 0 {
				return nil, fmt.Errorf("has a '}' without a '{'")
			}
			segs = append(segs, segment{lit: p})
			break
		}
		if closeB >= 0 && closeB < open {
			return nil, fmt.Errorf("has a '}' without a '{'")
		}
		if open > 0 {
			segs = append(segs, segment{lit: p[:open]})
		}
		rest := p[open+1:]
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("has a '{' without a '}'")
		}
		name := rest[:end]
		if !validParamName(name) {
			return nil, fmt.Errorf("has a placeholder {%s} that is not a parameter name", name)
		}
		if len(segs) > 0 && segs[len(segs)-1].lit == "" {
			return nil, fmt.Errorf("has placeholders {%s} and {%s} next to each other: separate them with literal text", segs[len(segs)-1].name, name)
		}
		segs = append(segs, segment{name: name})
		p = rest[end+1:]
	}
	return segs, nil
}

// CheckPattern checks an endpoint pattern as a threshold rule may name it:
// a path starting with '/', literal text of path bytes only (no query, no
// fragment), and well-formed {name} placeholders.
func CheckPattern(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("does not start with '/'")
	}
	segs, err := parsePattern(p)
	if err != nil {
		return err
	}
	for _, s := range segs {
		for i := 0; i < len(s.lit); i++ {
			if c := s.lit[i]; !isPathLiteralByte(c) && c != '%' {
				return fmt.Errorf("contains %q, which a path may not hold unescaped (a rule names a path, never a query)", string(rune(c)))
			}
		}
	}
	return nil
}

// isPathLiteralByte reports whether c may appear unescaped in an endpoint's
// literal text: RFC 3986 unreserved, sub-delims, ':', '@' and '/'.
func isPathLiteralByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0
}

func (t *Template) validateEndpoint() error {
	e := t.Endpoint
	if e == "" {
		return t.badf("endpoint is missing: write the path below the service's base URL, starting with '/' (e.g. /item/{id}.json)")
	}
	if len(e) > MaxEndpointLen {
		return t.badf("endpoint is %d bytes long; at most %d are allowed", len(e), MaxEndpointLen)
	}
	if e[0] != '/' {
		return t.badf("endpoint %q must start with '/'", e)
	}
	segs, err := parsePattern(e)
	if err != nil {
		return t.badf("endpoint %q %s", e, err.Error())
	}
	for _, s := range segs {
		for i := 0; i < len(s.lit); i++ {
			c := s.lit[i]
			if !isPathLiteralByte(c) {
				switch c {
				case '?':
					return t.badf("endpoint %q contains '?': put fixed query parameters under query and variable ones in params with in: query", e)
				case '#':
					return t.badf("endpoint %q contains '#': a fragment is never sent to a server; remove it", e)
				case '%':
					return t.badf("endpoint %q contains '%%': write the path unescaped (only letters, digits and -._~!$&'()*+,;=:@/ may appear)", e)
				}
				return t.badf("endpoint %q contains %q, which may not appear in a path: only letters, digits and -._~!$&'()*+,;=:@/ may", e, string(rune(c)))
			}
		}
	}
	// With each placeholder filled by a harmless value the endpoint must be
	// a path twokey sends; Resolve checks the filled path again.
	var filled strings.Builder
	for _, s := range segs {
		if s.lit != "" {
			filled.WriteString(s.lit)
		} else {
			filled.WriteString("x")
		}
	}
	if err := CheckPath(filled.String()); err != nil {
		return t.badf("endpoint %q %s: write a plain path such as /item/{id}.json", e, err.Error())
	}
	// Placeholders against path params.
	count := map[string]int{}
	for _, s := range segs {
		if s.lit == "" {
			count[s.name]++
		}
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := t.param(n)
		if p == nil {
			return t.badf("endpoint %q uses placeholder {%s}, which is not declared: add a param with name: %s and in: path", e, n, n)
		}
		if p.In != InPath {
			return t.badf("endpoint %q uses placeholder {%s}, but param %q has in: %s: set in: path", e, n, n, p.In)
		}
		if count[n] > 1 {
			return t.badf("endpoint %q uses placeholder {%s} %d times: use each path param exactly once", e, n, count[n])
		}
	}
	for _, p := range t.Params {
		if p.In == InPath && count[p.Name] == 0 {
			return t.badf("param %q has in: path but the endpoint %q has no {%s}: add the placeholder or change in", p.Name, e, p.Name)
		}
	}
	return nil
}

func (t *Template) param(name string) *Param {
	for i := range t.Params {
		if t.Params[i].Name == name {
			return &t.Params[i]
		}
	}
	return nil
}

// forbiddenHeaders are set by the HTTP client, or are hop-by-hop; a template
// may not set them.
var forbiddenHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true,
	"connection": true, "keep-alive": true, "upgrade": true, "te": true,
	"trailer": true, "proxy-authorization": true, "proxy-connection": true,
}

// ValidHeaderName reports whether s is an HTTP header field name (an RFC 9110
// token).
func ValidHeaderName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ValidHeaderValue reports whether s may be sent as a header value: valid
// UTF-8 with no control characters but tab.
func ValidHeaderValue(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return false
		}
	}
	return true
}

func (t *Template) validateHeaders() error {
	if len(t.Headers) > MaxFixed {
		return t.badf("has %d headers; at most %d are allowed", len(t.Headers), MaxFixed)
	}
	seen := map[string]string{}
	for _, k := range sortedKeys(t.Headers) {
		if !ValidHeaderName(k) {
			return t.badf("header name %q is not a valid HTTP header name", k)
		}
		lk := strings.ToLower(k)
		if forbiddenHeaders[lk] {
			return t.badf("header %q is set by the gateway's HTTP client: remove it from headers", k)
		}
		if prev, ok := seen[lk]; ok {
			return t.badf("headers %q and %q are the same header: keep one", prev, k)
		}
		seen[lk] = k
		if !ValidHeaderValue(t.Headers[k]) {
			return t.badf("header %q has a value with control characters or invalid UTF-8: remove them", k)
		}
	}
	return nil
}

func (t *Template) validateQuery() error {
	if len(t.Query) > MaxFixed {
		return t.badf("has %d fixed query parameters; at most %d are allowed", len(t.Query), MaxFixed)
	}
	for _, k := range sortedKeys(t.Query) {
		if k == "" {
			return t.badf("query has an empty parameter name: name it or remove it")
		}
		if !utf8.ValidString(k) || !utf8.ValidString(t.Query[k]) {
			return t.badf("query parameter %q is not valid UTF-8", k)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// typeName is the parameter's type with the default filled in.
func (p *Param) typeName() string {
	if p.Type == "" {
		return TypeString
	}
	return p.Type
}

// canonical checks v against the parameter's type (and, for a path
// parameter, against the path rules) and returns its canonical text: an
// integer in plain decimal, a number in Go's shortest form, a boolean as
// true or false, a string unchanged. The error completes a sentence that
// begins with the value.
func (p *Param) canonical(v string) (string, error) {
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("is not valid UTF-8")
	}
	var out string
	switch p.typeName() {
	case TypeInteger:
		n, err := strconv.ParseInt(v, 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return "", fmt.Errorf("is out of range: an integer here is from %d to %d", int64(math.MinInt64), int64(math.MaxInt64))
		}
		if err != nil {
			return "", fmt.Errorf("is not an integer: write whole decimal digits, e.g. 42")
		}
		out = strconv.FormatInt(n, 10)
	case TypeNumber:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", fmt.Errorf("is not a finite number: write a decimal number, e.g. 2.5")
		}
		out = strconv.FormatFloat(f, 'g', -1, 64)
	case TypeBoolean:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", fmt.Errorf("is not a boolean: write true or false")
		}
		out = strconv.FormatBool(b)
	default:
		out = v
	}
	if p.In == InPath {
		if err := checkPathValue(out); err != nil {
			return "", err
		}
	}
	return out, nil
}

// checkPathValue refuses a path parameter value that could change which path
// is called: empty, "." or "..", or holding '/' or '\' — also once
// percent-decoded, any number of times, so that "%2e%2e" and "%252F" are
// refused even though escaping would keep them harmless to a conforming
// server — or holding a control character.
func checkPathValue(v string) error {
	if v == "" {
		return fmt.Errorf("is empty: a path parameter needs a value")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("contains a control character, which a path parameter may not")
		}
	}
	cur := v
	for range 8 {
		// The value itself is already named; a decoded form is named too.
		is := ""
		if cur != v {
			is = fmt.Sprintf("decodes to %q, which ", cur)
		}
		switch {
		case cur == "." || cur == "..":
			return fmt.Errorf("%sis a dot segment: a path parameter may not be \".\" or \"..\"", is)
		case strings.ContainsAny(cur, `/\`):
			return fmt.Errorf("%scontains '/' or '\\': a path parameter is one path segment", is)
		}
		if !strings.Contains(cur, "%") {
			return nil
		}
		next, ok := pctDecode(cur)
		if !ok || next == cur {
			return nil
		}
		cur = next
	}
	return fmt.Errorf("is percent-encoded too many times over")
}

// pctDecode decodes %XX sequences, leaving any other byte alone; ok is false
// when s holds a '%' not followed by two hex digits.
func pctDecode(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return s, false
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
