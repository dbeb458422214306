package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Redactor removes one injected key from what an upstream service returns.
// It holds the key and the strings derived from it until Close zeroes them.
// A Redactor is safe for concurrent use; a nil or closed Redactor redacts
// nothing.
type Redactor struct {
	mu       sync.RWMutex
	patterns [][]byte // longest first; the key, the header value, encodings
}

// newRedactor takes ownership of value and headerValue.
func newRedactor(value, headerValue []byte) *Redactor {
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
		pats = append(pats, jsonForms(p)...)
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
	return &Redactor{patterns: uniq}
}

// jsonEscape is one way of writing a string inside JSON quotes.
type jsonEscape uint8

const (
	escHTML     jsonEscape = 1 << iota // <, > and & as \u003c, \u003e, \u0026 (Go's encoding/json)
	escNonASCII                        // every non-ASCII rune as \uXXXX, surrogate pairs above U+FFFF (Python's json.dumps)
	escSlash                           // / as \/ (PHP's json_encode)
	escLineSep                         // U+2028 and U+2029 as \u2028, \u2029 (Go, JavaScript-safe encoders)
	escUpper                           // \uXXXX with upper-case hex digits
	escAll      = escHTML | escNonASCII | escSlash | escLineSep | escUpper
)

// jsonForms returns the spellings of p inside a JSON string that differ
// from p itself, one for each combination of the escapes encoders in
// common use apply beyond the ones JSON requires (" and \ and control
// characters), without duplicates.
func jsonForms(p []byte) [][]byte {
	var out [][]byte
	for mode := jsonEscape(0); mode <= escAll; mode++ {
		f := appendJSONEscaped(nil, p, mode)
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
func appendJSONEscaped(dst, p []byte, mode jsonEscape) []byte {
	const lowerHex, upperHex = "0123456789abcdef", "0123456789ABCDEF"
	digits := lowerHex
	if mode&escUpper != 0 {
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
			case mode&escHTML != 0 && (c == '<' || c == '>' || c == '&'):
				dst = u(dst, rune(c))
			case mode&escSlash != 0 && c == '/':
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
			if mode&(escNonASCII|escHTML|escLineSep) != 0 {
				dst = u(dst, utf8.RuneError)
			} else {
				dst = append(dst, c)
			}
		case mode&escNonASCII != 0:
			if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
				dst = u(u(dst, r1), r2)
			} else {
				dst = u(dst, r)
			}
		case mode&escLineSep != 0 && (r == '\u2028' || r == '\u2029'):
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
func (r *Redactor) Redact(b []byte) ([]byte, int) {
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

// RedactString is Redact for a string.
func (r *Redactor) RedactString(s string) (string, int) {
	if r == nil || s == "" {
		return s, 0
	}
	out, n := r.Redact([]byte(s))
	if n == 0 {
		return s, 0
	}
	return string(out), n
}

// Close zeroes the key and everything derived from it. It is safe to call
// more than once; afterwards the Redactor redacts nothing.
func (r *Redactor) Close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.patterns {
		clear(p)
	}
	r.patterns = nil
}

// Format keeps the key out of every fmt verb.
func (r *Redactor) Format(f fmt.State, _ rune) { io.WriteString(f, "vault.Redactor{[redacted]}") }

// LogValue keeps the key out of slog.
func (r *Redactor) LogValue() slog.Value { return slog.StringValue("vault.Redactor{[redacted]}") }
