package templates

import "testing"

// BenchmarkResolve fills a template with a path, a query and a body
// parameter: the work behind 'twokey request --preview' and each request
// made from a template.
func BenchmarkResolve(b *testing.B) {
	t := &Template{Name: "bench.issue", Service: "github", Method: "POST", Endpoint: "/repos/{owner}/{repo}/issues",
		Params: []Param{
			{Name: "owner", In: InPath, Required: true},
			{Name: "repo", In: InPath, Required: true},
			{Name: "dry_run", In: InQuery, Type: "boolean", Default: "false"},
			{Name: "title", In: InBody, Required: true},
			{Name: "priority", In: InBody, Type: "integer", Default: "3"},
		},
		SuggestedApprovals: 2, Risk: "write", Query: map[string]string{"via": "twokey"}}
	args := map[string]string{"owner": "twokey", "repo": "twokey", "title": "Bench: resolve a template"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Resolve("https://api.github.com", args); err != nil {
			b.Fatal(err)
		}
	}
}
