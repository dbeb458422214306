// Package termtext makes text that other people wrote safe to print on a
// terminal: a control character (an escape sequence could recolour the
// screen, move the cursor or forge a line of output), an invalid UTF-8
// byte or a bidirectional override (which makes a URL read differently
// from what it is) is printed as U+FFFD instead.
package termtext

import (
	"io"
	"strings"
	"unicode/utf8"
)

// Unsafe reports whether r must not reach a terminal as it is. Newlines and
// tabs are safe here; Line also replaces newlines.
func Unsafe(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0, r == utf8.RuneError:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// Clean returns s with every unsafe rune (and every invalid byte) replaced
// by U+FFFD. Newlines and tabs stay.
func Clean(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, Unsafe) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if Unsafe(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Line is Clean for text that must stay on one line (a name, a reason, a
// parameter): newlines become U+23CE (⏎), so nobody can start a line of
// output that looks like the program's own.
func Line(s string) string {
	return strings.ReplaceAll(Clean(s), "\n", "\u23ce")
}

// Writer cleans everything written through it (see Clean). A rune split
// across two writes is held until its end arrives.
type Writer struct {
	w       io.Writer
	pending []byte
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write cleans p and writes it; it reports len(p) when the whole cleaned
// text was written.
func (cw *Writer) Write(p []byte) (int, error) {
	buf := p
	if len(cw.pending) > 0 {
		buf = append(cw.pending, p...)
		cw.pending = nil
	}
	// Hold back an incomplete rune at the end (at most utf8.UTFMax-1 bytes).
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	if cut < len(buf) {
		cw.pending = append([]byte(nil), buf[cut:]...)
	}
	if _, err := io.WriteString(cw.w, Clean(string(buf[:cut]))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes out a rune still held back (an incomplete one, shown as
// U+FFFD): call it when nothing more will be written.
func (cw *Writer) Flush() error {
	if len(cw.pending) == 0 {
		return nil
	}
	cw.pending = nil
	_, err := io.WriteString(cw.w, string(utf8.RuneError))
	return err
}
