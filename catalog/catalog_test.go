package catalog

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/templates"
)

var update = flag.Bool("update", false, "rewrite testdata/starter.golden")

func starter(t testing.TB) *Catalog {
	t.Helper()
	c, err := Starter()
	if err != nil {
		t.Fatalf("Starter: %v", err)
	}
	return c
}

// exampleArgs fills every parameter of t with its example.
func exampleArgs(t *templates.Template) map[string]string {
	args := map[string]string{}
	for _, p := range t.Params {
		if p.Example != "" {
			args[p.Name] = p.Example
		}
	}
	return args
}

// TestStarterMatchesProduct checks the starter catalog against PRODUCT.md
// section 4.
func TestStarterMatchesProduct(t *testing.T) {
	c := starter(t)
	wantServices := map[string]struct{ base, auth string }{
		"hackernews":     {"https://hacker-news.firebaseio.com/v0", AuthNone},
		"httpbin":        {"https://httpbin.org", AuthRequired},
		"icanhazdadjoke": {"https://icanhazdadjoke.com", AuthNone},
		"opentdb":        {"https://opentdb.com", AuthNone},
		"dogceo":         {"https://dog.ceo/api", AuthNone},
		"fun":            {"http://127.0.0.1:8081", AuthNone},
	}
	wantTemplates := []struct {
		name, service, method, endpoint string
		m                               int
		risk                            string
		params                          string // name:in:type, comma-separated
	}{
		{"ascii.artify", "fun", "POST", "/ascii", 1, "read", "text:body:string"},
		{"dogs.breed", "dogceo", "GET", "/breed/{breed}/images/random", 1, "read", "breed:path:string"},
		{"dogs.random", "dogceo", "GET", "/breeds/image/random", 1, "read", ""},
		{"hn.get-item", "hackernews", "GET", "/item/{id}.json", 1, "read", "id:path:integer"},
		{"hn.top-stories", "hackernews", "GET", "/topstories.json", 1, "read", ""},
		{"httpbin.echo", "httpbin", "POST", "/post", 2, "write", "data:body:string"},
		{"httpbin.headers", "httpbin", "GET", "/headers", 1, "read", ""},
		{"jokes.dad", "icanhazdadjoke", "GET", "/", 1, "read", ""},
		{"leet.translate", "fun", "POST", "/leet", 1, "read", "text:body:string"},
		{"trivia.random", "opentdb", "GET", "/api.php", 1, "read", ""},
	}
	svcs := c.Services()
	if len(svcs) != len(wantServices) {
		t.Fatalf("%d services, want %d", len(svcs), len(wantServices))
	}
	for i, s := range svcs {
		w, ok := wantServices[s.Name]
		if !ok {
			t.Errorf("unexpected service %q", s.Name)
			continue
		}
		if i > 0 && svcs[i-1].Name >= s.Name {
			t.Errorf("Services not sorted: %q before %q", svcs[i-1].Name, s.Name)
		}
		if s.BaseURL != w.base || s.Auth != w.auth {
			t.Errorf("service %s: base %s auth %s, want %s %s", s.Name, s.BaseURL, s.Auth, w.base, w.auth)
		}
		if s.HeaderName != "Authorization" || s.HeaderTemplate != "Bearer {value}" {
			t.Errorf("service %s: header %s: %s, want the defaults", s.Name, s.HeaderName, s.HeaderTemplate)
		}
		if len(s.AllowedHosts) != 1 || !strings.Contains(w.base, "://"+s.AllowedHosts[0]) {
			t.Errorf("service %s: allowed hosts %v", s.Name, s.AllowedHosts)
		}
		if s.Description == "" {
			t.Errorf("service %s has no description", s.Name)
		}
	}
	tmpls := c.Templates()
	if len(tmpls) != len(wantTemplates) {
		t.Fatalf("%d templates, want %d", len(tmpls), len(wantTemplates))
	}
	for i, w := range wantTemplates {
		tm := tmpls[i]
		var params []string
		for _, p := range tm.Params {
			params = append(params, p.Name+":"+p.In+":"+p.Type)
			if p.Description == "" || p.Example == "" {
				t.Errorf("template %s param %s lacks a description or an example", tm.Name, p.Name)
			}
			if !p.Required {
				t.Errorf("template %s param %s is not required", tm.Name, p.Name)
			}
		}
		got := fmt.Sprint(tm.Name, tm.Service, tm.Method, tm.Endpoint, tm.SuggestedApprovals, tm.Risk, strings.Join(params, ","))
		want := fmt.Sprint(w.name, w.service, w.method, w.endpoint, w.m, w.risk, w.params)
		if got != want {
			t.Errorf("template %d:\n got %s\nwant %s", i, got, want)
		}
		if tm.Description == "" {
			t.Errorf("template %s has no description", tm.Name)
		}
	}
	if tm, _ := c.Template("jokes.dad"); tm.Headers["Accept"] != "application/json" {
		t.Errorf("jokes.dad headers %v", tm.Headers)
	}
	if tm, _ := c.Template("trivia.random"); len(tm.Query) != 1 || tm.Query["amount"] != "1" {
		t.Errorf("trivia.random query %v", tm.Query)
	}
}

