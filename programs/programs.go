// Package programs holds program keys: bearer keys for programs (an AI
// agent, a CI job) that may propose calls through the gateway but never
// approve them.
//
// It makes keys (shown once; only their SHA-256 is kept), authenticates
// them in constant time, and enforces each key's policy: whether it is
// enabled, its expiry, its template list, its rate and its monthly cap.
// Charge is the one counter that both checks and charges the rate and the
// cap, under one lock, so concurrent requests can never overshoot them.
// Time comes from the caller's clock. The package performs no HTTP and no
// storage: a Persister saves what changes, durably, before Charge returns.
package programs

import (
	"slices"
	"time"
)

// Program is a named program key and its accounting.
type Program struct {
	Name             string    `json:"name"`
	Conversation     string    `json:"conversation"`
	ConversationName string    `json:"conversation_name"`
	Keys             []Key     `json:"keys"` // Keys[0] is the current key
	Policy           Policy    `json:"policy"`
	Enabled          bool      `json:"enabled"`
	CreatedAt        time.Time `json:"created_at"`
	LastUsed         time.Time `json:"last_used,omitzero"`
	// Month is the calendar month (UTC, "2006-01") MonthCount counts.
	Month      string `json:"month,omitempty"`
	MonthCount int64  `json:"month_count"`
}

// Clone returns a deep copy.
func (p *Program) Clone() *Program {
	c := *p
	c.Keys = slices.Clone(p.Keys)
	c.Policy.Templates = slices.Clone(p.Policy.Templates)
	return &c
}

// Prefix is the current key's display prefix.
func (p *Program) Prefix() string {
	if len(p.Keys) == 0 {
		return ""
	}
	return p.Keys[0].Prefix
}

// UsedIn returns how many requests the program made in now's month.
func (p *Program) UsedIn(now time.Time) int64 {
	if p.Month != monthOf(now) {
		return 0
	}
	return p.MonthCount
}

func monthOf(t time.Time) string { return t.UTC().Format("2006-01") }
