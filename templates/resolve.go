package templates

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/twokey/twokey"
)

// Resolve fills the template with args against baseURL (for example
// "http://127.0.0.1:9000/v0"; one trailing slash is tolerated).
//
// Path parameters are required unless they have a default; a value is
// refused when it is empty, "." or "..", or holds '/' or '\' (also
// percent-encoded, e.g. "%2e%2e" or "%2F"), and is escaped with
// url.PathEscape. Query parameters and the template's fixed query are
// escaped with url.QueryEscape and sorted by name. Body parameters become a
// JSON object with typed values (integer and number as JSON numbers, boolean
// as true or false). Defaults fill parameters not given. Every missing
// required parameter, every unknown parameter and every badly typed value is
// named in one error, each group sorted by name.
func (t *Template) Resolve(baseURL string, args map[string]string) (*Resolved, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	base, err := trimBase(baseURL)
	if err != nil {
		return nil, t.badf("%s", err.Error())
	}

	var missing, unknown, bad []string
	for name := range args {
		if t.param(name) == nil {
			unknown = append(unknown, name)
		}
	}
	values := make(map[string]string, len(t.Params))
	for i := range t.Params {
		p := &t.Params[i]
		v, ok := args[p.Name]
		if !ok && p.Default != "" {
			v, ok = p.Default, true
		}
		if !ok {
			if p.Required || p.In == InPath {
				missing = append(missing, p.Name)
			}
			continue
		}
		c, err := p.canonical(v)
		if err != nil {
			bad = append(bad, fmt.Sprintf("parameter %q: value %s %s", p.Name, short(v), err.Error()))
			continue
		}
		values[p.Name] = c
	}
	if len(missing)+len(unknown)+len(bad) > 0 {
		return nil, t.argsError(missing, unknown, bad)
	}

	// Path.
	segs, err := parsePattern(t.Endpoint)
	if err != nil { // Validate has parsed it already
		return nil, t.badf("endpoint %q %s", t.Endpoint, err.Error())
	}
	var path strings.Builder
	for _, s := range segs {
		if s.lit != "" {
			path.WriteString(s.lit)
		} else {
			path.WriteString(url.PathEscape(values[s.name]))
		}
	}
	if err := CheckPath(path.String()); err != nil {
		return nil, t.badf("the arguments make the path %q, which %s: choose other values", path.String(), err.Error())
	}

	// Query.
	q := url.Values{}
	for k, v := range t.Query {
		q.Set(k, v)
	}
	// Body.
	var body map[string]any
	for i := range t.Params {
		p := &t.Params[i]
		if p.In == InBody && body == nil {
			body = map[string]any{}
		}
		v, ok := values[p.Name]
		if !ok {
			continue
		}
		switch p.In {
		case InQuery:
			q.Set(p.Name, v)
		case InBody:
			switch p.typeName() {
			case TypeInteger, TypeNumber:
				body[p.Name] = json.Number(v)
			case TypeBoolean:
				body[p.Name] = v == "true"
			default:
				body[p.Name] = v
			}
		}
	}

	r := &Resolved{Method: t.Method, Path: path.String(), URL: base + path.String()}
	if enc := q.Encode(); enc != "" {
		r.URL += "?" + enc
	}
	r.Headers = make(map[string]string, len(t.Headers)+1)
	for k, v := range t.Headers {
		r.Headers[k] = v
	}
	if body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(body); err != nil {
			return nil, t.badf("cannot encode the body: %v", err)
		}
		r.Body = json.RawMessage(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		if !hasHeader(r.Headers, "Content-Type") {
			r.Headers["Content-Type"] = "application/json"
		}
	}
	return r, nil
}

