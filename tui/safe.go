package tui

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/twokey/twokey/internal/termtext"
)

// What others write reaches the screen only through safe (see
// internal/termtext, which the CLI's output goes through too): a control
// character (an escape sequence could recolour, move the cursor or redraw
// a card), an invalid byte or a bidirectional override (which could make a
// URL read differently from what it is) shows as U+FFFD instead.

// unsafeRune reports whether r may not reach the screen as it is.
func unsafeRune(r rune) bool { return termtext.Unsafe(r) }

// safe makes text from a record or a server fit to print. Newlines stay
// (a chat message or a body may have several lines); tabs become spaces.
func safe(s string) string { return strings.ReplaceAll(termtext.Clean(s), "\t", "    ") }

// safeLine is safe for text that must stay on one line (a name, a kind).
func safeLine(s string) string { return strings.ReplaceAll(safe(s), "\n", "\ufffd") }

// cleanJSON returns payload with every string (and object key) made safe,
// for display only: digests are always of the payload bytes as signed.
func cleanJSON(payload []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return payload // a verified payload is strict JSON; this does not happen
	}
	out, err := json.Marshal(cleanValue(v))
	if err != nil {
		return payload
	}
	return out
}

func cleanValue(v any) any {
	switch x := v.(type) {
	case string:
		return safe(x)
	case []any:
		for i := range x {
			x[i] = cleanValue(x[i])
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[safeLine(k)] = cleanValue(e)
		}
		return out
	}
	return v
}
