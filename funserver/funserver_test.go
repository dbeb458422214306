package funserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	long := strings.Repeat("x", MaxArtChars+1)
	huge := `{"text": "` + strings.Repeat("a", MaxBodyBytes) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     map[string]string // fields of the JSON response; "*" means any non-empty value
		allow                    string
	}{
		{"leet", "POST", "/leet", `{"text": "Leet is the best"}`, 200,
			map[string]string{"text": "Leet is the best", "leet": "L337 15 7h3 b357"}, ""},
		{"leet all letters", "POST", "/leet", `{"text": "AEIOST aeiost xyz"}`, 200,
			map[string]string{"leet": "431057 431057 xyz"}, ""},
		{"leet empty", "POST", "/leet", `{"text": ""}`, 200, map[string]string{"text": "", "leet": ""}, ""},
		{"leet unicode", "POST", "/leet", `{"text": "ça été"}`, 200, map[string]string{"leet": "ç4 é7é"}, ""},
		{"ascii", "POST", "/ascii", `{"text": "Hi!"}`, 200, map[string]string{"text": "Hi!", "art": Art("HI!")}, ""},
		{"ascii at the limit", "POST", "/ascii", `{"text": "` + long[1:] + `"}`, 200, map[string]string{"art": "*"}, ""},
		{"ascii too long", "POST", "/ascii", `{"text": "` + long + `"}`, 400, map[string]string{"error": "text has 65 characters; /ascii draws at most 64"}, ""},
		{"ascii empty", "POST", "/ascii", `{"text": ""}`, 400, map[string]string{"error": "*"}, ""},
		{"health", "GET", "/health", "", 200, map[string]string{"status": "ok"}, ""},
		{"bad JSON", "POST", "/leet", `{"text": `, 400, map[string]string{"error": "*"}, ""},
		{"not an object", "POST", "/leet", `"hello"`, 400, map[string]string{"error": "*"}, ""},
		{"text not a string", "POST", "/leet", `{"text": 3}`, 400, map[string]string{"error": "*"}, ""},
		{"no text", "POST", "/leet", `{}`, 400, map[string]string{"error": `the body has no text: send {"text": "..."}`}, ""},
		{"unknown field", "POST", "/ascii", `{"text": "a", "font": "big"}`, 400, map[string]string{"error": "*"}, ""},
		{"trailing data", "POST", "/leet", `{"text": "a"} {"text": "b"}`, 400, map[string]string{"error": "*"}, ""},
		{"empty body", "POST", "/leet", ``, 400, map[string]string{"error": "*"}, ""},
		{"body too large", "POST", "/leet", huge, 413, map[string]string{"error": "the body is larger than 65536 bytes"}, ""},
		{"GET leet", "GET", "/leet", "", 405, map[string]string{"error": "*"}, "POST"},
		{"PUT ascii", "PUT", "/ascii", `{"text": "a"}`, 405, map[string]string{"error": "*"}, "POST"},
		{"POST health", "POST", "/health", "", 405, map[string]string{"error": "*"}, "GET, HEAD"},
		{"unknown path", "GET", "/nope", "", 404, map[string]string{"error": "*"}, ""},
		{"path below a route", "POST", "/leet/x", `{"text": "a"}`, 404, map[string]string{"error": "*"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q", ct)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Fatalf("Allow %q, want %q", got, tt.allow)
			}
			var got map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatalf("response is not a JSON object of strings: %v", err)
			}
			if len(got) != len(tt.want) && tt.status != 200 {
				t.Fatalf("response %v, want the fields %v", got, tt.want)
			}
			for k, v := range tt.want {
				if g, ok := got[k]; !ok || (v == "*" && g == "") || (v != "*" && g != v) {
					t.Fatalf("response field %s = %q, want %q (response %v)", k, g, v, got)
				}
			}
		})
	}
}

func TestArt(t *testing.T) {
	hi := strings.Join([]string{
		"#   # #####",
		"#   #   #",
		"#####   #",
		"#   #   #",
		"#   # #####",
	}, "\n")
	tests := []struct{ in, want string }{
		{"HI", hi},
		{"hi", hi},
		{"é", Art("?")},
		{"a€b", Art("A?B")},
		{"!", "#\n#\n#\n\n#"},
	}
	for _, tt := range tests {
		if got := Art(tt.in); got != tt.want {
			t.Errorf("Art(%q) =\n%s\nwant\n%s", tt.in, got, tt.want)
		}
	}
	t.Logf("\n%s", Art("TWOKEY 2-of-3!?"))
}

// TestFont checks that every glyph has five rows of one width and that the
// promised characters are all there.
func TestFont(t *testing.T) {
	for r, g := range font {
		for i, row := range g {
			if len(row) != len(g[0]) || len(row) == 0 {
				t.Errorf("glyph %q row %d is %d wide, row 0 is %d", r, i, len(row), len(g[0]))
			}
			if strings.Trim(row, "# ") != "" {
				t.Errorf("glyph %q row %d has characters other than '#' and ' '", r, i)
			}
		}
	}
	for _, r := range "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !?.,-:'+=/()" {
		if _, ok := font[r]; !ok {
			t.Errorf("glyph %q is missing", r)
		}
	}
}

func TestLeet(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"leet", "l337"},
		{"ATTEST", "477357"},
		{"twokey is elite", "7w0k3y 15 3l173"},
		{"xyz 123", "xyz 123"},
	}
	for _, tt := range tests {
		if got := Leet(tt.in); got != tt.want {
			t.Errorf("Leet(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
