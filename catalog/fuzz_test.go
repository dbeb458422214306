package catalog

import (
	"net"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/templates"
)

// FuzzParse parses a catalog file and, when it parses, adds it over the
// starter catalog and resolves each of its templates with its examples.
// Errors are bad_payload and name the file; a resolved URL always passes its
// service's EndpointOf (Catalog.Resolve checks, and reports internal if
// not) and matches the template's endpoint pattern.
func FuzzParse(f *testing.F) {
	f.Add(starterYAML)
	f.Add([]byte(goodFile))
	f.Add([]byte("services: []\ntemplates: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			if twokey.ErrorCode(err) != twokey.EBadPayload || !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("Parse error %q (code %s) does not name the file", err, twokey.ErrorCode(err))
			}
			return
		}
		c, err := Starter()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Add(file, "fuzz.yaml"); err != nil {
			if twokey.ErrorCode(err) != twokey.EBadPayload || !strings.HasPrefix(err.Error(), "catalog fuzz.yaml: ") {
				t.Fatalf("Add error %q (code %s)", err, twokey.ErrorCode(err))
			}
			return
		}
		for _, tm := range file.Templates {
			r, s, err := c.Resolve(tm.Name, exampleArgs(&tm))
			if err != nil {
				if twokey.ErrorCode(err) != twokey.EBadPayload {
					t.Fatalf("Resolve %s: %v (code %s)", tm.Name, err, twokey.ErrorCode(err))
				}
				continue
			}
			if p, err := s.EndpointOf(r.URL); err != nil || p != r.Path {
				t.Fatalf("%s: EndpointOf(%q) = %q, %v; want %q", tm.Name, r.URL, p, err, r.Path)
			}
			if !templates.MatchEndpoint(tm.Endpoint, r.Path) {
				t.Fatalf("%s: %q does not match %q", tm.Name, r.Path, tm.Endpoint)
			}
		}
	})
}

// effectiveHost is the lower case host and port of u, the port filled in
// from the scheme.
func effectiveHost(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// FuzzEndpointOf checks what EndpointOf accepts against net/url's reading
// of the same URL: same scheme, host and port, no userinfo or fragment, a
// path that is the base path followed by the endpoint and that, cleaned of
// dot segments, still lies below the base path.
func FuzzEndpointOf(f *testing.F) {
	for _, s := range []struct{ base, raw string }{
		{"https://httpbin.org", "https://httpbin.org/post"},
		{"https://httpbin.org", "https://httpbin.org.evil.com/x"},
		{"https://httpbin.org", "https://httpbin.org@evil.com/"},
		{"https://hacker-news.firebaseio.com/v0", "https://hacker-news.firebaseio.com/v0x"},
		{"https://hacker-news.firebaseio.com/v0", "https://hacker-news.firebaseio.com/v0/../x"},
		{"https://hacker-news.firebaseio.com/v0/", "https://HACKER-NEWS.firebaseio.com:443/v0/item/1.json?x=1"},
		{"http://127.0.0.1:8081", "http://127.0.0.1:8081/a%20b/%C3%BC"},
		{"http://[::1]:9000/api", "http://[::1]:9000/api/x"},
	} {
		f.Add(s.base, s.raw)
	}
	f.Fuzz(func(t *testing.T, base, raw string) {
		s := &Service{Name: "s", BaseURL: base}
		got, err := s.EndpointOf(raw)
		if _, berr := parseBaseURL(base); berr != nil {
			if err == nil {
				t.Fatalf("EndpointOf accepted %q under the invalid base URL %q", raw, base)
			}
			return
		}
		if err != nil {
			if twokey.ErrorCode(err) != twokey.EHostMismatch || !strings.Contains(err.Error(), base) {
				t.Fatalf("EndpointOf(%q) error %q does not name the base URL %q", raw, err, base)
			}
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q, which net/url refuses: %v", raw, err)
		}
		b, err := url.Parse(base)
		if err != nil {
			t.Fatalf("base %q: %v", base, err)
		}
		if !strings.EqualFold(u.Scheme, b.Scheme) || effectiveHost(u) != effectiveHost(b) {
			t.Fatalf("accepted %q under %q: %s://%s is not %s://%s", raw, base, u.Scheme, effectiveHost(u), b.Scheme, effectiveHost(b))
		}
		if u.User != nil || u.Fragment != "" || u.Opaque != "" || strings.ContainsAny(raw, "#\\") || strings.ContainsAny(u.Host, "@%") {
			t.Fatalf("accepted %q with userinfo, a fragment, a backslash or an escaped host", raw)
		}
		if err := templates.CheckPath(got); err != nil {
			t.Fatalf("endpoint %q of %q %v", got, raw, err)
		}
		bp := strings.TrimSuffix(b.EscapedPath(), "/")
		if up := u.EscapedPath(); bp+got != up && !(got == "/" && up == bp) {
			t.Fatalf("endpoint %q of %q: path %q is not base path %q + endpoint", got, raw, up, bp)
		}
		clean := path.Clean("/" + u.Path)
		bclean := path.Clean("/" + b.Path)
		if clean != bclean && !strings.HasPrefix(clean, strings.TrimSuffix(bclean, "/")+"/") {
			t.Fatalf("accepted %q: its cleaned path %q is outside the base path %q", raw, clean, bclean)
		}
		again, err := s.EndpointOf(strings.TrimSuffix(base, "/") + got)
		if err != nil || again != got {
			t.Fatalf("base + endpoint %q gives %q, %v", got, again, err)
		}
	})
}
