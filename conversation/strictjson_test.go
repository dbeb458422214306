package conversation

import (
	"slices"
	"strings"
	"testing"

	"github.com/twokey/twokey"
)

type checkJSONCase struct {
	name, in string
	ok       bool
}

// checkJSONCases are TestCheckJSON's table and FuzzCheckJSON's seeds.
func checkJSONCases() []checkJSONCase {
	deep := func(n int) string { return `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}` }
	deepObj := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	return []checkJSONCase{
		{"empty object", `{}`, true},
		{"whitespace around", " \n\t{ \"a\" : 1 } \r\n", true},
		{"all value kinds", `{"s":"x","n":-1.5e3,"t":true,"f":false,"z":null,"a":[1,{"b":[]}],"o":{}}`, true},
		{"large number kept", `{"n":123456789012345678901234567890}`, true},
		{"escaped key equal to a field, once", `{"\u0075rl":"x"}`, true},
		{"same key in sibling objects", `{"a":{"k":1},"b":{"k":2}}`, true},
		{"unknown upper-case key", `{"Foo":1}`, true},
		{"field names inside body are opaque", `{"body":{"URL":1,"Key":2}}`, true},
		{"header names are opaque", `{"headers":{"Content-Type":"a","X-Url":"b"}}`, true},
		{"params are opaque", `{"params":{"ID":"1"}}`, true},
		{"depth exactly MaxJSONDepth (object)", deepObj(twokey.MaxJSONDepth), true},
		{"depth exactly MaxJSONDepth (array)", deep(twokey.MaxJSONDepth), true},

		{"empty", ``, false},
		{"whitespace only", `   `, false},
		{"not JSON", `hello`, false},
		{"array", `[]`, false},
		{"string", `"x"`, false},
		{"number", `1`, false},
		{"null", `null`, false},
		{"truncated", `{"a":1`, false},
		{"trailing comma", `{"a":1,}`, false},
		{"two objects", `{}{}`, false},
		{"trailing garbage", `{} x`, false},
		{"single quotes", `{'a':1}`, false},
		{"unquoted key", `{a:1}`, false},
		{"duplicate key", `{"a":1,"a":2}`, false},
		{"duplicate key via escape", `{"url":"a","\u0075rl":"b"}`, false},
		{"duplicate key nested", `{"a":{"b":1,"b":2}}`, false},
		{"duplicate key in an array's object", `{"a":[{"b":1,"b":2}]}`, false},
		{"duplicate key inside body", `{"body":{"x":1,"x":2}}`, false},
		{"keys differing only in case", `{"note":1,"Note":2}`, false},
		{"URL for url", `{"URL":"https://x/"}`, false},
		{"Url for url", `{"Url":"https://x/"}`, false},
		{"case-shifted field nested in members", `{"members":[{"KEY":"x"}]}`, false},
		{"case-shifted field in rules", `{"rules":[{"Service":"x"}]}`, false},
		{"long s for s (U+017F) in service", `{"ſervice":"x"}`, false},
		{"long s duplicate of service", `{"service":"a","ſervice":"b"}`, false},
		{"Kelvin sign for k (U+212A) in key", "{\"\u212aey\":\"x\"}", false},
		{"Kelvin sign duplicate of a free key", "{\"kb\":1,\"\u212ab\":2}", false},
		{"case-shifted created_at", `{"CREATED_AT":"x"}`, false},
		{"depth beyond MaxJSONDepth (object)", deepObj(twokey.MaxJSONDepth + 1), false},
		{"depth beyond MaxJSONDepth (array)", deep(twokey.MaxJSONDepth + 1), false},
		{"very deep", strings.Repeat("[", 100000), false},
		{"invalid escape", `{"a":"\x"}`, false},
		{"control character in string", "{\"a\":\"\x01\"}", false},
		// PROTOCOL 2: a payload is valid UTF-8. encoding/json reads a bad
		// byte as U+FFFD, so without the check the signed bytes and what
		// every reader decodes would differ.
		{"invalid UTF-8 in a string", "{\"text\":\"a\xff\xfeb\"}", false},
		{"invalid UTF-8 in a key", "{\"te\xffxt\":\"a\"}", false},
		{"invalid UTF-8 in body", "{\"body\":{\"x\":\"\xc3\"}}", false},
		{"truncated multibyte sequence", "{\"text\":\"\xe2\x82\"}", false},
		{"overlong encoding of /", "{\"text\":\"\xc0\xaf\"}", false},
		{"UTF-8 encoded surrogate", "{\"text\":\"\xed\xa0\x80\"}", false},
		{"invalid UTF-8 outside strings", "{\"a\":1}\xff", false},
		{"valid non-ASCII text", "{\"text\":\"é€𝄞 \\ud834\\udd1e\"}", true},
	}
}

func TestCheckJSON(t *testing.T) {
	for _, tt := range checkJSONCases() {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckJSON([]byte(tt.in))
			if tt.ok {
				wantCode(t, err)
			} else {
				wantCode(t, err, twokey.EBadPayload)
			}
		})
	}
}

func TestFoldNameMatchesEncodingJSON(t *testing.T) {
	tests := []struct{ a, b string }{
		{"url", "URL"}, {"key", "\u212aey"}, {"service", "ſervice"}, {"SERVICE", "ſervice"},
		{"straße", "STRAßE"},
	}
	for _, tt := range tests {
		if foldName(tt.a) != foldName(tt.b) {
			t.Errorf("foldName(%q) = %q, foldName(%q) = %q: should be equal", tt.a, foldName(tt.a), tt.b, foldName(tt.b))
		}
	}
	// Different names stay different.
	if foldName("url") == foldName("uri") || foldName("ss") == foldName("ß") {
		t.Error("foldName merges different names")
	}
}

// TestVerifyRefusesPayloadsThatAreNotUTF8: a properly signed envelope of
// any kind whose payload holds a byte that is not UTF-8 (raw, inside a
// JSON string: the reporter's a\xff\xfeb) is bad_payload; the same
// payload in UTF-8 is accepted.
func TestVerifyRefusesPayloadsThatAreNotUTF8(t *testing.T) {
	kinds := make([]string, 0, len(gatewayKinds)+len(memberKinds))
	for k := range gatewayKinds {
		kinds = append(kinds, k)
	}
	for k := range memberKinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	if len(kinds) < 20 {
		t.Fatalf("only %d kinds", len(kinds))
	}
	payload := func(text string) []byte {
		return []byte(`{"conversation":"` + testConv + `","created_at":"` + testCreated + `","text":"` + text + `"}`)
	}
	for _, kind := range kinds {
		if _, err := Verify(Sign(alice, kind, payload("ab"))); err != nil {
			t.Fatalf("%s: a UTF-8 payload refused: %v", kind, err)
		}
		for _, bad := range []string{"a\xff\xfeb", "\xc3", "\xed\xa0\x80"} {
			_, err := Verify(Sign(alice, kind, payload(bad)))
			wantCode(t, err, twokey.EBadPayload)
			if err != nil && !strings.Contains(err.Error(), "not valid UTF-8") {
				t.Errorf("%s %q: %v, want it to say the payload is not UTF-8", kind, bad, err)
			}
		}
	}
}