func hasHeader(h map[string]string, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// argsError names every missing, unknown and badly typed parameter.
func (t *Template) argsError(missing, unknown, bad []string) error {
	sort.Strings(missing)
	sort.Strings(unknown)
	sort.Strings(bad)
	var parts []string
	if len(missing) > 0 {
		var names []string
		for _, n := range missing {
			p := t.param(n)
			if p.Example != "" {
				names = append(names, fmt.Sprintf("%q (e.g. %s)", n, p.ExampleArg()))
			} else {
				names = append(names, fmt.Sprintf("%q (%s)", n, p.typeName()))
			}
		}
		parts = append(parts, fmt.Sprintf("missing required %s %s: pass each as name=value",
			plural(len(missing), "parameter", "parameters"), strings.Join(names, ", ")))
	}
	if len(unknown) > 0 {
		var names []string
		for _, n := range unknown {
			names = append(names, short(n))
		}
		takes := "takes no parameters"
		if len(t.Params) > 0 {
			var all []string
			for _, p := range t.Params {
				all = append(all, p.Name)
			}
			sort.Strings(all)
			takes = "takes " + strings.Join(all, ", ")
		}
		parts = append(parts, fmt.Sprintf("unknown %s %s: the template %s",
			plural(len(unknown), "parameter", "parameters"), strings.Join(names, ", "), takes))
	}
	parts = append(parts, bad...)
	return t.badf("%s", strings.Join(parts, "; "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ExampleArg is p as one argument of an example command line: name=value
// with its example (or VALUE when it has none), quoted for a shell so that
// it can be pasted as it is.
func (p *Param) ExampleArg() string {
	v := p.Example
	if v == "" {
		v = "VALUE"
	}
	return ShellQuote(p.Name + "=" + v)
}

// ExampleArgs are the arguments of an example call of t: each required
// parameter and each with an example, in order, as ExampleArg writes them.
func (t *Template) ExampleArgs() []string {
	var out []string
	for i := range t.Params {
		if p := &t.Params[i]; p.Required || p.Example != "" {
			out = append(out, p.ExampleArg())
		}
	}
	return out
}

// ShellQuote returns s as one word that a POSIX shell reads back as s: as
// it is when it holds only characters no shell treats specially, else in
// single quotes, a quote in it closing them, escaped, and reopening.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,:/=+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// short quotes s for a message, cut to a readable length.
func short(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

// trimBase checks that baseURL is an absolute http or https URL with a host,
// without userinfo, query or fragment, and returns it without its trailing
// slash.
func trimBase(baseURL string) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", fmt.Errorf("base URL %q is not a URL: %v", baseURL, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("base URL %q is not an absolute http or https URL with a host", baseURL)
	}
	if u.User != nil || strings.ContainsAny(baseURL, "?#\\") {
		return "", fmt.Errorf("base URL %q may not have userinfo, a query, a fragment or a backslash", baseURL)
	}
	base := strings.TrimSuffix(baseURL, "/")
	if strings.HasSuffix(base, "/") {
		return "", fmt.Errorf("base URL %q ends with more than one '/'", baseURL)
	}
	return base, nil
}

// MatchEndpoint reports whether path, a concrete path below a base URL as it
// appears in the URL (e.g. "/item/8863.json"), matches the endpoint pattern
// (e.g. "/item/{id}.json"). Literal parts must match exactly, byte for byte;
// each placeholder matches one or more bytes other than '/'. A pattern with
// an unbalanced brace or an invalid placeholder name matches nothing.
func MatchEndpoint(pattern, path string) bool {
	segs, err := parsePattern(pattern)
	if err != nil {
		return false
	}
	// Placeholders never match '/', so both have the same number of them.
	if strings.Count(pattern, "/") != strings.Count(path, "/") {
		return false
	}
	// reach[j] says the pattern parts so far can match path[:j]; each part
	// moves it on, so the work is parts × len(path), with no backtracking.
	reach := make([]bool, len(path)+1)
	next := make([]bool, len(path)+1)
	reach[0] = true
	for _, s := range segs {
		clear(next)
		if s.lit != "" {
			for j := 0; j+len(s.lit) <= len(path); j++ {
				if reach[j] && path[j:j+len(s.lit)] == s.lit {
					next[j+len(s.lit)] = true
				}
			}
		} else {
			// next[k]: some j < k is reached and path[j:k] has no '/'.
			open := false
			for k := 0; k < len(path); k++ {
				open = (open || reach[k]) && path[k] != '/'
				next[k+1] = open
			}
		}
		reach, next = next, reach
	}
	return reach[len(path)]
}

// ParseArgs turns ["name=value", ...] into a map. "name=" gives an empty
// value; an argument without '=' or with an empty name, and a name given
// twice, are errors that name the argument. Template.ParseArgs is the same
// with the template's own parameters in the error's example.
func ParseArgs(args []string) (map[string]string, error) {
	return parseArgs(args, func(string) string { return "write parameters as name=value" })
}

// ParseArgs is the package's ParseArgs for arguments to t: a mistake's
// message shows how to write one of t's parameters (the one argument it
// takes with the value given, or its first with that one's example), or
// says that t takes none.
func (t *Template) ParseArgs(args []string) (map[string]string, error) {
	return parseArgs(args, func(a string) string {
		switch {
		case len(t.Params) == 0:
			return "but " + t.Name + " takes no parameters: leave the argument out"
		case len(t.Params) == 1 && a != "" && !strings.Contains(a, "="):
			return "write parameters as name=value, here " + t.Params[0].Name + "=" + ShellQuote(a)
		}
		return "write parameters as name=value, e.g. " + t.Params[0].ExampleArg()
	})
}

func parseArgs(args []string, hint func(arg string) string) (map[string]string, error) {
	m := make(map[string]string, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		switch {
		case !ok:
			return nil, twokey.Errorf(twokey.EBadPayload, "argument %s has no '=': %s", short(a), hint(a))
		case k == "":
			return nil, twokey.Errorf(twokey.EBadPayload, "argument %s has an empty name: %s", short(a), hint(""))
		}
		if prev, dup := m[k]; dup {
			return nil, twokey.Errorf(twokey.EBadPayload, "parameter %s is given twice (%s and %s): give each parameter once", short(k), short(k+"="+prev), short(a))
		}
		m[k] = v
	}
	return m, nil
}

// CheckPath reports whether p is a path twokey will send, below a base URL
// or as a base URL's own path: it starts with '/'; it holds only characters a
// path may carry unescaped (RFC 3986 unreserved, sub-delims, ':', '@', '/')
// and percent-escapes of two upper case hex digits; no escape encodes an
// unreserved character (so "%2E" is refused: write '.'), '/', '\' or a
// control character; no segment is empty but the last; and no segment is
// "." or "..", also before a ';' ("..;x"). A path Resolve returns always
// passes. The error completes a sentence that begins with the path.
func CheckPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("does not start with '/'")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if isPathLiteralByte(c) {
			continue
		}
		if c != '%' {
			return fmt.Errorf("contains %q, which must be percent-escaped", string(rune(c)))
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return fmt.Errorf("has a '%%' not followed by two hex digits; write a literal '%%' as %%25")
		}
		d := unhex(p[i+1])<<4 | unhex(p[i+2])
		switch {
		case isUnreserved(d):
			return fmt.Errorf("percent-escapes %q (%s), which must be written plainly", string(rune(d)), p[i:i+3])
		case d == '/' || d == '\\':
			return fmt.Errorf("has an escaped %q (%s), which servers disagree about", string(rune(d)), p[i:i+3])
		case d < 0x20 || d == 0x7f:
			return fmt.Errorf("has an escaped control character (%s)", p[i:i+3])
		case !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]):
			return fmt.Errorf("has the escape %s; write its hex digits in upper case", p[i:i+3])
		}
		i += 2
	}
	parts := strings.Split(p[1:], "/")
	for i, part := range parts {
		if part == "" && i != len(parts)-1 {
			return fmt.Errorf("has an empty segment (\"//\")")
		}
		name, _, _ := strings.Cut(part, ";")
		if name == "." || name == ".." {
			return fmt.Errorf("has a dot segment (%q)", part)
		}
	}
	return nil
}

func isUpperHex(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'F'
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
