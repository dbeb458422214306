package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// The redactor as it was before it learned the forms of PROTOCOL 5 (the
// key and header value as is, their base64 at one alignment and hex, and
// those JSON-escaped as a few encoders do), kept here so the benchmark
// compares the two in one run.

// oldRedactor is that redactor's state.
type oldRedactor struct {
	mu       sync.RWMutex
	patterns [][]byte
}

// newRedactor takes ownership of value and headerValue.
func newOldRedactor(value, headerValue []byte) *oldRedactor {
	pats := [][]byte{value, headerValue}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b := make([]byte, enc.EncodedLen(len(value)))
		enc.Encode(b, value)
		pats = append(pats, b)
	}
	lower := make([]byte, hex.EncodedLen(len(value)))
	hex.Encode(lower, value)
	upper := bytes.ToUpper(lower)
	pats = append(pats, lower, upper)
	// An upstream that answers JSON (httpbin's /headers) escapes what it
	// echoes: every spelling above as a JSON string's encoders write it.
	for _, p := range slices.Clone(pats) {
		pats = append(pats, oldJSONForms(p)...)
	}

	var uniq [][]byte
	for _, p := range pats {
		dup := len(p) == 0
		for _, q := range uniq {
			if bytes.Equal(p, q) {
				dup = true
				break
			}
		}
		if dup {
			clear(p)
			continue
		}
		uniq = append(uniq, p)
	}
	sort.SliceStable(uniq, func(i, j int) bool { return len(uniq[i]) > len(uniq[j]) })
	return &oldRedactor{patterns: uniq}
}

// jsonEscape is one way of writing a string inside JSON quotes.
type oldJSONEscape uint8

const (
	oldEscHTML     oldJSONEscape = 1 << iota // <, > and & as \u003c, \u003e, \u0026 (Go's encoding/json)
	oldEscNonASCII                           // every non-ASCII rune as \uXXXX, surrogate pairs above U+FFFF (Python's json.dumps)
	oldEscSlash                              // / as \/ (PHP's json_encode)
	oldEscLineSep                            // U+2028 and U+2029 as \u2028, \u2029 (Go, JavaScript-safe encoders)
	oldEscUpper                              // \uXXXX with upper-case hex digits
	oldEscAll      = oldEscHTML | oldEscNonASCII | oldEscSlash | oldEscLineSep | oldEscUpper
)

// jsonForms returns the spellings of p inside a JSON string that differ
// from p itself, one for each combination of the escapes encoders in
// common use apply beyond the ones JSON requires (" and \ and control
// characters), without duplicates.
func oldJSONForms(p []byte) [][]byte {
	var out [][]byte
	for mode := oldJSONEscape(0); mode <= oldEscAll; mode++ {
		f := oldAppendJSONEscaped(nil, p, mode)
		if bytes.Equal(f, p) || slices.ContainsFunc(out, func(q []byte) bool { return bytes.Equal(q, f) }) {
			clear(f)
			continue
		}
		out = append(out, f)
	}
	return out
}

// appendJSONEscaped appends p as it appears between the quotes of a JSON
// string written with the escapes of mode. A byte that is not UTF-8 is
// kept as is by the plainest modes, and written as \ufffd (as Go does) by
// the others.
func oldAppendJSONEscaped(dst, p []byte, mode oldJSONEscape) []byte {
	const lowerHex, upperHex = "0123456789abcdef", "0123456789ABCDEF"
	digits := lowerHex
	if mode&oldEscUpper != 0 {
		digits = upperHex
	}
	u := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', digits[r>>12&0xf], digits[r>>8&0xf], digits[r>>4&0xf], digits[r&0xf])
	}
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c < ' ':
				dst = u(dst, rune(c))
			case mode&oldEscHTML != 0 && (c == '<' || c == '>' || c == '&'):
				dst = u(dst, rune(c))
			case mode&oldEscSlash != 0 && c == '/':
				dst = append(dst, '\\', '/')
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			if mode&(oldEscNonASCII|oldEscHTML|oldEscLineSep) != 0 {
				dst = u(dst, utf8.RuneError)
			} else {
				dst = append(dst, c)
			}
		case mode&oldEscNonASCII != 0:
			if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
				dst = u(u(dst, r1), r2)
			} else {
				dst = u(dst, r)
			}
		case mode&oldEscLineSep != 0 && (r == '\u2028' || r == '\u2029'):
			dst = u(dst, r)
		default:
			dst = append(dst, p[i:i+size]...)
		}
		i += size
	}
	return dst
}

