package gate

import "testing"

func TestShadows(t *testing.T) {
	for name, tc := range map[string]struct {
		rules []Rule
		want  int
	}{
		"weaker service rule over a stricter method rule": {[]Rule{{"httpbin", "*", "*", 1}, {"*", "*", "POST", 3}}, 1},
		"stricter specific rule shadows nothing":          {[]Rule{{"httpbin", "/post", "POST", 3}, {"httpbin", "*", "*", 1}}, 0},
		"disjoint services":                               {[]Rule{{"httpbin", "/post", "POST", 1}, {"stripe", "*", "*", 3}}, 0},
		"path under a pattern":                            {[]Rule{{"hn", "/item/1.json", "GET", 1}, {"hn", "/item/{id}.json", "*", 3}}, 1},
		"two spellings of a pattern":                      {[]Rule{{"hn", "/item/{id}.json", "GET", 1}, {"*", "/item/{x}.json", "*", 3}}, 1},
		"trailing slash is the same endpoint":             {[]Rule{{"bank", "/admin/", "GET", 1}, {"bank", "/admin", "*", 3}}, 1},
		"different paths":                                 {[]Rule{{"bank", "/users", "GET", 1}, {"bank", "/admin", "*", 3}}, 0},
		"different methods":                               {[]Rule{{"bank", "/admin", "GET", 1}, {"bank", "*", "POST", 3}}, 0},
	} {
		if got := Shadows(tc.rules); len(got) != tc.want {
			t.Errorf("%s: %d shadows %v, want %d", name, len(got), got, tc.want)
		}
	}
}
