package catalog

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/templates"
)

// urlParts is an absolute http(s) URL split by a parser stricter than
// net/url: scheme and host lower case, port "" when it is the scheme's
// default, path exactly as written.
type urlParts struct {
	scheme, host, port string
	path               string // "" or starting with '/'
	hasQuery           bool
}

// hostPort is the host with the port when the port is not the default.
func (p *urlParts) hostPort() string {
	if p.port == "" {
		return p.host
	}
	return p.host + ":" + p.port
}

// splitStrict parses raw as an absolute http or https URL with a host. It
// refuses what could make two parsers disagree about where the request goes:
// bytes outside printable ASCII, whitespace, backslashes, fragments,
// userinfo ('@' before the path), percent-escapes in the host, a host that is
// not plain letters, digits, '-', '.' and '_' (or a bracketed IPv6
// literal), and a port that is not a plain decimal number from 1 to 65535.
// Then it checks that net/url reads the URL the same way.
func splitStrict(raw string) (*urlParts, error) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c <= ' ' || c >= 0x7f:
			return nil, fmt.Errorf("contains a space, a control character or a non-ASCII byte; escape it")
		case c == '\\':
			return nil, fmt.Errorf("contains a backslash")
		case c == '#':
			return nil, fmt.Errorf("has a fragment ('#'), which is never sent to a server")
		}
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("is not an absolute URL (scheme://host/path)")
	}
	p := &urlParts{scheme: strings.ToLower(scheme)}
	if p.scheme != "http" && p.scheme != "https" {
		return nil, fmt.Errorf("has scheme %q; only http and https are allowed", scheme)
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, rest := rest[:end], rest[end:]
	if strings.Contains(authority, "@") {
		return nil, fmt.Errorf("has userinfo ('@' before the path)")
	}
	if strings.Contains(authority, "%") {
		return nil, fmt.Errorf("has a percent-escape in the host")
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		i := strings.IndexByte(authority, ']')
		if i < 0 {
			return nil, fmt.Errorf("has an IPv6 host without ']'")
		}
		host = authority[:i+1]
		after := authority[i+1:]
		if after != "" {
			if after[0] != ':' {
				return nil, fmt.Errorf("has text after the IPv6 host")
			}
			port = after[1:]
			if port == "" {
				return nil, fmt.Errorf("has an empty port")
			}
		}
		for _, c := range host[1 : len(host)-1] {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == ':' || c == '.') {
				return nil, fmt.Errorf("has an IPv6 host that is not plain hex digits, ':' and '.'")
			}
		}
	} else {
		if i := strings.LastIndexByte(authority, ':'); i >= 0 {
			host, port = authority[:i], authority[i+1:]
			if port == "" {
				return nil, fmt.Errorf("has an empty port")
			}
		}
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
				return nil, fmt.Errorf("has a host with %q; only letters, digits, '-', '.' and '_' may appear", string(rune(c)))
			}
		}
	}
	if host == "" || host == "[]" {
		return nil, fmt.Errorf("has no host")
	}
	p.host = strings.ToLower(host)
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' || strings.ContainsAny(port, "+-") {
			return nil, fmt.Errorf("has port %q; write a number from 1 to 65535", port)
		}
		if (p.scheme == "http" && n != 80) || (p.scheme == "https" && n != 443) {
			p.port = port
		}
	}
	p.path, _, p.hasQuery = strings.Cut(rest, "?")
	if p.path != "" {
		if err := templates.CheckPath(p.path); err != nil {
			return nil, fmt.Errorf("has a path, %s, that %s", quoteShort(p.path), err.Error())
		}
	}

	// net/url must read the same scheme, host, port, path and no userinfo.
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("does not parse: %v", err)
	}
	uport := u.Port()
	if (p.scheme == "http" && uport == "80") || (p.scheme == "https" && uport == "443") {
		uport = ""
	}
	uhost := strings.ToLower(u.Hostname())
	if strings.HasPrefix(p.host, "[") {
		uhost = "[" + uhost + "]"
	}
	if strings.ToLower(u.Scheme) != p.scheme || u.User != nil || u.Opaque != "" ||
		uhost != p.host || uport != p.port || u.EscapedPath() != p.path {
		return nil, fmt.Errorf("is read differently by Go's URL parser")
	}
	return p, nil
}