// TestStarterResolves resolves every starter template with its examples and
// checks the URL against the service's EndpointOf and the template's
// endpoint pattern.
func TestStarterResolves(t *testing.T) {
	c := starter(t)
	for _, tm := range c.Templates() {
		r, s, err := c.Resolve(tm.Name, exampleArgs(tm))
		if err != nil {
			t.Errorf("Resolve %s: %v", tm.Name, err)
			continue
		}
		if s.Name != tm.Service {
			t.Errorf("Resolve %s: service %s", tm.Name, s.Name)
		}
		p, err := s.EndpointOf(r.URL)
		if err != nil || p != r.Path {
			t.Errorf("%s: EndpointOf(%s) = %q, %v; want %q", tm.Name, r.URL, p, err, r.Path)
		}
		if !templates.MatchEndpoint(tm.Endpoint, r.Path) {
			t.Errorf("%s: path %s does not match %s", tm.Name, r.Path, tm.Endpoint)
		}
		// Without arguments, templates with params say which are missing.
		if len(tm.Params) > 0 {
			_, _, err := c.Resolve(tm.Name, nil)
			if err == nil || !strings.Contains(err.Error(), "missing required parameter") {
				t.Errorf("%s without args: %v", tm.Name, err)
			}
		}
	}
	if _, _, err := c.Resolve("no.such", nil); err == nil || !strings.Contains(err.Error(), `unknown template "no.such"`) {
		t.Errorf("unknown template: %v", err)
	}
}

// render writes one resolved template for the golden file.
func render(b *strings.Builder, c *Catalog, tm *templates.Template) {
	args := exampleArgs(tm)
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k+"="+args[k])
	}
	sort.Strings(keys)
	fmt.Fprintf(b, "== %s (service %s, risk %s, suggested M %d)\n", tm.Name, tm.Service, tm.Risk, tm.SuggestedApprovals)
	fmt.Fprintf(b, "args: %s\n", strings.Join(keys, " "))
	r, _, err := c.Resolve(tm.Name, args)
	if err != nil {
		fmt.Fprintf(b, "error: %v\n\n", err)
		return
	}
	fmt.Fprintf(b, "%s %s\n", r.Method, r.URL)
	hs := make([]string, 0, len(r.Headers))
	for k, v := range r.Headers {
		hs = append(hs, k+": "+v)
	}
	sort.Strings(hs)
	for _, h := range hs {
		fmt.Fprintln(b, h)
	}
	if r.Body != nil {
		fmt.Fprintf(b, "body: %s\n", r.Body)
	}
	b.WriteString("\n")
}

func TestStarterGolden(t *testing.T) {
	c := starter(t)
	var b strings.Builder
	for _, tm := range c.Templates() {
		render(&b, c, tm)
	}
	golden := filepath.Join("testdata", "starter.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./catalog -run Golden -update to write it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("resolved starter templates differ from %s (rerun with -update if the change is intended):\n%s", golden, diff(string(want), got))
	}
}

// diff shows the first differing line.
func diff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\nwant %q\n got %q", i+1, w, g)
		}
	}
	return "(no line differs)"
}

