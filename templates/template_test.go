package templates

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/twokey/twokey"
)

// good returns a valid template for the Validate table to break.
func good() *Template {
	return &Template{
		Name:     "demo.get-thing",
		Service:  "demo",
		Method:   "GET",
		Endpoint: "/things/{id}.json",
		Params: []Param{
			{Name: "id", In: InPath, Type: TypeInteger, Description: "the thing", Example: "42"},
			{Name: "limit", In: InQuery, Type: TypeInteger, Default: "10"},
		},
		SuggestedApprovals: 1,
		Risk:               RiskRead,
		Headers:            map[string]string{"Accept": "application/json"},
		Query:              map[string]string{"v": "1"},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *Template)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(t *Template) {}, ""},
		{"root endpoint", func(t *Template) { t.Endpoint = "/"; t.Params = nil }, ""},
		{"trailing slash", func(t *Template) { t.Endpoint = "/things/{id}/" }, ""},
		{"two placeholders in a segment", func(t *Template) {
			t.Endpoint = "/{id}.{fmt}"
			t.Params = append(t.Params, Param{Name: "fmt", In: InPath})
		}, ""},
		{"body on POST", func(t *Template) {
			t.Method = "POST"
			t.Params = append(t.Params, Param{Name: "data", In: InBody, Required: true})
		}, ""},
		{"name upper case", func(t *Template) { t.Name = "Demo" }, `template name "Demo" is not valid`},
		{"name empty", func(t *Template) { t.Name = "" }, `template name "" is not valid`},
		{"name leading dot", func(t *Template) { t.Name = ".demo" }, `template name ".demo"`},
		{"name too long", func(t *Template) { t.Name = strings.Repeat("a", 65) }, `is not valid`},
		{"service missing", func(t *Template) { t.Service = "" }, `template "demo.get-thing": service is missing`},
		{"service bad", func(t *Template) { t.Service = "Demo Service" }, `service "Demo Service"`},
		{"method lower case", func(t *Template) { t.Method = "get" }, `method "get" is not one of GET, POST`},
		{"method unknown", func(t *Template) { t.Method = "FETCH" }, `method "FETCH"`},
		{"method empty", func(t *Template) { t.Method = "" }, `method ""`},
		{"endpoint missing", func(t *Template) { t.Endpoint = "" }, `endpoint is missing`},
		{"endpoint relative", func(t *Template) { t.Endpoint = "things/{id}" }, `must start with '/'`},
		{"endpoint query", func(t *Template) { t.Endpoint = "/things/{id}?x=1" }, `contains '?'`},
		{"endpoint fragment", func(t *Template) { t.Endpoint = "/things/{id}#x" }, `contains '#'`},
		{"endpoint percent", func(t *Template) { t.Endpoint = "/th%69ngs/{id}" }, `contains '%'`},
		{"endpoint space", func(t *Template) { t.Endpoint = "/my things/{id}" }, `contains " "`},
		{"endpoint backslash", func(t *Template) { t.Endpoint = `/things\{id}` }, `contains "\\"`},
		{"endpoint double slash", func(t *Template) { t.Endpoint = "/things//{id}" }, `has an empty segment ("//")`},
		{"endpoint dot dot", func(t *Template) { t.Endpoint = "/things/../{id}" }, `has a dot segment ("..")`},
		{"endpoint dot dot semicolon", func(t *Template) { t.Endpoint = "/things/..;x/{id}" }, `has a dot segment ("..;x")`},
		{"endpoint dot", func(t *Template) { t.Endpoint = "/./{id}" }, `has a dot segment (".")`},
		{"undeclared placeholder", func(t *Template) { t.Endpoint = "/things/{id}/{sub}" }, `placeholder {sub}, which is not declared`},
		{"placeholder of query param", func(t *Template) { t.Endpoint = "/things/{id}/{limit}" }, `param "limit" has in: query`},
		{"placeholder twice", func(t *Template) { t.Endpoint = "/things/{id}/{id}" }, `{id} 2 times`},
		{"path param unused", func(t *Template) { t.Endpoint = "/things" }, `param "id" has in: path but the endpoint "/things" has no {id}`},
		{"adjacent placeholders", func(t *Template) {
			t.Endpoint = "/{id}{fmt}"
			t.Params = append(t.Params, Param{Name: "fmt", In: InPath})
		}, `next to each other`},
		{"unclosed brace", func(t *Template) { t.Endpoint = "/things/{id" }, `'{' without a '}'`},
		{"stray close brace", func(t *Template) { t.Endpoint = "/things/id}" }, `'}' without a '{'`},
		{"empty placeholder", func(t *Template) { t.Endpoint = "/things/{}/{id}" }, `placeholder {}`},
		{"duplicate param", func(t *Template) { t.Params = append(t.Params, Param{Name: "limit", In: InQuery}) }, `param "limit" is declared twice`},
		{"param name bad", func(t *Template) { t.Params[1].Name = "my limit" }, `param name "my limit"`},
		{"param in missing", func(t *Template) { t.Params[1].In = "" }, `param "limit": in is missing`},
		{"param in bad", func(t *Template) { t.Params[1].In = "header" }, `param "limit": in "header"`},
		{"param type bad", func(t *Template) { t.Params[1].Type = "int" }, `param "limit": type "int"`},
		{"default not integer", func(t *Template) { t.Params[1].Default = "ten" }, `param "limit": default "ten" is not an integer`},
		{"default not number", func(t *Template) { t.Params[1].Type = TypeNumber; t.Params[1].Default = "NaN" }, `is not a finite number`},
		{"default not boolean", func(t *Template) { t.Params[1].Type = TypeBoolean; t.Params[1].Default = "yes" }, `is not a boolean`},
		{"required and default", func(t *Template) { t.Params[1].Required = true }, `param "limit" is required and has a default`},
		{"path default traversal", func(t *Template) { t.Params[0].Type = ""; t.Params[0].Default = ".." }, `param "id": default ".."`},
		{"example not integer", func(t *Template) { t.Params[0].Example = "x" }, `param "id": example "x" is not an integer`},
		{"risk missing", func(t *Template) { t.Risk = "" }, `risk is missing`},
		{"risk bad", func(t *Template) { t.Risk = "danger" }, `risk "danger"`},
		{"suggested zero", func(t *Template) { t.SuggestedApprovals = 0 }, `suggested_approvals is 0`},
		{"body on GET", func(t *Template) { t.Params = append(t.Params, Param{Name: "data", In: InBody}) }, `method GET cannot carry body params`},
		{"fixed query conflict", func(t *Template) { t.Query["limit"] = "5" }, `param "limit" is also a fixed query parameter`},
		{"fixed query empty name", func(t *Template) { t.Query[""] = "5" }, `query has an empty parameter name`},
		{"header forbidden", func(t *Template) { t.Headers["Host"] = "evil.com" }, `header "Host" is set by the gateway`},
		{"header bad name", func(t *Template) { t.Headers["Bad Header"] = "x" }, `header name "Bad Header"`},
		{"header twice", func(t *Template) { t.Headers["accept"] = "text/plain" }, `are the same header`},
		{"header newline", func(t *Template) { t.Headers["X-A"] = "a\r\nHost: evil" }, `header "X-A" has a value with control characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := good()
			tt.change(tm)
			err := tm.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate error %q\ndoes not contain %q", err, tt.want)
			}
			if code := twokey.ErrorCode(err); code != twokey.EBadPayload {
				t.Fatalf("code %q, want %q", code, twokey.EBadPayload)
			}
			if tm.Name != "" && ValidName(tm.Name) && !strings.Contains(err.Error(), `template "`+tm.Name+`"`) {
				t.Fatalf("error %q does not name the template", err)
			}
		})
	}
}

const base = "http://127.0.0.1:9000/v0"

var (
	tItem = &Template{
		Name: "hn.get-item", Service: "hackernews", Method: "GET", Endpoint: "/item/{id}.json",
		Params:             []Param{{Name: "id", In: InPath, Type: TypeInteger, Required: true, Example: "8863"}},
		SuggestedApprovals: 1, Risk: RiskRead,
	}
	tFile = &Template{
		Name: "files.get", Service: "files", Method: "GET", Endpoint: "/files/{name}/raw",
		Params: []Param{
			{Name: "name", In: InPath},
			{Name: "q", In: InQuery},
			{Name: "limit", In: InQuery, Type: TypeInteger, Default: "10"},
			{Name: "all", In: InQuery, Type: TypeBoolean},
		},
		Query:              map[string]string{"v": "1"},
		Headers:            map[string]string{"Accept": "application/json"},
		SuggestedApprovals: 1, Risk: RiskRead,
	}
	tBody = &Template{
		Name: "echo", Service: "httpbin", Method: "POST", Endpoint: "/post",
		Params: []Param{
			{Name: "data", In: InBody, Required: true, Example: "hello"},
			{Name: "n", In: InBody, Type: TypeInteger},
			{Name: "ok", In: InBody, Type: TypeBoolean},
			{Name: "f", In: InBody, Type: TypeNumber},
			{Name: "opt", In: InBody, Default: "x"},
		},
		SuggestedApprovals: 2, Risk: RiskWrite,
	}
	tNoBody = &Template{
		Name: "post-empty", Service: "s", Method: "POST", Endpoint: "/",
		SuggestedApprovals: 1, Risk: RiskWrite,
	}
	tOptBody = &Template{
		Name: "post-opt", Service: "s", Method: "POST", Endpoint: "/opt",
		Params:             []Param{{Name: "x", In: InBody}},
		Headers:            map[string]string{"content-type": "application/vnd.api+json"},
		SuggestedApprovals: 1, Risk: RiskWrite,
	}
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name     string
		tmpl     *Template
		base     string
		args     map[string]string
		url      string // full URL wanted
		path     string
		body     string // "" means nil
		headers  map[string]string
		wantErrs []string // substrings, in order, of the error
	}{
		{name: "integer path", tmpl: tItem, args: map[string]string{"id": "8863"},
			url: base + "/item/8863.json", path: "/item/8863.json", headers: map[string]string{}},
		{name: "integer canonical", tmpl: tItem, args: map[string]string{"id": "+0042"},
			url: base + "/item/42.json", path: "/item/42.json", headers: map[string]string{}},
		{name: "base with trailing slash", tmpl: tItem, base: base + "/", args: map[string]string{"id": "1"},
			url: base + "/item/1.json", path: "/item/1.json", headers: map[string]string{}},
		{name: "integer path not integer", tmpl: tItem, args: map[string]string{"id": "abc"},
			wantErrs: []string{`template "hn.get-item"`, `parameter "id": value "abc" is not an integer`}},
		{name: "integer out of range", tmpl: tItem, args: map[string]string{"id": "99999999999999999999999"},
			wantErrs: []string{`parameter "id": value "99999999999999999999999" is out of range: an integer here is from -9223372036854775808 to 9223372036854775807`}},
		{name: "integer out of range below", tmpl: tItem, args: map[string]string{"id": "-99999999999999999999999"},
			wantErrs: []string{`is out of range`}},
		{name: "integer path traversal", tmpl: tItem, args: map[string]string{"id": "../1"},
			wantErrs: []string{`parameter "id"`, `not an integer`}},
		{name: "missing required", tmpl: tItem, args: nil,
			wantErrs: []string{`missing required parameter "id" (e.g. id=8863)`}},
		{name: "missing and unknown, all named and sorted", tmpl: tItem, args: map[string]string{"zz": "1", "aa": "2"},
			wantErrs: []string{`missing required parameter "id"`, `unknown parameters "aa", "zz": the template takes id`}},
		{name: "unknown on a template without params", tmpl: tNoBody, args: map[string]string{"x": "1"},
			wantErrs: []string{`unknown parameter "x": the template takes no parameters`}},
		{name: "all kinds of error at once", tmpl: tBody, args: map[string]string{"n": "1.5", "ok": "maybe", "nope": ""},
			wantErrs: []string{`missing required parameter "data" (e.g. data=hello)`, `unknown parameter "nope"`,
				`parameter "n": value "1.5" is not an integer`, `parameter "ok": value "maybe" is not a boolean`}},

		// Path traversal and separator attempts.
		{name: "dot dot", tmpl: tFile, args: map[string]string{"name": ".."}, wantErrs: []string{`parameter "name": value ".." is a dot segment`}},
		{name: "dot", tmpl: tFile, args: map[string]string{"name": "."}, wantErrs: []string{`value "." is a dot segment`}},
		{name: "slash", tmpl: tFile, args: map[string]string{"name": "a/b"}, wantErrs: []string{`value "a/b" contains '/'`}},
		{name: "encoded dot dot", tmpl: tFile, args: map[string]string{"name": "%2e%2e"}, wantErrs: []string{`value "%2e%2e" decodes to "..", which is a dot segment`}},
		{name: "encoded dot dot upper", tmpl: tFile, args: map[string]string{"name": "%2E."}, wantErrs: []string{`is a dot segment`}},
		{name: "double encoded dot dot", tmpl: tFile, args: map[string]string{"name": "%252e%252e"}, wantErrs: []string{`is a dot segment`}},
		{name: "encoded slash", tmpl: tFile, args: map[string]string{"name": "a%2fb"}, wantErrs: []string{`contains '/'`}},
		{name: "double encoded slash", tmpl: tFile, args: map[string]string{"name": "a%252Fb"}, wantErrs: []string{`contains '/'`}},
		{name: "backslash", tmpl: tFile, args: map[string]string{"name": `a\b`}, wantErrs: []string{`contains '/' or '\'`}},
		{name: "encoded backslash", tmpl: tFile, args: map[string]string{"name": `..%5c..`}, wantErrs: []string{`contains '/' or '\'`}},
		{name: "empty", tmpl: tFile, args: map[string]string{"name": ""}, wantErrs: []string{`value "" is empty`}},
		{name: "control character", tmpl: tFile, args: map[string]string{"name": "a\nb"}, wantErrs: []string{`control character`}},
		{name: "invalid utf-8", tmpl: tFile, args: map[string]string{"name": "a\xffb"}, wantErrs: []string{`not valid UTF-8`}},

		// Escaping.
		{name: "path escaping", tmpl: tFile, args: map[string]string{"name": "a b?c#d ü%"},
			url:  base + "/files/a%20b%3Fc%23d%20%C3%BC%25/raw?limit=10&v=1",
			path: "/files/a%20b%3Fc%23d%20%C3%BC%25/raw", headers: map[string]string{"Accept": "application/json"}},
		{name: "dots inside a value are fine", tmpl: tFile, args: map[string]string{"name": "..a.", "all": "1"},
			url:  base + "/files/..a./raw?all=true&limit=10&v=1",
			path: "/files/..a./raw", headers: map[string]string{"Accept": "application/json"}},
		{name: "percent that is not an escape", tmpl: tFile, args: map[string]string{"name": "100%"},
			url:  base + "/files/100%25/raw?limit=10&v=1",
			path: "/files/100%25/raw", headers: map[string]string{"Accept": "application/json"}},
		{name: "query escaping and order", tmpl: tFile, args: map[string]string{"name": "x", "q": "a b&c=d?#ü+", "limit": "3"},
			url:  base + "/files/x/raw?limit=3&q=a+b%26c%3Dd%3F%23%C3%BC%2B&v=1",
			path: "/files/x/raw", headers: map[string]string{"Accept": "application/json"}},
		{name: "empty query value is sent", tmpl: tFile, args: map[string]string{"name": "x", "q": ""},
			url:  base + "/files/x/raw?limit=10&q=&v=1",
			path: "/files/x/raw", headers: map[string]string{"Accept": "application/json"}},

		// Body.
		{name: "typed body with default", tmpl: tBody, args: map[string]string{"data": "<hi & \"bye\">", "n": "007", "ok": "true", "f": "2.50"},
			url: base + "/post", path: "/post", body: `{"data":"<hi & \"bye\">","f":2.5,"n":7,"ok":true,"opt":"x"}`,
			headers: map[string]string{"Content-Type": "application/json"}},
		{name: "body false and exponent", tmpl: tBody, args: map[string]string{"data": "", "ok": "false", "f": "1e21", "opt": "y"},
			url: base + "/post", path: "/post", body: `{"data":"","f":1e+21,"ok":false,"opt":"y"}`,
			headers: map[string]string{"Content-Type": "application/json"}},
		{name: "no body params gives no body", tmpl: tNoBody, args: nil,
			url: base + "/", path: "/", headers: map[string]string{}},
		{name: "optional body params give an empty object", tmpl: tOptBody, args: nil,
			url: base + "/opt", path: "/opt", body: `{}`,
			headers: map[string]string{"content-type": "application/vnd.api+json"}},
		{name: "number infinity", tmpl: tBody, args: map[string]string{"data": "x", "f": "Inf"},
			wantErrs: []string{`parameter "f": value "Inf" is not a finite number`}},

		// Base URL.
		{name: "base with query", tmpl: tItem, base: "http://h/v0?x=1", args: map[string]string{"id": "1"}, wantErrs: []string{`base URL`}},
		{name: "base relative", tmpl: tItem, base: "/v0", args: map[string]string{"id": "1"}, wantErrs: []string{`base URL "/v0" is not an absolute`}},
		{name: "invalid template", tmpl: &Template{Name: "x"}, args: nil, wantErrs: []string{`template "x": service is missing`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.base
			if b == "" {
				b = base
			}
			r, err := tt.tmpl.Resolve(b, tt.args)
			if len(tt.wantErrs) > 0 {
				if err == nil {
					t.Fatalf("Resolve: no error, got %+v", r)
				}
				msg := err.Error()
				rest := msg
				for _, w := range tt.wantErrs {
					i := strings.Index(rest, w)
					if i < 0 {
						t.Fatalf("error %q\ndoes not contain %q (after the earlier parts)", msg, w)
					}
					rest = rest[i+len(w):]
				}
				if code := twokey.ErrorCode(err); code != twokey.EBadPayload {
					t.Fatalf("code %q, want bad_payload", code)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if r.Method != tt.tmpl.Method || r.URL != tt.url || r.Path != tt.path {
				t.Fatalf("got %s %s (path %s)\nwant %s %s (path %s)", r.Method, r.URL, r.Path, tt.tmpl.Method, tt.url, tt.path)
			}
			if got := string(r.Body); got != tt.body || (tt.body == "") != (r.Body == nil) {
				t.Fatalf("body %q (nil %v), want %q", got, r.Body == nil, tt.body)
			}
			if len(r.Headers) != len(tt.headers) {
				t.Fatalf("headers %v, want %v", r.Headers, tt.headers)
			}
			for k, v := range tt.headers {
				if r.Headers[k] != v {
					t.Fatalf("headers %v, want %v", r.Headers, tt.headers)
				}
			}
			if !MatchEndpoint(tt.tmpl.Endpoint, r.Path) {
				t.Fatalf("MatchEndpoint(%q, %q) = false for a resolved path", tt.tmpl.Endpoint, r.Path)
			}
		})
	}
}

// TestResolveDoesNotShareHeaders checks that changing a resolved call's
// headers leaves the template alone.
func TestResolveDoesNotShareHeaders(t *testing.T) {
	r, err := tFile.Resolve(base, map[string]string{"name": "x"})
	if err != nil {
		t.Fatal(err)
	}
	r.Headers["Accept"] = "text/html"
	if tFile.Headers["Accept"] != "application/json" {
		t.Fatal("Resolve returned the template's own header map")
	}
}

func TestMatchEndpoint(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"/item/{id}.json", "/item/8863.json", true},
		{"/item/{id}.json", "/item/a%2Fb.json", true},
		{"/item/{id}.json", "/item/.json", false},
		{"/item/{id}.json", "/item/a/b.json", false},
		{"/item/{id}.json", "/item/8863.jsonx", false},
		{"/item/{id}.json", "/item/8863.json/", false},
		{"/item/{id}.json", "/items/8863.json", false},
		{"/item/{id}.json", "/ITEM/8863.json", false},
		{"/item/{id}.json", "/item/8863xjson", false}, // '.' is literal, not a regexp
		{"/item/{id}.json", "", false},
		{"/topstories.json", "/topstories.json", true},
		{"/topstories.json", "/topstories.json/", false},
		{"/topstories.json", "/topstoriesXjson", false},
		{"/", "/", true},
		{"/", "", false},
		{"/breed/{breed}/images/random", "/breed/hound/images/random", true},
		{"/breed/{breed}/images/random", "/breed//images/random", false},
		{"/breed/{breed}/images/random", "/breed/a/b/images/random", false},
		{"/{a}.{b}", "/x.y.z", true},
		{"/{a}.{b}", "/x.", false},
		{"/{a}.{b}", "/.y", false},
		{"/{a}", "/x\ny", true},
		{"/things/{id", "/things/{id", false},
		{"/things/id}", "/things/id}", false},
		{"/x/{}", "/x/{}", false},
		{"/x/(a|b)+", "/x/aaa", false},
		{"/x/(a|b)+", "/x/(a|b)+", true},
	}
	for _, tt := range tests {
		if got := MatchEndpoint(tt.pattern, tt.path); got != tt.want {
			t.Errorf("MatchEndpoint(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args []string
		want map[string]string
		err  string
	}{
		{nil, map[string]string{}, ""},
		{[]string{"id=8863"}, map[string]string{"id": "8863"}, ""},
		{[]string{"a=1", "b="}, map[string]string{"a": "1", "b": ""}, ""},
		{[]string{"q=a=b=c"}, map[string]string{"q": "a=b=c"}, ""},
		{[]string{"text=hello world"}, map[string]string{"text": "hello world"}, ""},
		{[]string{"id"}, nil, `argument "id" has no '='`},
		{[]string{"a=1", "=2"}, nil, `argument "=2" has an empty name`},
		{[]string{"a=1", "a=2"}, nil, `parameter "a" is given twice ("a=1" and "a=2")`},
		{[]string{"a=1", "a=1"}, nil, `parameter "a" is given twice`},
	}
	for _, tt := range tests {
		got, err := ParseArgs(tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseArgs(%q) error %v, want one containing %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseArgs(%q): %v", tt.args, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("ParseArgs(%q) = %v, want %v", tt.args, got, tt.want)
		}
		for k, v := range tt.want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("ParseArgs(%q) = %v, want %v", tt.args, got, tt.want)
			}
		}
	}
}

