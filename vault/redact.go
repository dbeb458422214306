package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
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

// Redact replaces every occurrence of the key, of the whole injected header
// value, and of the key's standard and URL-safe base64 (padded or not) and
// hex (either case) encodings with "[redacted]", preferring the longest match
// at each position, and returns the result and the number of replacements.
// With nothing to replace it returns b itself.
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