// parseBaseURL checks a service's base URL: an absolute http or https URL
// with a host, no userinfo, query or fragment, and a path that twokey would
// send (templates.CheckPath). It returns the parts with the path's one
// trailing slash removed ("" for the root).
func parseBaseURL(raw string) (*urlParts, error) {
	if raw == "" {
		return nil, fmt.Errorf("is empty: write the API's base URL, e.g. https://api.example.com/v1")
	}
	p, err := splitStrict(raw)
	if err != nil {
		return nil, err
	}
	if p.hasQuery {
		return nil, fmt.Errorf("has a query ('?'); put fixed query parameters in the templates")
	}
	p.path = strings.TrimSuffix(p.path, "/")
	return p, nil
}

// defaultPort is the port a URL of scheme uses when it names none.
func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// hostAllowed reports whether u's host and port are in allowed, a list of
// "host" or "host:port" entries (validHostPort), compared without regard
// to case; an entry or URL without a port means u's scheme's default.
func hostAllowed(u *urlParts, allowed []string) bool {
	uport := u.port
	if uport == "" {
		uport = defaultPort(u.scheme)
	}
	for _, h := range allowed {
		host, port := h, ""
		if i := strings.LastIndexByte(h, ':'); i >= 0 && i > strings.LastIndexByte(h, ']') {
			host, port = h[:i], h[i+1:]
		}
		if port == "" {
			port = defaultPort(u.scheme)
		}
		if strings.EqualFold(host, u.host) && port == uport {
			return true
		}
	}
	return false
}

// EndpointOf returns the path of rawURL below the service's base URL, as it
// appears in rawURL (e.g. "/item/8863.json"; "/" when rawURL is the base URL
// itself). It is the check that a key is never sent to a host that is not
// its service's, so it is strict: the scheme and host must equal the base
// URL's (compared without regard to case), and the port too (an explicit
// :80 for http or :443 for https is the same as none); rawURL may not hold
// userinfo, a fragment, a backslash, whitespace or non-ASCII bytes; its path
// must equal the base path or continue it at a '/' boundary, and the rest
// must pass templates.CheckPath (no "//", no dot segments, no escaped dots
// or slashes). The host must also be in the service's AllowedHosts, when
// it has any. Any failure is a host_mismatch error naming the base URL.
func (s *Service) EndpointOf(rawURL string) (string, error) {
	mismatch := func(why string) error {
		return twokey.Errorf(twokey.EHostMismatch,
			"url %s is not below the base URL %s of service %q: it %s; a call to this service must start with %s/",
			quoteShort(rawURL), s.BaseURL, s.Name, why, strings.TrimSuffix(s.BaseURL, "/"))
	}
	base, err := parseBaseURL(s.BaseURL)
	if err != nil {
		return "", twokey.Errorf(twokey.EHostMismatch, "service %q has an invalid base URL %q: it %s", s.Name, s.BaseURL, err.Error())
	}
	u, err := splitStrict(rawURL)
	if err != nil {
		return "", mismatch(err.Error())
	}
	if u.scheme != base.scheme {
		return "", mismatch(fmt.Sprintf("uses %s, not %s", u.scheme, base.scheme))
	}
	if u.host != base.host || u.port != base.port {
		return "", mismatch(fmt.Sprintf("goes to host %s, not %s", u.hostPort(), base.hostPort()))
	}
	if len(s.AllowedHosts) > 0 && !hostAllowed(u, s.AllowedHosts) {
		return "", twokey.Errorf(twokey.EHostMismatch,
			"url %s goes to host %s, which is not in the allowed_hosts of service %q (%s); the operator lists the hosts a key may be sent to",
			quoteShort(rawURL), u.hostPort(), s.Name, strings.Join(s.AllowedHosts, ", "))
	}
	var rest string
	switch {
	case u.path == base.path:
		rest = "/"
	case strings.HasPrefix(u.path, base.path+"/"):
		rest = u.path[len(base.path):]
	default:
		return "", mismatch(fmt.Sprintf("has path %s, which is not %s or below it", quoteShort(u.path), orRoot(base.path)))
	}
	if err := templates.CheckPath(rest); err != nil {
		return "", mismatch(fmt.Sprintf("has a path below the base, %s, that %s", quoteShort(rest), err.Error()))
	}
	return rest, nil
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// quoteShort quotes s for a message, cut to a readable length.
func quoteShort(s string) string {
	const max = 200
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
