package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// The forms PROTOCOL 5 lists for redaction, written here the way an
// upstream's encoders write them, and an oracle that reads a text back in
// each of them. The oracle is this file's own code, not the redactor's: it
// decodes what it is given, and says whether the key can be read back.

// pctEncode percent-encodes s: every byte keep does not accept becomes %XX
// (upper- or lower-case hex), and a space becomes space.
func pctEncode(s string, keep func(c byte) bool, upper bool, space string) string {
	digits := "0123456789abcdef"
	if upper {
		digits = "0123456789ABCDEF"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			b.WriteString(space)
		case keep(c):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(digits[c>>4])
			b.WriteByte(digits[c&15])
		}
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0
}

// uriComponent keeps what JavaScript's encodeURIComponent keeps.
func uriComponent(c byte) bool { return unreserved(c) || strings.IndexByte("!*'()", c) >= 0 }

func keepNothing(byte) bool { return false }

// jsonEscapeAll writes s inside a JSON string with every rune as \uXXXX
// (surrogate pairs above U+FFFF), as a maximally cautious encoder could.
func jsonEscapeAll(s string, upper bool) string {
	f := `\u%04x`
	if upper {
		f = `\u%04X`
	}
	var b strings.Builder
	for _, r := range s {
		for _, u := range utf16.Encode([]rune{r}) {
			fmt.Fprintf(&b, f, u)
		}
	}
	return b.String()
}

// goJSON is s inside a JSON string as encoding/json writes it (<, > and &
// as \u003c, \u003e, \u0026).
func goJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func utf16Bytes(s string, big bool) []byte {
	var out []byte
	for _, u := range utf16.Encode([]rune(s)) {
		if big {
			out = append(out, byte(u>>8), byte(u))
		} else {
			out = append(out, byte(u), byte(u>>8))
		}
	}
	return out
}

// revealed says in which form, if any, value can be read back from out:
// as is; after percent-decoding ('+' as a space, or as itself), JSON
// unescaping, or both; and each of these also after decoding base64 (either
// alphabet, any alignment), hex (one case throughout) or UTF-16 (either byte
// order) found in it. "" means nowhere.
func revealed(out, value []byte) string {
	layers := map[string][]byte{
		"as is":                                out,
		"percent-decoded":                      pctDecode(out, true),
		"percent-decoded, + kept":              pctDecode(out, false),
		"JSON-unescaped":                       jsonUnescape(out),
		"JSON-unescaped, then percent-decoded": pctDecode(jsonUnescape(out), true),
	}
	for name, text := range layers {
		if bytes.Contains(text, value) {
			return name
		}
		for _, run := range base64Runs(text) {
			for off := 0; off < 4 && off < len(run); off++ {
				if bytes.Contains(decodeBase64Run(run[off:]), value) {
					return "base64 at offset " + fmt.Sprint(off) + ", " + name
				}
			}
		}
		for _, re := range []*regexp.Regexp{hexLower, hexUpper} {
			for _, run := range re.FindAll(text, -1) {
				for off := 0; off < 2 && off < len(run); off++ {
					r := run[off:]
					d, _ := hex.DecodeString(string(r[:len(r)/2*2]))
					if bytes.Contains(d, value) {
						return "hex, " + name
					}
				}
			}
		}
		for off := 0; off < 2; off++ {
			for _, big := range []bool{false, true} {
				if bytes.Contains(decodeUTF16(text[min(off, len(text)):], big), value) {
					return fmt.Sprintf("UTF-16 (big endian %v) at offset %d, %s", big, off, name)
				}
			}
		}
	}
	return ""
}

var (
	hexLower = regexp.MustCompile(`[0-9a-f]+`)
	hexUpper = regexp.MustCompile(`[0-9A-F]+`)
	b64Run   = regexp.MustCompile(`[A-Za-z0-9+/_-]+`)
)

