package templates

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

const fuzzBase = "https://api.example.com/v1"

// FuzzResolve decodes a template from JSON (as a conversation message
// carries it) and resolves it with newline-separated name=value arguments.
// Whatever the input, a resolved call stays on the base URL, its path is the
// URL's path below the base, has no dot or empty segments, and matches the
// template's endpoint pattern.
func FuzzResolve(f *testing.F) {
	for _, tm := range []*Template{tItem, tFile, tBody, tNoBody, tOptBody} {
		b, err := json.Marshal(tm)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "id=8863\nname=a b\ndata=hi\nn=3")
	}
	f.Fuzz(func(t *testing.T, tmplJSON []byte, argText string) {
		var tm Template
		if err := json.Unmarshal(tmplJSON, &tm); err != nil {
			return
		}
		var lines []string
		if argText != "" {
			lines = strings.Split(argText, "\n")
		}
		args, err := ParseArgs(lines)
		if err != nil {
			return
		}
		r, err := tm.Resolve(fuzzBase, args)
		if err != nil {
			if tm.Validate() == nil && err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if !strings.HasPrefix(r.URL, fuzzBase+r.Path) {
			t.Fatalf("URL %q does not start with base + path %q", r.URL, r.Path)
		}
		if strings.Contains(r.URL, "#") {
			t.Fatalf("URL %q has a '#'", r.URL)
		}
		u, err := url.Parse(r.URL)
		if err != nil {
			t.Fatalf("URL %q does not parse: %v", r.URL, err)
		}
		if u.Scheme != "https" || u.Host != "api.example.com" || u.User != nil {
			t.Fatalf("URL %q left the base URL", r.URL)
		}
		if got := u.EscapedPath(); got != "/v1"+r.Path {
			t.Fatalf("URL %q has path %q, want /v1 + %q", r.URL, got, r.Path)
		}
		if err := CheckPath(r.Path); err != nil {
			t.Fatalf("path %q %v", r.Path, err)
		}
		if !MatchEndpoint(tm.Endpoint, r.Path) {
			t.Fatalf("MatchEndpoint(%q, %q) = false", tm.Endpoint, r.Path)
		}
		hasBody := false
		for _, p := range tm.Params {
			hasBody = hasBody || p.In == InBody
		}
		if hasBody != (r.Body != nil) {
			t.Fatalf("template has body params %v but body is %q", hasBody, r.Body)
		}
		if r.Body != nil {
			var obj map[string]any
			if err := json.Unmarshal(r.Body, &obj); err != nil {
				t.Fatalf("body %q is not a JSON object: %v", r.Body, err)
			}
		}
		r2, err := tm.Resolve(fuzzBase+"/", args)
		if err != nil || r2.URL != r.URL || string(r2.Body) != string(r.Body) {
			t.Fatalf("resolving again gives %v, %v; want %q", r2, err, r.URL)
		}
	})
}

// naiveMatch is MatchEndpoint written the slow, obvious way.
func naiveMatch(segs []segment, s string) bool {
	if len(segs) == 0 {
		return s == ""
	}
	if segs[0].lit != "" {
		return strings.HasPrefix(s, segs[0].lit) && naiveMatch(segs[1:], s[len(segs[0].lit):])
	}
	for i := 1; i <= len(s) && s[i-1] != '/'; i++ {
		if naiveMatch(segs[1:], s[i:]) {
			return true
		}
	}
	return false
}

// FuzzMatchEndpoint compares MatchEndpoint with a naive backtracking matcher.
func FuzzMatchEndpoint(f *testing.F) {
	f.Add("/item/{id}.json", "/item/8863.json")
	f.Add("/item/{id}.json", "/item/a/b.json")
	f.Add("/{a}.{b}", "/x.y.z")
	f.Add("/breed/{breed}/images/random", "/breed//images/random")
	f.Add("/x/(a|b)+", "/x/aaa")
	f.Add("/{a", "/{a")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		got := MatchEndpoint(pattern, path)
		segs, err := parsePattern(pattern)
		if err != nil {
			if got {
				t.Fatalf("MatchEndpoint(%q, %q) = true for an invalid pattern", pattern, path)
			}
			return
		}
		if len(path) > 200 || len(segs) > 12 {
			return // keep the naive matcher's backtracking small
		}
		if want := naiveMatch(segs, path); got != want {
			t.Fatalf("MatchEndpoint(%q, %q) = %v, naive matcher says %v", pattern, path, got, want)
		}
		if got && strings.Count(pattern, "/") != strings.Count(path, "/") {
			t.Fatalf("MatchEndpoint(%q, %q) = true with a different number of segments", pattern, path)
		}
	})
}
