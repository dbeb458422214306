package tui

import (
	"fmt"
	"strings"
	"unicode"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// editor is a one-line text field: the input line, and the hidden field a
// secret is typed into (mask set). Small on purpose: it draws the same
// text at the same size every time, which keeps screens testable.
type editor struct {
	prompt      string
	placeholder string
	mask        rune // when not 0, every character shows as mask
	limit       int  // in bytes; 0 for none
	value       []rune
	pos         int
	focused     bool
}

func (e *editor) Value() string { return string(e.value) }

func (e *editor) SetValue(s string) {
	e.value = []rune(s)
	e.pos = len(e.value)
}

func (e *editor) Reset() {
	clear(e.value) // a hidden key does not linger in this buffer
	e.value, e.pos = nil, 0
}

// insert puts s at the cursor. Line breaks become spaces on the input
// line; in the hidden field (a key, pasted with the newline that ended
// its line) they are dropped. Text past the limit is refused whole, with
// an error that says so (and never repeats the text).
func (e *editor) insert(s string) error {
	var rs []rune
	for _, r := range s {
		if e.mask != 0 && (r == '\n' || r == '\r') {
			continue
		}
		if r == '\n' || r == '\r' || r == '\t' {
			r = ' '
		}
		if unicode.IsPrint(r) {
			rs = append(rs, r)
		}
	}
	if e.limit > 0 && len(string(e.value))+len(string(rs)) > e.limit {
		what := "the input line"
		if e.mask != 0 {
			what = "the key field"
		}
		if len(rs) > 1 {
			return fmt.Errorf("nothing pasted: %d more bytes would make %s longer than its limit of %d bytes", len(string(rs)), what, e.limit)
		}
		return fmt.Errorf("%s is full: it takes at most %d bytes", what, e.limit)
	}
	v := make([]rune, 0, len(e.value)+len(rs))
	v = append(v, e.value[:e.pos]...)
	v = append(v, rs...)
	v = append(v, e.value[e.pos:]...)
	e.value, e.pos = v, e.pos+len(rs)
	return nil
}

// key edits the line; it returns insert's error for a character that does
// not fit.
func (e *editor) key(k tea.KeyPressMsg) error {
	switch k.String() {
	case "left", "ctrl+b":
		e.pos = max(0, e.pos-1)
	case "right", "ctrl+f":
		e.pos = min(len(e.value), e.pos+1)
	case "home", "ctrl+a":
		e.pos = 0
	case "end", "ctrl+e":
		e.pos = len(e.value)
	case "backspace", "ctrl+h":
		if e.pos > 0 {
			e.value = append(e.value[:e.pos-1], e.value[e.pos:]...)
			e.pos--
		}
	case "delete", "ctrl+d":
		if e.pos < len(e.value) {
			e.value = append(e.value[:e.pos], e.value[e.pos+1:]...)
		}
	case "ctrl+u":
		e.value, e.pos = append([]rune(nil), e.value[e.pos:]...), 0
	case "ctrl+k":
		e.value = e.value[:e.pos]
	case "ctrl+w", "alt+backspace":
		i := e.pos
		for i > 0 && e.value[i-1] == ' ' {
			i--
		}
		for i > 0 && e.value[i-1] != ' ' {
			i--
		}
		e.value, e.pos = append(e.value[:i], e.value[e.pos:]...), i
	case "space":
		return e.insert(" ")
	default:
		if k.Text == "" || k.Mod&(tea.ModCtrl|tea.ModAlt) != 0 {
			return nil
		}
		return e.insert(k.Text)
	}
	return nil
}

// view draws the line at width w, scrolled so the cursor shows.
func (e *editor) view(w int) string {
	if len(e.value) == 0 && !e.focused {
		return e.prompt + styleFaint.Render(e.placeholder)
	}
	shown := e.value
	if e.mask != 0 {
		shown = []rune(strings.Repeat(string(e.mask), len(e.value)))
	}
	room := max(1, w-ansi.StringWidth(e.prompt)-1)
	start := 0
	if e.pos > room {
		start = e.pos - room
	}
	before := string(shown[start:e.pos])
	if !e.focused {
		return e.prompt + string(shown[start:])
	}
	under, after := " ", ""
	if e.pos < len(shown) {
		under, after = string(shown[e.pos]), string(shown[e.pos+1:])
	}
	return e.prompt + before + lipgloss.NewStyle().Reverse(true).Render(under) + after
}
