package tui

import (
	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
)

// keyMap is the keys of the conversations and log panes. The footer and
// the help overlay are drawn from it, so they cannot drift from what the
// keys do.
type keyMap struct {
	Approve, ApproveWhy, Reject, Veto, Cancel, Down, Up, Top, Bottom, Expand, ScrollDown, ScrollUp,
	Pane, PanePrev, Command, Help, Quit key.Binding
}

var keys = keyMap{
	Approve:    key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "approve")),
	ApproveWhy: key.NewBinding(key.WithKeys("A"), key.WithHelp("A", "with reason")),
	Reject:     key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "reject")),
	Veto:       key.NewBinding(key.WithKeys("v"), key.WithHelp("v", "veto")),
	Cancel:     key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "cancel")),
	Down:       key.NewBinding(key.WithKeys("j", "down"), key.WithHelp("j/↓", "next")),
	Up:         key.NewBinding(key.WithKeys("k", "up"), key.WithHelp("k/↑", "previous")),
	Top:        key.NewBinding(key.WithKeys("g", "home"), key.WithHelp("g", "first")),
	Bottom:     key.NewBinding(key.WithKeys("G", "end"), key.WithHelp("G", "last (and follow)")),
	Expand:     key.NewBinding(key.WithKeys("enter", "e", "space"), key.WithHelp("enter", "expand")),
	ScrollDown: key.NewBinding(key.WithKeys("J", "pgdown", "ctrl+d"), key.WithHelp("J/pgdn", "scroll a tall card")),
	ScrollUp:   key.NewBinding(key.WithKeys("K", "pgup", "ctrl+u"), key.WithHelp("K/pgup", "scroll back")),
	Pane:       key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "pane")),
	PanePrev:   key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous pane")),
	Command:    key.NewBinding(key.WithKeys("/", "i", ":"), key.WithHelp("/", "command or chat")),
	Help:       key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
	Quit:       key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
}

// ShortHelp is the footer of the log pane.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Approve, k.Reject, k.Cancel, k.Down, k.Up, k.Expand, k.Pane, k.Command, k.Help, k.Quit}
}

// FullHelp is the keys part of the help overlay.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Approve, k.ApproveWhy, k.Reject, k.Veto, k.Cancel, k.Expand},
		{k.Down, k.Up, k.Top, k.Bottom, k.ScrollDown, k.ScrollUp},
		{k.Pane, k.PanePrev, k.Command, k.Help, k.Quit},
	}
}

// convKeys is the footer of the conversations pane.
type convKeys struct{}

func (convKeys) ShortHelp() []key.Binding {
	return []key.Binding{
		key.NewBinding(key.WithKeys("j"), key.WithHelp("j/k", "choose")),
		keys.Pane, keys.Command, keys.Help, keys.Quit,
	}
}

func (convKeys) FullHelp() [][]key.Binding { return [][]key.Binding{convKeys{}.ShortHelp()} }

func newHelp() help.Model {
	h := help.New()
	h.ShortSeparator = " · "
	return h
}
