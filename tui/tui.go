// Package tui is twokey's terminal client (`twokey tui`), built on
// bubbletea: conversations on the left, the selected conversation's log as
// cards on the right, an input line for chat and slash commands at the
// bottom.
//
// The model is pure: state, Update and View. Everything that talks to the
// server is a tea.Cmd that calls a Backend (in production a
// *client.Client), so tests feed records and key presses straight into the
// model. Every record is verified as it arrives (signature, author, kind,
// body, seq and hash chain, with the gateway's key pinned) and only
// verified records change what the TUI believes; one that fails is drawn
// in red with the reason. An approval's digest is computed from the
// verified gate.request record the TUI holds, never taken from the
// server's word, so `a` can only approve what is on screen.
package tui

import (
	"context"
	"errors"
	"io"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// Backend is what the TUI needs from a server. *client.Client is one.
type Backend interface {
	Gateway(ctx context.Context) (*api.Gateway, error)
	Catalog(ctx context.Context) (*api.Catalog, error)
	Conversations(ctx context.Context) ([]api.Summary, error)
	Follow(ctx context.Context, conv string, after uint64, opt client.FollowOptions, fn func(conversation.Record) error) error
	Say(ctx context.Context, conv, text string) (conversation.Record, error)
	Submit(ctx context.Context, conv string, p gate.RequestPayload) (conversation.Record, error)
	VoteDigest(ctx context.Context, conv, id, digest string, approve bool, reason string) (conversation.Record, error)
	Cancel(ctx context.Context, conv, id string) (conversation.Record, error)
	EnableGate(ctx context.Context, conv string, m int, rules []gate.Rule) (conversation.Record, error)
	AddSecret(ctx context.Context, conv, service, header, template string, ttl time.Duration, value []byte) (conversation.Record, error)
	RevokeSecret(ctx context.Context, conv, secretID, service string) (conversation.Record, error)
	Propose(ctx context.Context, conv string, p gate.ProposePayload) (conversation.Record, error)
	Header(ctx context.Context, conv string) (conversation.Header, error)
	Post(ctx context.Context, conv, kind string, payload any) (conversation.Record, error)
}

var _ Backend = (*client.Client)(nil)

// Options configure a TUI.
type Options struct {
	Backend Backend
	// Self is the user's key id: whose votes are "yours". SelfName is
	// the name in the user's identity file, shown where no conversation
	// names them.
	Self     string
	SelfName string
	// Conversation, when set, is the conversation (name, id or id prefix)
	// selected at start.
	Conversation string
	// Now is the clock (default time.Now); Location the zone times are
	// shown in (default time.Local).
	Now      func() time.Time
	Location *time.Location
	// RequestTTL is how long a request made with /request waits for
	// approvals (default 1 h).
	RequestTTL time.Duration
	// Input and Output default to the terminal.
	Input  io.Reader
	Output io.Writer
}

// Run runs the TUI until the user quits or ctx ends.
func Run(ctx context.Context, o Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := New(ctx, o)
	opts := []tea.ProgramOption{tea.WithContext(ctx)}
	if o.Input != nil {
		opts = append(opts, tea.WithInput(o.Input))
	}
	if o.Output != nil {
		opts = append(opts, tea.WithOutput(o.Output))
	}
	_, err := tea.NewProgram(m, opts...).Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil // the context ended: an orderly stop
	}
	return err
}
