package tui

import (
	"context"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
)

// The commands below are the model's only side effects: each calls the
// Backend and answers with a message.

const (
	callTimeout   = 30 * time.Second
	refreshPeriod = 10 * time.Second
)

func (m *Model) loadCmd() tea.Cmd {
	ctx, b := m.ctx, m.backend
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		gw, err := b.Gateway(ctx)
		if err != nil {
			return startMsg{err: err}
		}
		cat, err := b.Catalog(ctx)
		if err != nil {
			return startMsg{err: err}
		}
		convs, err := b.Conversations(ctx)
		if err != nil {
			return startMsg{err: err}
		}
		return startMsg{gw: gw, cat: cat, convs: convs}
	}
}

func (m *Model) convsCmd() tea.Cmd {
	ctx, b := m.ctx, m.backend
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		convs, err := b.Conversations(ctx)
		return convsMsg{convs: convs, err: err}
	}
}

func (m *Model) tickCmd() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// refreshCmd re-reads the conversation list now and then (to pick up new
// ones), and retries the first load sooner while it has not succeeded.
func (m *Model) refreshCmd() tea.Cmd {
	d := refreshPeriod
	if !m.loaded {
		d = 2 * time.Second
	}
	return tea.Tick(d, func(time.Time) tea.Msg { return refreshMsg{} })
}

// listenCmd waits for the next message from the follow goroutines.
func (m *Model) listenCmd() tea.Cmd {
	ctx, events := m.ctx, m.events
	return func() tea.Msg {
		select {
		case msg := <-events:
			return eventMsg{msg}
		case <-ctx.Done():
			return nil
		}
	}
}

// followCmd streams a conversation's records after seq after (0 for all).
// The client reconnects after a drop and resumes after the last record it
// delivered; the model drops anything at or below the last seq it holds.
// When the stream ends for good the model hears followEndMsg, and restarts
// it (restartMsg) unless the server's refusal is permanent.
func (m *Model) followCmd(conv string, after uint64) tea.Cmd {
	ctx, events, b := m.ctx, m.events, m.backend
	return func() tea.Msg {
		go func() {
			send := func(msg tea.Msg) bool {
				select {
				case events <- msg:
					return true
				case <-ctx.Done():
					return false
				}
			}
			err := b.Follow(ctx, conv, after, client.FollowOptions{OnState: func(s string) { send(connMsg{conv, s}) }},
				func(r conversation.Record) error {
					if !send(recordMsg{conv, r}) {
						return ctx.Err()
					}
					return nil
				})
			send(followEndMsg{conv, err})
		}()
		return nil
	}
}

// call runs one action against the server and reports what became of it.
// what names the action ("approve 3f2a9c1d"), done says it happened.
func (m *Model) call(what, done string, f func(ctx context.Context, b Backend) error) tea.Cmd {
	return m.callFor(doneMsg{what: what, done: done}, f)
}

// callFor is call with the outcome message given whole (a vote names the
// request whose in-flight mark a refusal clears).
func (m *Model) callFor(out doneMsg, f func(ctx context.Context, b Backend) error) tea.Cmd {
	ctx, b := m.ctx, m.backend
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		out.err = f(ctx, b)
		return out
	}
}

// Restarting a stream that ended: the first attempt after a second, then
// twice as long each time, never more than followBackoffMax apart.
const (
	followBackoffMin = time.Second
	followBackoffMax = 30 * time.Second
)

// followBackoff is the wait before restart number n (0 for the first).
func followBackoff(n int) time.Duration {
	d := followBackoffMin
	for range n {
		d *= 2
		if d >= followBackoffMax {
			return followBackoffMax
		}
	}
	return d
}

// permanentStreamError reports whether a stream's end is one retrying
// cannot cure: the user is not (or no longer) a member, or the
// conversation is gone.
func permanentStreamError(err error) bool {
	switch twokey.ErrorCode(err) {
	case twokey.ENotMember, twokey.EUnknownConversation, twokey.EForbidden:
		return true
	}
	return false
}
