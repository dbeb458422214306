package gate

import "testing"

func TestShadows(t *testing.T) {
	for name, tc := range map[string]struct {
		rules []Rule
		want  int
	}{
		"weaker service rule over a stricter method rule": {[]Rule{{Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 1}, {Service: "*", Endpoint: "*", Method: "POST", RequiredApprovals: 3}}, 1},
		"stricter specific rule shadows nothing":          {[]Rule{{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 3}, {Service: "httpbin", Endpoint: "*", Method: "*", RequiredApprovals: 1}}, 0},
		"disjoint services":                               {[]Rule{{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 1}, {Service: "stripe", Endpoint: "*", Method: "*", RequiredApprovals: 3}}, 0},
		"path under a pattern":                            {[]Rule{{Service: "hn", Endpoint: "/item/1.json", Method: "GET", RequiredApprovals: 1}, {Service: "hn", Endpoint: "/item/{id}.json", Method: "*", RequiredApprovals: 3}}, 1},
		"two spellings of a pattern":                      {[]Rule{{Service: "hn", Endpoint: "/item/{id}.json", Method: "GET", RequiredApprovals: 1}, {Service: "*", Endpoint: "/item/{x}.json", Method: "*", RequiredApprovals: 3}}, 1},
		"trailing slash is the same endpoint":             {[]Rule{{Service: "bank", Endpoint: "/admin/", Method: "GET", RequiredApprovals: 1}, {Service: "bank", Endpoint: "/admin", Method: "*", RequiredApprovals: 3}}, 1},
		"different paths":                                 {[]Rule{{Service: "bank", Endpoint: "/users", Method: "GET", RequiredApprovals: 1}, {Service: "bank", Endpoint: "/admin", Method: "*", RequiredApprovals: 3}}, 0},
		"different methods":                               {[]Rule{{Service: "bank", Endpoint: "/admin", Method: "GET", RequiredApprovals: 1}, {Service: "bank", Endpoint: "*", Method: "POST", RequiredApprovals: 3}}, 0},
	} {
		if got := Shadows(tc.rules); len(got) != tc.want {
			t.Errorf("%s: %d shadows %v, want %d", name, len(got), got, tc.want)
		}
	}
}
