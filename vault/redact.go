package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Redactor removes one injected key from what an upstream service returns.
// It holds the key, the strings derived from it and an automaton that finds
// them, all built once when the key is injected, until Close zeroes them.
// A Redactor is safe for concurrent use; a nil or closed Redactor redacts
// nothing.
type Redactor struct {
	mu      sync.RWMutex
	needles [][]byte // the key, the header value and their encodings (see needlesFor)
	m       *matcher
}

// newRedactor takes ownership of value and headerValue.
func newRedactor(value, headerValue []byte) *Redactor {
	needles := append(needlesFor(value), needlesFor(headerValue)...)
	// An encoder that meets a byte that is not UTF-8 in a JSON string
	// writes U+FFFD (encoding/json does); a header template may hold one.
	if !utf8.Valid(headerValue) {
		replaced := replaceInvalid(headerValue)
		needles = append(needles, needlesFor(replaced)...)
		clear(replaced)
	}
	clear(value)
	clear(headerValue)
	return &Redactor{needles: needles, m: newMatcher(needles)}
}

// needlesFor returns v in each form PROTOCOL 5 lists, as the automaton
// searches for it: as is; hex, lower and upper case; standard and URL-safe
// base64 at each of the three byte alignments v can have inside a longer
// encoded text, with the characters that v alone determines (and, for v at
// the end of that text, its last character, padded or not); and UTF-16 in
// both byte orders (without the zero byte at the far end). Percent-encoding
// and JSON escapes are not needles: the matcher decodes them in the text
// (see matcher.find), so they apply to every needle, in any mix of escaped
// and plain characters.
func needlesFor(v []byte) [][]byte {
	if len(v) == 0 {
		return nil
	}
	out := [][]byte{bytes.Clone(v)}
	lower := make([]byte, hex.EncodedLen(len(v)))
	hex.Encode(lower, v)
	out = append(out, lower, bytes.ToUpper(lower))
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for a := 0; a < 3; a++ {
			out = append(out, base64Forms(enc, v, a)...)
		}
	}
	// Sized up front, so that no grown copy of the key is left unzeroed.
	le, be := make([]byte, 0, 4*len(v)), make([]byte, 0, 4*len(v))
	for rest := v; len(rest) > 0; {
		r, size := utf8.DecodeRune(rest) // (no string of the key: it could not be zeroed)
		rest = rest[size:]
		units := [2]uint16{uint16(r)}
		n := 1
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			units, n = [2]uint16{uint16(r1), uint16(r2)}, 2
		}
		for _, u := range units[:n] {
			le = append(le, byte(u), byte(u>>8))
			be = append(be, byte(u>>8), byte(u))
		}
	}
	// The zero byte that ends an ASCII text in UTF-16LE (and starts it in
	// UTF-16BE) says nothing: without it the two are one needle, and the
	// marker replaces no byte of the characters around.
	le = bytes.TrimSuffix(le, []byte{0})
	be = bytes.TrimPrefix(be, []byte{0})
	return append(out, le, be)
}

// base64Forms returns the base64 (enc, an unpadded alphabet) of v when v
// starts a bytes into a 3-byte group: the characters whose 6 bits all come
// from v, then the same followed by the character v's last bits start (what
// the text holds when v ends it), and that padded with '='.
func base64Forms(enc *base64.Encoding, v []byte, a int) [][]byte {
	in := make([]byte, a+len(v))
	copy(in[a:], v)
	all := make([]byte, enc.EncodedLen(len(in)))
	enc.Encode(all, in)
	clear(in)
	from, full := (8*a+5)/6, 8*(a+len(v))/6
	var out [][]byte
	if full > from {
		out = append(out, bytes.Clone(all[from:full]))
	}
	if len(all) > full {
		tail := bytes.Clone(all[from:])
		padded := append(bytes.Clone(tail), "=="[:(4-len(all)%4)%4]...)
		out = append(out, tail, padded)
	}
	clear(all)
	return out
}

// replaceInvalid returns b with each byte that is not part of a UTF-8
// sequence replaced by U+FFFD, as encoding/json writes it.
func replaceInvalid(b []byte) []byte {
	out := make([]byte, 0, 3*len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		out = utf8.AppendRune(out, r)
		b = b[size:]
	}
	return out
}

// Redact replaces every occurrence of the key and of the whole injected
// header value, in each form PROTOCOL 5 lists (see needlesFor; and
// percent-encoded, JSON-escaped, or JSON-escaped percent-encoding, in any
// mix of escaped and plain characters) with "[redacted]", and returns the
// result and the number of replacements. Occurrences that overlap, also in
// different forms, are one replacement; adjacent ones are two. With nothing
// to replace it returns b itself.
func (r *Redactor) Redact(b []byte) ([]byte, int) {
	if r == nil {
		return b, 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.m == nil || len(b) == 0 {
		return b, 0
	}
	found := r.m.find(b)
	if len(found) == 0 {
		return b, 0
	}
	out := make([]byte, 0, len(b))
	pos := 0
	for _, s := range found {
		out = append(out, b[pos:s.start]...)
		out = append(out, redactPlaceholder...)
		pos = s.end
	}
	return append(out, b[pos:]...), len(found)
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
	for _, p := range r.needles {
		clear(p)
	}
	r.needles = nil
	if r.m != nil {
		r.m.wipe()
		r.m = nil
	}
}

// Format keeps the key out of every fmt verb.
func (r *Redactor) Format(f fmt.State, _ rune) { io.WriteString(f, "vault.Redactor{[redacted]}") }

// LogValue keeps the key out of slog.
func (r *Redactor) LogValue() slog.Value { return slog.StringValue("vault.Redactor{[redacted]}") }
