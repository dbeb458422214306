package catalog

import (
	"strings"
	"testing"

	"github.com/twokey/twokey"
)

func TestEndpointOf(t *testing.T) {
	httpbin := &Service{Name: "httpbin", BaseURL: "https://httpbin.org"}
	hn := &Service{Name: "hackernews", BaseURL: "https://hacker-news.firebaseio.com/v0"}
	local := &Service{Name: "fun", BaseURL: "http://127.0.0.1:8081/"}
	v6 := &Service{Name: "v6", BaseURL: "http://[::1]:9000/api"}
	tests := []struct {
		svc  *Service
		url  string
		want string // "" means refused
		why  string // substring of the refusal
	}{
		// Accepted.
		{httpbin, "https://httpbin.org/post", "/post", ""},
		{httpbin, "https://httpbin.org/anything?x=1&y=%20", "/anything", ""},
		{httpbin, "https://httpbin.org", "/", ""},
		{httpbin, "https://httpbin.org/", "/", ""},
		{httpbin, "https://HTTPBIN.ORG/headers", "/headers", ""},
		{httpbin, "HTTPS://httpbin.org/headers", "/headers", ""},
		{httpbin, "https://httpbin.org:443/headers", "/headers", ""},
		{httpbin, "https://httpbin.org/a%20b/%C3%BC/%3F%23%25", "/a%20b/%C3%BC/%3F%23%25", ""},
		{httpbin, "https://httpbin.org/..a/a../.a./a..;b", "/..a/a../.a./a..;b", ""},
		{httpbin, "https://httpbin.org/anything/", "/anything/", ""},
		{httpbin, "https://httpbin.org/@evil.com", "/@evil.com", ""},
		{hn, "https://hacker-news.firebaseio.com/v0/item/8863.json", "/item/8863.json", ""},
		{hn, "https://hacker-news.firebaseio.com/v0", "/", ""},
		{hn, "https://hacker-news.firebaseio.com/v0/", "/", ""},
		{local, "http://127.0.0.1:8081/leet", "/leet", ""},
		{v6, "http://[::1]:9000/api/x", "/x", ""},

		// Another host.
		{httpbin, "https://httpbin.org.evil.com/x", "", "goes to host httpbin.org.evil.com, not httpbin.org"},
		{httpbin, "https://evil.com/httpbin.org/", "", "goes to host evil.com"},
		{httpbin, "https://evilhttpbin.org/", "", "goes to host evilhttpbin.org"},
		{httpbin, "https://httpbin.org./post", "", "goes to host httpbin.org."},
		{httpbin, "https://httpbin.org@evil.com/", "", "userinfo"},
		{httpbin, "https://user:pass@httpbin.org/", "", "userinfo"},
		{httpbin, "https://httpbin.org%2eevil.com/", "", "percent-escape in the host"},
		{httpbin, "https://httpbin%2Eorg/", "", "percent-escape in the host"},
		{httpbin, "//evil.com/httpbin.org", "", "not an absolute URL"},
		{httpbin, "/post", "", "not an absolute URL"},
		{httpbin, "https:///httpbin.org/post", "", "has no host"},
		{httpbin, "https:httpbin.org/post", "", "not an absolute URL"},
		{httpbin, `https://httpbin.org\@evil.com/`, "", "backslash"},
		{httpbin, `https://evil.com\httpbin.org/`, "", "backslash"},
		{httpbin, "https://httpbin.org\t.evil.com/", "", "control character"},
		{httpbin, "https://httpbín.org/", "", "non-ASCII"},

		// Another port or scheme.
		{httpbin, "https://httpbin.org:8443/post", "", "goes to host httpbin.org:8443, not httpbin.org"},
		{httpbin, "https://httpbin.org:0443/post", "", `port "0443"`},
		{httpbin, "https://httpbin.org:/post", "", "empty port"},
		{httpbin, "https://httpbin.org:443x/post", "", `port "443x"`},
		{httpbin, "https://httpbin.org:99999/post", "", `port "99999"`},
		{httpbin, "http://httpbin.org/post", "", "uses http, not https"},
		{httpbin, "http://httpbin.org:443/post", "", "uses http, not https"},
		{httpbin, "ftp://httpbin.org/post", "", `scheme "ftp"`},
		{local, "http://127.0.0.1/leet", "", "goes to host 127.0.0.1, not 127.0.0.1:8081"},
		{local, "http://127.0.0.1:8082/leet", "", "goes to host 127.0.0.1:8082"},
		{local, "http://localhost:8081/leet", "", "goes to host localhost:8081"},
		{v6, "http://[::2]:9000/api/x", "", "goes to host [::2]:9000"},

		// Outside the base path.
		{hn, "https://hacker-news.firebaseio.com/v0x", "", `has path "/v0x", which is not /v0 or below it`},
		{hn, "https://hacker-news.firebaseio.com/v0x/item/1.json", "", "which is not /v0 or below it"},
		{hn, "https://hacker-news.firebaseio.com/v1/item/1.json", "", "which is not /v0 or below it"},
		{hn, "https://hacker-news.firebaseio.com/", "", "which is not /v0 or below it"},
		{hn, "https://hacker-news.firebaseio.com/V0/x", "", "which is not /v0 or below it"},
		{hn, "https://hacker-news.firebaseio.com/v0/../x", "", `has a dot segment ("..")`},
		{hn, "https://hacker-news.firebaseio.com/v0/./x", "", `has a dot segment (".")`},
		{hn, "https://hacker-news.firebaseio.com/v0/x/..", "", `has a dot segment`},
		{hn, "https://hacker-news.firebaseio.com/v0/..;/x", "", `has a dot segment ("..;")`},
		{hn, "https://hacker-news.firebaseio.com/v0/%2e%2e/x", "", "must be written plainly"},
		{hn, "https://hacker-news.firebaseio.com/v0/%2E%2E/x", "", "must be written plainly"},
		{hn, "https://hacker-news.firebaseio.com/v0/.%2e/x", "", "must be written plainly"},
		{hn, "https://hacker-news.firebaseio.com/v0/%61", "", "must be written plainly"},
		{hn, "https://hacker-news.firebaseio.com/v0/a%2F..%2F..%2Fx", "", "servers disagree about"},
		{hn, "https://hacker-news.firebaseio.com/v0/a%5C..", "", "servers disagree about"},
		{hn, "https://hacker-news.firebaseio.com/v0/a%00", "", "control character"},
		{hn, "https://hacker-news.firebaseio.com/v0/a%2", "", "not followed by two hex digits"},
		{hn, "https://hacker-news.firebaseio.com/v0/a%c3%bc", "", "hex digits in upper case"},
		{hn, "https://hacker-news.firebaseio.com/v0//evil.com/x", "", `empty segment ("//")`},
		{hn, "https://hacker-news.firebaseio.com//v0/x", "", `empty segment ("//")`},
		{hn, `https://hacker-news.firebaseio.com/v0\..\x`, "", "backslash"},
		{hn, "https://hacker-news.firebaseio.com/v0/x#frag", "", "fragment"},
		{hn, "https://hacker-news.firebaseio.com/v0/x#", "", "fragment"},
		{hn, "https://hacker-news.firebaseio.com/v0/a b", "", "space"},
		{hn, "https://hacker-news.firebaseio.com/v0/a<b>", "", `contains "<"`},
		{hn, "https://hacker-news.firebaseio.com/v0/{id}.json", "", `contains "{"`},
		{hn, "", "", "not an absolute URL"},
	}
	for _, tt := range tests {
		got, err := tt.svc.EndpointOf(tt.url)
		if tt.want != "" {
			if err != nil || got != tt.want {
				t.Errorf("%s EndpointOf(%q) = %q, %v; want %q", tt.svc.Name, tt.url, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s EndpointOf(%q) = %q, want a refusal (%s)", tt.svc.Name, tt.url, got, tt.why)
			continue
		}
		if twokey.ErrorCode(err) != twokey.EHostMismatch {
			t.Errorf("EndpointOf(%q): code %s", tt.url, twokey.ErrorCode(err))
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.why) || !strings.Contains(msg, "base URL "+tt.svc.BaseURL) {
			t.Errorf("EndpointOf(%q) error %q\nwant it to name the base URL and say %q", tt.url, msg, tt.why)
		}
	}
}

func TestEndpointOfBadBaseURL(t *testing.T) {
	s := &Service{Name: "s", BaseURL: "https://h.com/a/../b"}
	if _, err := s.EndpointOf("https://h.com/b/x"); twokey.ErrorCode(err) != twokey.EHostMismatch ||
		!strings.Contains(err.Error(), `service "s" has an invalid base URL`) {
		t.Fatalf("EndpointOf with a bad base URL: %v", err)
	}
}

// TestAllowedHosts: the host allowlist is enforced on top of the base URL
// containment (it can narrow, never widen), ports default by scheme, and
// a list that leaves out the base URL's own host is refused at load.
func TestAllowedHosts(t *testing.T) {
	tests := []struct {
		base    string
		allowed []string
		url     string
		ok      bool
	}{
		{"https://api.example.com/v1", []string{"api.example.com"}, "https://api.example.com/v1/x", true},
		{"https://api.example.com/v1", []string{"API.Example.com:443"}, "https://api.example.com/v1/x", true},
		{"https://api.example.com/v1", []string{"other.example.com", "api.example.com"}, "https://api.example.com:443/v1/x", true},
		{"http://127.0.0.1:9000", []string{"127.0.0.1:9000"}, "http://127.0.0.1:9000/x", true},
		{"http://[::1]:9000", []string{"[::1]:9000"}, "http://[::1]:9000/x", true},
		{"http://example.com", []string{"example.com:80"}, "http://example.com/x", true},
		// The URL is on the base host, but the list does not allow it.
		{"https://api.example.com/v1", []string{"other.example.com"}, "https://api.example.com/v1/x", false},
		{"http://127.0.0.1:9000", []string{"127.0.0.1"}, "http://127.0.0.1:9000/x", false},
		{"https://api.example.com", []string{"api.example.com:8443"}, "https://api.example.com/x", false},
		// A listed host off the base URL is still refused: the list never widens.
		{"https://api.example.com", []string{"api.example.com", "evil.example.com"}, "https://evil.example.com/x", false},
	}
	for _, tt := range tests {
		s := &Service{Name: "svc", BaseURL: tt.base, AllowedHosts: tt.allowed}
		_, err := s.EndpointOf(tt.url)
		if tt.ok && err != nil {
			t.Errorf("%s with allowed_hosts %v: %v", tt.url, tt.allowed, err)
		}
		if !tt.ok && twokey.ErrorCode(err) != twokey.EHostMismatch {
			t.Errorf("%s with allowed_hosts %v: %v, want host_mismatch", tt.url, tt.allowed, err)
		}
		// Loading agrees: a list without the base URL's host is refused,
		// naming the field.
		addErr := New().Add(&File{Services: []Service{{Name: "svc", BaseURL: tt.base, AllowedHosts: tt.allowed}}}, "ops.yaml")
		baseListed := addErr == nil
		if tt.ok && !baseListed {
			t.Errorf("base %s, allowed_hosts %v: refused at load: %v", tt.base, tt.allowed, addErr)
		}
		if addErr != nil && (!strings.Contains(addErr.Error(), "allowed_hosts") || !strings.Contains(addErr.Error(), "ops.yaml")) {
			t.Errorf("load error does not name the field and file: %v", addErr)
		}
	}
	s := &Service{Name: "svc", BaseURL: "https://api.example.com", AllowedHosts: []string{"other.example.com"}}
	if _, err := s.EndpointOf("https://api.example.com/x"); err == nil || !strings.Contains(err.Error(), "allowed_hosts") {
		t.Errorf("refusal does not name allowed_hosts: %v", err)
	}
	// The default is the base URL's host, and it passes.
	c := New()
	if err := c.Add(&File{Services: []Service{{Name: "svc", BaseURL: "http://127.0.0.1:9000/api"}}}, "ops.yaml"); err != nil {
		t.Fatal(err)
	}
	def, _ := c.Service("svc")
	if len(def.AllowedHosts) != 1 || def.AllowedHosts[0] != "127.0.0.1:9000" {
		t.Fatalf("default allowed_hosts %v", def.AllowedHosts)
	}
	if _, err := def.EndpointOf("http://127.0.0.1:9000/api/x"); err != nil {
		t.Fatal(err)
	}
}