// Redact replaces every occurrence of the key, of the whole injected header
// value, and of the key's standard and URL-safe base64 (padded or not) and
// hex (either case) encodings with "[redacted]", and of each of these as a
// JSON string's encoders escape it (see jsonForms), preferring the longest
// match at each position, and returns the result and the number of
// replacements. With nothing to replace it returns b itself.
func (r *oldRedactor) Redact(b []byte) ([]byte, int) {
	if r == nil {
		return b, 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	pats := r.patterns
	if len(pats) == 0 || len(b) == 0 {
		return b, 0
	}
	// next[i] is the first match of pats[i] at or after pos, or -1.
	next := make([]int, len(pats))
	for i, p := range pats {
		next[i] = bytes.Index(b, p)
	}
	var out []byte
	n, pos := 0, 0
	for {
		best := -1
		for i, p := range pats {
			if next[i] >= 0 && next[i] < pos {
				if j := bytes.Index(b[pos:], p); j >= 0 {
					next[i] = pos + j
				} else {
					next[i] = -1
				}
			}
			if next[i] >= 0 && (best < 0 || next[i] < next[best]) {
				best = i // ties keep the earlier, longer pattern
			}
		}
		if best < 0 {
			break
		}
		if out == nil {
			out = make([]byte, 0, len(b))
		}
		out = append(out, b[pos:next[best]]...)
		out = append(out, redactPlaceholder...)
		pos = next[best] + len(pats[best])
		n++
	}
	if n == 0 {
		return b, 0
	}
	return append(out, b[pos:]...), n
}

// benchBody is about 10 MiB of JSON-ish text holding the key a few times,
// as is and encoded. With escapes, one item in every escapes holds JSON
// escapes and percent-encoding (1: every item, a few per 80 bytes; 0: none).
func benchBody(key, header string, escapes int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"alpha", "beta", "gamma", "delta", "sk_", "Bearer", "value", "id", "0", "42", "true", "null", "https://example.com/x"}
	escaped := append(slices.Clone(words), `\n`, `\/`, `\u00e9`, "%20", "%2F", `\"`)
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for item := 0; b.Len() < 10<<20; item++ {
		ws := words
		if escapes > 0 && item%escapes == 0 {
			ws = escaped
		}
		b.WriteString(`{"k":"`)
		for range 12 {
			b.WriteString(ws[rng.IntN(len(ws))])
			b.WriteByte(' ')
		}
		b.WriteString(`"},`)
		if rng.IntN(20000) == 0 {
			b.WriteString(`{"echo":"` + header + `","q":"` + url.QueryEscape(key) + `","b":"` + base64.StdEncoding.EncodeToString([]byte(key)) + `"},`)
		}
	}
	b.WriteString(`{}]}`)
	return b.Bytes()
}

// BenchmarkRedact10MiB redacts a 10 MiB body with the old single-form
// redactor and the new one: a body without escapes, one with an escaped
// item in 16 (about one escape per KiB), and one full of them (a few per
// 80 bytes, the worst case: every view runs everywhere). The ratio of the
// two ns/op is the cost of the forms.
func BenchmarkRedact10MiB(b *testing.B) {
	const key = testValue
	header := "Bearer " + key
	for _, body := range []struct {
		name    string
		escapes int
	}{{"plain", 0}, {"sparse", 16}, {"escaped", 1}} {
		text := benchBody(key, header, body.escapes)
		old := newOldRedactor([]byte(key), []byte(header))
		cur := newRedactor([]byte(key), []byte(header))
		for _, impl := range []struct {
			name   string
			redact func([]byte) ([]byte, int)
		}{{"old", old.Redact}, {"new", cur.Redact}} {
			b.Run(body.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					if _, n := impl.redact(text); n == 0 {
						b.Fatal("nothing redacted")
					}
				}
			})
		}
	}
}

// BenchmarkNewRedactor is the one-time cost per injection: the needles and
// the automaton, for a typical key and for the largest the vault takes.
func BenchmarkNewRedactor(b *testing.B) {
	for _, n := range []int{len(testValue), MaxSecretSize} {
		key := strings.Repeat("k7_Q", n/4+1)[:n]
		b.Run(strconv.Itoa(n)+"B", func(b *testing.B) {
			for b.Loop() {
				newRedactor([]byte(key), []byte("Bearer "+key)).Close()
			}
		})
	}
}