// TestJSONRoundTrip checks the wire names of a template.
func TestJSONRoundTrip(t *testing.T) {
	b, err := json.Marshal(tFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"name":"files.get"`, `"suggested_approvals":1`, `"in":"query"`, `"default":"10"`, `"query":{"v":"1"}`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	var back Template
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := url.Parse(base); err != nil {
		t.Fatal(err)
	}
}

// TestPathValueNamedOnce: a refused path value is named once, and a
// decoded form only when it differs from the value (issue 18).
func TestPathValueNamedOnce(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"a/b", `parameter "name": value "a/b" contains '/' or '\': a path parameter is one path segment`},
		{"..", `parameter "name": value ".." is a dot segment: a path parameter may not be "." or ".."`},
		{"a%2fb", `parameter "name": value "a%2fb" decodes to "a/b", which contains '/' or '\': a path parameter is one path segment`},
		{"%252e%252e", `parameter "name": value "%252e%252e" decodes to "..", which is a dot segment`},
	} {
		_, err := tFile.Resolve(base, map[string]string{"name": tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), fmt.Sprintf("(%q)", tc.value)) {
			t.Errorf("%q: %v\nwant it to say, once: %s", tc.value, err, tc.want)
		}
	}
}

// TestTemplateParseArgs: a mistake in the arguments to a template shows
// that template's own parameter, quoted for a shell, never another
// template's id=8863.
func TestTemplateParseArgs(t *testing.T) {
	breed := &Template{Name: "dogs.breed", Params: []Param{{Name: "breed", In: InPath, Required: true, Example: "hound"}}}
	art := &Template{Name: "ascii.artify", Service: "fun", Method: "POST", Endpoint: "/ascii", SuggestedApprovals: 1, Risk: RiskRead,
		Params: []Param{{Name: "text", In: InBody, Required: true, Example: "hello from twokey"}, {Name: "font", In: InBody}}}
	none := &Template{Name: "dogs.random"}
	for _, tc := range []struct {
		t    *Template
		args []string
		want string
	}{
		{breed, []string{"husky"}, `argument "husky" has no '=': write parameters as name=value, here breed=husky`},
		{breed, []string{"it's"}, `argument "it's" has no '=': write parameters as name=value, here breed='it'\''s'`},
		{breed, []string{"=x"}, `argument "=x" has an empty name: write parameters as name=value, e.g. breed=hound`},
		{art, []string{"hello"}, `argument "hello" has no '=': write parameters as name=value, e.g. 'text=hello from twokey'`},
		{none, []string{"x"}, `argument "x" has no '=': but dogs.random takes no parameters: leave the argument out`},
		{nil, []string{"x"}, `argument "x" has no '=': write parameters as name=value`},
	} {
		var err error
		if tc.t == nil {
			_, err = ParseArgs(tc.args)
		} else {
			_, err = tc.t.ParseArgs(tc.args)
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: %v\nwant %s", tc.args, err, tc.want)
		}
	}
	if kv, err := art.ParseArgs([]string{"text=a b"}); err != nil || kv["text"] != "a b" {
		t.Errorf("a good argument: %v %v", kv, err)
	}
	if got := strings.Join(art.ExampleArgs(), " "); got != `'text=hello from twokey'` {
		t.Errorf("ExampleArgs = %s", got)
	}
	_, err := art.Resolve(base, nil)
	if err == nil || !strings.Contains(err.Error(), `missing required parameter "text" (e.g. 'text=hello from twokey')`) {
		t.Errorf("missing parameter: %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"id=8863":      "id=8863",
		"hound":        "hound",
		"a b":          "'a b'",
		"":             "''",
		"it's":         `'it'\''s'`,
		"$HOME":        "'$HOME'",
		"a;b":          "'a;b'",
		"~x":           "'~x'",
		"x*":           "'x*'",
		"https://h/p":  "https://h/p",
		"two\nlines":   "'two\nlines'",
		"back\\slash":  `'back\slash'`,
		"dq\"uote":     `'dq"uote'`,
		"ünïcode text": "'ünïcode text'",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