func pctDecode(b []byte, plusIsSpace bool) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) {
			if d, err := hex.DecodeString(string(b[i+1 : i+3])); err == nil {
				out = append(out, d[0])
				i += 2
				continue
			}
		}
		if b[i] == '+' && plusIsSpace {
			out = append(out, ' ')
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// jsonUnescape undoes the escapes of a JSON string wherever they are,
// leaving anything else (and a backslash that starts no escape) as is. A
// lone surrogate reads as U+FFFD, as encoding/json reads it.
func jsonUnescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	hex4 := func(i int) (rune, bool) {
		if i+4 > len(b) {
			return 0, false
		}
		if !isHexDigits(b[i : i+4]) {
			return 0, false
		}
		d, _ := hex.DecodeString(string(b[i : i+4]))
		return rune(d[0])<<8 | rune(d[1]), true
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if k := strings.IndexByte(`"\/bfnrt`, b[i+1]); k >= 0 {
			out = append(out, "\"\\/\b\f\n\r\t"[k])
			i++
			continue
		}
		if b[i+1] != 'u' {
			out = append(out, b[i])
			continue
		}
		r, ok := hex4(i + 2)
		if !ok {
			out = append(out, b[i])
			continue
		}
		i += 5
		if utf16.IsSurrogate(r) {
			if r2, ok := hex4(i + 3); ok && r < 0xdc00 && b[i+1] == '\\' && b[i+2] == 'u' && utf16.DecodeRune(r, r2) != utf8.RuneError {
				r = utf16.DecodeRune(r, r2)
				i += 6
			} else {
				r = utf8.RuneError
			}
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

func isHexDigits(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func base64Runs(b []byte) [][]byte { return b64Run.FindAll(b, -1) }

// decodeBase64Run decodes run (either alphabet) from its start, as far as
// it goes: a last group of 2 or 3 characters gives its whole bytes.
func decodeBase64Run(run []byte) []byte {
	std := strings.NewReplacer("-", "+", "_", "/").Replace(string(run))
	if len(std)%4 == 1 {
		std = std[:len(std)-1]
	}
	d, _ := base64.RawStdEncoding.DecodeString(std)
	return d
}

func decodeUTF16(b []byte, big bool) []byte {
	var us []uint16
	for i := 0; i+1 < len(b); i += 2 {
		if big {
			us = append(us, uint16(b[i])<<8|uint16(b[i+1]))
		} else {
			us = append(us, uint16(b[i+1])<<8|uint16(b[i]))
		}
	}
	return []byte(string(utf16.Decode(us)))
}

// TestRevealedFindsEveryForm keeps the oracle honest: it reads the key back
// from every form of the table below (so a redactor that does nothing
// fails every case of TestRedactEveryForm).
func TestRevealedFindsEveryForm(t *testing.T) {
	for _, target := range redactTargets {
		for _, f := range encodedForms() {
			text := []byte("pre " + f.encode(target.text) + " post")
			if revealed(text, []byte(target.text)) == "" {
				t.Errorf("%s of the %s: the oracle does not read it back from %q", f.name, target.name, text)
			}
		}
	}
}

// redactKey has a character of each class encoders treat differently:
// URL-reserved (+ / = ? &), JSON HTML-escaped (< > &), unreserved (~ _).
const redactKey = "sk_live_A+b/c=D<9>&Qz~x?y7"

var redactTargets = []struct{ name, text, template string }{
	{"key", redactKey, "Bearer {value}"},
	{"header value", "Bearer " + redactKey, "Bearer {value}"},
	{"header value with a non-ASCII template", "Clé-€𝄞 " + redactKey, "Clé-€𝄞 {value}"},
}

type encodedForm struct {
	name   string
	encode func(string) string
}

// encodedForms are the forms of PROTOCOL 5, each as some encoder writes it.
func encodedForms() []encodedForm {
	b64 := func(enc *base64.Encoding, prefix, suffix string) func(string) string {
		return func(s string) string { return enc.EncodeToString([]byte(prefix + s + suffix)) }
	}
	hx := func(upper bool, prefix string) func(string) string {
		return func(s string) string {
			h := hex.EncodeToString([]byte(prefix + s + "!"))
			if upper {
				h = strings.ToUpper(h)
			}
			return h
		}
	}
	forms := []encodedForm{
		{"as is", func(s string) string { return s }},
		{"url.QueryEscape (upper-case hex, + for a space)", url.QueryEscape},
		{"url.PathEscape (%20 for a space)", url.PathEscape},
		{"query escape, lower-case hex", func(s string) string { return pctEncode(s, unreserved, false, "+") }},
		{"encodeURIComponent (%20, !*'() kept)", func(s string) string { return pctEncode(s, uriComponent, true, "%20") }},
		{"every byte percent-encoded, lower-case", func(s string) string { return pctEncode(s, keepNothing, false, "%20") }},
		{"JSON (Go, HTML-escaped)", goJSON},
		{`JSON (every rune as \u, lower-case)`, func(s string) string { return jsonEscapeAll(s, false) }},
		{`JSON (every rune as \u, upper-case)`, func(s string) string { return jsonEscapeAll(s, true) }},
		{`JSON (\/ for /)`, func(s string) string { return strings.ReplaceAll(goJSON(s), "/", `\/`) }},
		{`JSON (\u0041 for A only)`, func(s string) string { return strings.ReplaceAll(s, "A", `\u0041`) }},
		{"hex", hx(false, "")},
		{"HEX", hx(true, "")},
		{"hex at an odd byte offset", hx(false, "x")},
		{"UTF-16LE", func(s string) string { return string(utf16Bytes(s, false)) }},
		{"UTF-16BE with BOM", func(s string) string { return "\xfe\xff" + string(utf16Bytes(s, true)) }},
		{"base64 percent-encoded (in a query)", func(s string) string { return url.QueryEscape(b64(base64.StdEncoding, "ab", "")(s)) }},
		{`base64 in JSON with \/`, func(s string) string {
			return strings.ReplaceAll(b64(base64.StdEncoding, "?", "")(s), "/", `\/`)
		}},
		{`percent-encoded (/ kept) inside JSON with \/`, func(s string) string {
			keepSlash := func(c byte) bool { return unreserved(c) || c == '/' }
			return strings.ReplaceAll(goJSON("https://x.example/cb/"+pctEncode(s, keepSlash, true, "%20")), "/", `\/`)
		}},
	}
	for _, alpha := range []struct {
		name string
		pad  *base64.Encoding
		raw  *base64.Encoding
	}{{"std", base64.StdEncoding, base64.RawStdEncoding}, {"url", base64.URLEncoding, base64.RawURLEncoding}} {
		for shift := 0; shift < 3; shift++ {
			prefix := "\xfb\xff"[:shift]
			forms = append(forms,
				encodedForm{fmt.Sprintf("base64 %s padded, at byte offset %d, at the end", alpha.name, shift), b64(alpha.pad, prefix, "")},
				encodedForm{fmt.Sprintf("base64 %s unpadded, at byte offset %d, at the end", alpha.name, shift), b64(alpha.raw, prefix, "")},
				encodedForm{fmt.Sprintf("base64 %s, at byte offset %d, inside", alpha.name, shift), b64(alpha.pad, prefix+"\x00\x00\x00", "\xff\xfe\xfd\xfc")},
			)
		}
	}
	return forms
}

// TestRedactEveryForm: the key, and the whole header value, in every form
// of PROTOCOL 5 inside a longer text, are replaced, and no form of the key
// can be read back from what is left.
func TestRedactEveryForm(t *testing.T) {
	for _, target := range redactTargets {
		r := injectValue(t, redactKey, "Authorization", target.template)
		for _, f := range encodedForms() {
			t.Run(target.name+"/"+f.name, func(t *testing.T) {
				enc := f.encode(target.text)
				in := []byte(`{"echo":"pre ` + enc + ` post"}`)
				out, n := r.Redact(in)
				if n < 1 {
					t.Fatalf("%s: nothing redacted in %q", f.name, in)
				}
				if how := revealed(out, []byte(redactKey)); how != "" {
					t.Fatalf("the key survives (%s) in %q, redacted from %q", how, out, in)
				}
				if !bytes.HasPrefix(out, []byte(`{"echo":"pre `)) || !bytes.HasSuffix(out, []byte(` post"}`)) {
					t.Errorf("redaction reached beyond the encoded key: %q", out)
				}
			})
		}
	}
}

// TestRedactExactForms pins what redaction leaves of a few forms whose
// boundaries are the key's own: exactly one marker, nothing else touched.
func TestRedactExactForms(t *testing.T) {
	r := injectValue(t, redactKey, "Authorization", "Bearer {value}")
	h := "Bearer " + redactKey
	for _, enc := range []string{
		url.QueryEscape(redactKey), url.QueryEscape(h), url.PathEscape(h), pctEncode(h, unreserved, false, "+"),
		pctEncode(h, uriComponent, true, "%20"),
		goJSON(h), jsonEscapeAll(redactKey, true), strings.ReplaceAll(redactKey, "/", `\/`),
		base64.StdEncoding.EncodeToString([]byte(h)), base64.RawURLEncoding.EncodeToString([]byte(h)),
		hex.EncodeToString([]byte(h)), strings.ToUpper(hex.EncodeToString([]byte(redactKey))),
		// UTF-16 from the first letter's byte to the last's: the zero byte
		// beyond stays (TestRedactEveryForm shows the key is gone).
		strings.TrimSuffix(string(utf16Bytes(h, false)), "\x00"), strings.TrimPrefix(string(utf16Bytes(redactKey, true)), "\x00"),
	} {
		in := "Location: https://cb.example/?k=" + enc + "&x=1"
		got, n := r.RedactString(in)
		if want := "Location: https://cb.example/?k=[redacted]&x=1"; got != want || n != 1 {
			t.Errorf("RedactString(%q) = %q, %d; want %q, 1", in, got, n, want)
		}
	}
}

// naiveRedact is the specification of Redactor.Redact, written the slow
// way: every needle searched at every position of the text as each view
// reads it (as is, percent-decoded, JSON-unescaped, both; '+' and a space
// the same), each occurrence's span taken from the tokens it covers, and
// overlapping spans joined.
func naiveRedact(needles [][]byte, text []byte) ([]byte, int) {
	fold := func(b []byte) []byte { return bytes.ReplaceAll(bytes.Clone(b), []byte("+"), []byte(" ")) }
	var all []span
	for _, dec := range []func([]byte, int, *[4]byte) (int, int){
		func(b []byte, i int, buf *[4]byte) (int, int) { buf[0] = b[i]; return 1, 1 },
		decodePercent, decodeJSON, decodeJSONPercent,
	} {
		var d []byte
		var starts, ends []int
		var buf [4]byte
		for i := 0; i < len(text); {
			n, size := dec(text, i, &buf)
			for j := 0; j < n; j++ {
				d = append(d, buf[j])
				starts, ends = append(starts, i), append(ends, i+size)
			}
			i += size
		}
		d = fold(d)
		for _, n := range needles {
			n = fold(n)
			if len(n) == 0 {
				continue
			}
			for k := 0; k+len(n) <= len(d); k++ {
				if bytes.Equal(d[k:k+len(n)], n) {
					all = append(all, span{starts[k], ends[k+len(n)-1]})
				}
			}
		}
	}
	slices.SortFunc(all, func(x, y span) int { return x.start - y.start })
	var merged []span
	for _, s := range all {
		if k := len(merged) - 1; k >= 0 && merged[k].end > s.start {
			merged[k].end = max(merged[k].end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	if len(merged) == 0 {
		return text, 0
	}
	var out []byte
	pos := 0
	for _, s := range merged {
		out = append(append(out, text[pos:s.start]...), redactPlaceholder...)
		pos = s.end
	}
	return append(out, text[pos:]...), len(merged)
}

// TestRedactMatchesNaiveSearch compares Redact with naiveRedact on random
// texts made of the key's forms, pieces of them, escapes and filler, long
// and short: the one-pass automaton, its skipping of plain text and its
// parked views must find exactly what searching everywhere finds.
func TestRedactMatchesNaiveSearch(t *testing.T) {
	r := injectValue(t, redactKey, "Authorization", "Bearer {value}")
	rng := rand.New(rand.NewPCG(5, 15))
	h := "Bearer " + redactKey
	var pieces []string
	for _, f := range encodedForms() {
		e := f.encode(redactKey)
		pieces = append(pieces, e, f.encode(h), e[:len(e)/2], e[len(e)/3:])
	}
	pieces = append(pieces, `\n`, `\/`, `\u0025`, `\`, `%`, `%2`, "%41", "+", " ", "sk_", "Bearer", "c2tf", "736b",
		strings.Repeat("x", 40), strings.Repeat("ab ", 30), `{"k":"`, `"}`, "\xff", "\x00")
	for i := range 400 {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		text := []byte(b.String())
		got, n := r.Redact(text)
		want, wn := naiveRedact(r.needles, text)
		if !bytes.Equal(got, want) || n != wn {
			t.Fatalf("text %d: Redact(%q)\n= %q, %d\nwant %q, %d", i, text, got, n, want, wn)
		}
	}
}