func TestOverride(t *testing.T) {
	c := starter(t)
	if err := c.OverrideBaseURL("httpbin", "http://127.0.0.1:9000/"); err != nil {
		t.Fatal(err)
	}
	r, s, err := c.Resolve("httpbin.echo", map[string]string{"data": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if r.URL != "http://127.0.0.1:9000/post" || s.BaseURL != "http://127.0.0.1:9000/" {
		t.Fatalf("after override: %s, base %s", r.URL, s.BaseURL)
	}
	if len(s.AllowedHosts) != 1 || s.AllowedHosts[0] != "127.0.0.1:9000" {
		t.Fatalf("allowed hosts %v", s.AllowedHosts)
	}
	if _, err := s.EndpointOf("https://httpbin.org/post"); twokey.ErrorCode(err) != twokey.EHostMismatch {
		t.Fatalf("the old host is still accepted: %v", err)
	}
	// Other services are untouched, and the overridden one keeps its auth.
	if hn, _ := c.Service("hackernews"); hn.BaseURL != "https://hacker-news.firebaseio.com/v0" {
		t.Fatalf("hackernews changed: %s", hn.BaseURL)
	}
	if s.Auth != AuthRequired {
		t.Fatalf("auth %s", s.Auth)
	}

	err = c.OverrideBaseURL("nosuch", "http://127.0.0.1:9000")
	if err == nil || !strings.Contains(err.Error(), `service "nosuch"`) ||
		!strings.Contains(err.Error(), "known: dogceo, fun, hackernews, httpbin, icanhazdadjoke, opentdb") {
		t.Fatalf("unknown service: %v", err)
	}
	for _, bad := range []string{"", "127.0.0.1:9000", "ftp://h/", "http://u:p@h/", "http://h/?x=1", "http://h/#f", "http://h/a/../b"} {
		if err := c.OverrideBaseURL("httpbin", bad); err == nil {
			t.Errorf("OverrideBaseURL(%q) accepted", bad)
		}
	}
	if s, _ := c.Service("httpbin"); s.BaseURL != "http://127.0.0.1:9000/" {
		t.Fatalf("a refused override changed the base URL to %s", s.BaseURL)
	}
}

func TestParseOverride(t *testing.T) {
	tests := []struct {
		in, name, url, err string
	}{
		{"httpbin=http://127.0.0.1:9000", "httpbin", "http://127.0.0.1:9000", ""},
		{"hackernews=http://127.0.0.1:9000/v0", "hackernews", "http://127.0.0.1:9000/v0", ""},
		{"fun=http://localhost:8081/x=y", "fun", "http://localhost:8081/x=y", ""},
		{"httpbin", "", "", "is not NAME=URL"},
		{"=http://h", "", "", "is not NAME=URL"},
		{"httpbin=", "", "", "is not NAME=URL"},
		{"Bad Name=http://h", "", "", "is not a service name"},
		{"httpbin=127.0.0.1:9000", "", "", "is not an absolute URL"},
		{"httpbin=http://user@h", "", "", "userinfo"},
	}
	for _, tt := range tests {
		name, u, err := ParseOverride(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseOverride(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || name != tt.name || u != tt.url {
			t.Errorf("ParseOverride(%q) = %q, %q, %v", tt.in, name, u, err)
		}
	}
}

const goodFile = `services:
  - name: stripe
    base_url: https://api.stripe.com/v1
    header_name: Authorization
    auth: required
templates:
  - name: stripe.charge
    service: stripe
    method: POST
    endpoint: /charges
    params:
      - name: amount
        in: body
        type: integer
        required: true
    suggested_approvals: 3
    risk: write
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings, in order
	}{
		{"unknown template field", strings.Replace(goodFile, "    risk: write", "    risk: write\n    color: blue", 1),
			[]string{"ops.yaml:18:", `template "stripe.charge"`, `field "color" is not known; the fields are: name, service, method, endpoint, params`}},
		{"unknown param field", strings.Replace(goodFile, "        required: true", "        required: true\n        min: 1", 1),
			[]string{"ops.yaml:16:", `template "stripe.charge"`, `field "min" is not known; the fields are: name, in, type, required`}},
		{"unknown service field", strings.Replace(goodFile, "    auth: required", "    auth: required\n    token: sk_live_x", 1),
			[]string{"ops.yaml:6:", `service "stripe"`, `field "token" is not known; the fields are: name, base_url`}},
		{"unknown top-level field", goodFile + "extras: 1\n",
			[]string{"ops.yaml:18:", `field "extras" is not known; the fields are: services, templates`}},
		{"wrong type", strings.Replace(goodFile, "suggested_approvals: 3", "suggested_approvals: three", 1),
			[]string{"ops.yaml:16:", `template "stripe.charge"`, `field "suggested_approvals"`, "cannot unmarshal"}},
		{"bad method", strings.Replace(goodFile, "method: POST", "method: FETCH", 1),
			[]string{"ops.yaml:7:", `template "stripe.charge"`, `method "FETCH" is not one of GET, POST`}},
		{"undeclared placeholder", strings.Replace(goodFile, "endpoint: /charges", "endpoint: /charges/{id}", 1),
			[]string{"ops.yaml:7:", `template "stripe.charge"`, `endpoint "/charges/{id}" uses placeholder {id}, which is not declared`}},
		{"bad base URL", strings.Replace(goodFile, "https://api.stripe.com/v1", "https://user@api.stripe.com/v1", 1),
			[]string{"ops.yaml:2:", `service "stripe"`, `base_url "https://user@api.stripe.com/v1" has userinfo`}},
		{"base URL with query", strings.Replace(goodFile, "https://api.stripe.com/v1", "https://api.stripe.com/v1?key=x", 1),
			[]string{"ops.yaml:2:", `service "stripe"`, `has a query`}},
		{"bad auth", strings.Replace(goodFile, "auth: required", "auth: always", 1),
			[]string{"ops.yaml:2:", `service "stripe": auth "always"`}},
		{"bad header template", strings.Replace(goodFile, "    auth: required", "    auth: required\n    header_template: Bearer", 1),
			[]string{"ops.yaml:2:", `service "stripe": header_template "Bearer" does not contain {value}`}},
		{"template twice", goodFile + strings.SplitN(goodFile, "templates:\n", 2)[1],
			[]string{"ops.yaml:18:", `template "stripe.charge" is defined twice (also at line 7)`}},
		{"duplicate key", strings.Replace(goodFile, "    method: POST", "    method: POST\n    method: GET", 1),
			[]string{"ops.yaml:", `template "stripe.charge"`, `already defined`}},
		{"two documents", goodFile + "---\nservices: []\n", []string{"ops.yaml:", "more than one YAML document"}},
		{"empty", "", []string{"ops.yaml: the file is empty"}},
		{"syntax error", "services:\n  - name: [x\n", []string{"ops.yaml: "}},
		{"not a mapping", "- a\n- b\n", []string{"ops.yaml:1:", "cannot unmarshal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("ops.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse: no error")
			}
			if twokey.ErrorCode(err) != twokey.EBadPayload {
				t.Errorf("code %s", twokey.ErrorCode(err))
			}
			msg, rest := err.Error(), err.Error()
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q\ndoes not contain %q (after the earlier parts)", msg, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
	if _, err := Parse("ops.yaml", []byte(goodFile)); err != nil {
		t.Fatalf("good file: %v", err)
	}
}

func TestAdd(t *testing.T) {
	c := starter(t)
	f, err := Parse("ops.yaml", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Add(f, "ops.yaml"); err != nil {
		t.Fatal(err)
	}
	s, ok := c.Service("stripe")
	if !ok || s.HeaderTemplate != DefaultHeaderTemplate || s.AllowedHosts[0] != "api.stripe.com" {
		t.Fatalf("stripe: %+v", s)
	}
	// The copy handed out does not change the catalog.
	s.BaseURL = "https://evil.com"
	if s2, _ := c.Service("stripe"); s2.BaseURL != "https://api.stripe.com/v1" {
		t.Fatal("Service returned the catalog's own value")
	}
	tm, _ := c.Template("jokes.dad")
	tm.Headers["Accept"] = "text/html"
	if tm2, _ := c.Template("jokes.dad"); tm2.Headers["Accept"] != "application/json" {
		t.Fatal("Template returned the catalog's own headers")
	}

	// An operator file replaces a starter template and service.
	over := `services:
  - name: dogceo
    base_url: http://127.0.0.1:9999/api
templates:
  - name: dogs.random
    service: dogceo
    method: GET
    endpoint: /breeds/image/random/{n}
    params:
      - {name: n, in: path, type: integer, example: "3"}
    suggested_approvals: 2
    risk: read
`
	f, err = Parse("over.yaml", []byte(over))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Add(f, "over.yaml"); err != nil {
		t.Fatal(err)
	}
	r, _, err := c.Resolve("dogs.random", map[string]string{"n": "3"})
	if err != nil || r.URL != "http://127.0.0.1:9999/api/breeds/image/random/3" {
		t.Fatalf("replaced template: %v %v", r, err)
	}
	if len(c.Templates()) != 11 || len(c.Services()) != 7 {
		t.Fatalf("%d templates, %d services", len(c.Templates()), len(c.Services()))
	}

	tests := []struct {
		name string
		f    *File
		want string
	}{
		{"unknown service", &File{Templates: []templates.Template{{
			Name: "x.y", Service: "nosuch", Method: "GET", Endpoint: "/", SuggestedApprovals: 1, Risk: "read"}}},
			`catalog extra.yaml: template "x.y": service "nosuch" is not in the catalog: define it under services (known: dogceo, fun,`},
		{"key header in template", &File{Templates: []templates.Template{{
			Name: "x.y", Service: "httpbin", Method: "GET", Endpoint: "/", SuggestedApprovals: 1, Risk: "read",
			Headers: map[string]string{"authorization": "Bearer mine"}}}},
			`template "x.y": header "authorization" is service "httpbin"'s key header`},
		{"invalid template", &File{Templates: []templates.Template{{Name: "x.y", Service: "httpbin"}}},
			`catalog extra.yaml: template "x.y": method ""`},
		{"invalid service", &File{Services: []Service{{Name: "s", BaseURL: "https://h.com/a//b"}}},
			`catalog extra.yaml: service "s": base_url "https://h.com/a//b" has a path, "/a//b", that has an empty segment`},
		{"service twice", &File{Services: []Service{{Name: "s", BaseURL: "https://h.com"}, {Name: "s", BaseURL: "https://h.com"}}},
			`service "s" is defined twice`},
		{"replacing a service breaks a template", &File{Services: []Service{{Name: "icanhazdadjoke", BaseURL: "https://icanhazdadjoke.com", HeaderName: "Accept"}}},
			`template "jokes.dad": header "Accept" is service "icanhazdadjoke"'s key header`},
	}
	for _, tt := range tests {
		before := len(c.Templates())
		err := c.Add(&File{Services: append([]Service{{Name: "newsvc", BaseURL: "https://new.example"}}, tt.f.Services...), Templates: tt.f.Templates}, "extra.yaml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Add error %v\nwant one containing %q", tt.name, err, tt.want)
		}
		if _, ok := c.Service("newsvc"); ok || len(c.Templates()) != before {
			t.Errorf("%s: a failed Add added something", tt.name)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ops.yaml")
	if err := os.WriteFile(path, []byte(goodFile), 0o600); err != nil {
		t.Fatal(err)
	}
	c := New()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Template("stripe.charge"); !ok {
		t.Fatal("template not loaded")
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(goodFile, "method: POST", "method: post", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadFile(bad); err == nil || !strings.Contains(err.Error(), bad+":7:") {
		t.Fatalf("LoadFile(bad): %v", err)
	}
	if err := c.LoadFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml: cannot open") {
		t.Fatalf("LoadFile(missing): %v", err)
	}
	var zero Catalog
	if err := zero.Add(&File{Services: []Service{{Name: "s", BaseURL: "https://h.com"}}}, "x"); err != nil {
		t.Fatalf("zero Catalog: %v", err)
	}
}

// TestConcurrent runs readers against OverrideBaseURL and Add; run with
// -race.
func TestConcurrent(t *testing.T) {
	c := starter(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			if err := c.OverrideBaseURL("httpbin", fmt.Sprintf("http://127.0.0.1:%d", 9000+i%2)); err != nil {
				t.Error(err)
				return
			}
			if err := c.Add(&File{Services: []Service{{Name: "extra", BaseURL: "https://extra.example"}}}, "x"); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 200; i++ {
		r, s, err := c.Resolve("httpbin.echo", map[string]string{"data": "x"})
		if err != nil {
			t.Fatal(err)
		}
		if p, err := s.EndpointOf(r.URL); err != nil || p != "/post" {
			t.Fatalf("EndpointOf(%s) under %s = %q, %v", r.URL, s.BaseURL, p, err)
		}
		_ = c.Services()
		_ = c.Templates()
	}
	<-done
}
