package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/conversation"
)

var errStop = errors.New("stop")

// FollowOptions tune Follow.
type FollowOptions struct {
	// OnState hears "connected", "reconnecting: ..." as the socket comes and goes.
	OnState func(string)
	// MaxRetryWait caps the backoff between reconnects (default 5 s).
	MaxRetryWait time.Duration
}

// Follow streams conv's records after seq over the WebSocket, calling fn
// for each in order. It reconnects after a drop and resumes from the last
// record delivered, so fn sees each record once. It returns fn's error,
// ctx's, or a refusal from the server.
func (c *Client) Follow(ctx context.Context, conv string, after uint64, opt FollowOptions, fn func(conversation.Record) error) error {
	if opt.MaxRetryWait == 0 {
		opt.MaxRetryWait = 5 * time.Second
	}
	wait := 100 * time.Millisecond
	for {
		err := c.followOnce(ctx, conv, &after, opt, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fe fnError
		if errors.As(err, &fe) {
			return fe.err // the callback's own word, never retried
		}
		if twokey.ErrorCode(err) != twokey.EUnavailable {
			return err // a refusal (not a member, bad token): retrying will not help
		}
		if opt.OnState != nil {
			opt.OnState("reconnecting: " + err.Error())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, opt.MaxRetryWait)
	}
}

// fnError carries the callback's error out of followOnce.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// Dial opens an authenticated WebSocket to the server.
func (c *Client) Dial(ctx context.Context) (*websocket.Conn, error) {
	tok, err := c.Token(ctx)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(c.Base)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/ws"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: tlsConfigOf(c.HTTP.Transport)}
	if g, ok := c.HTTP.Transport.(*guard); ok && u.Scheme == "ws" {
		// The handshake carries the token: ask the plain port first, as
		// every request with a credential does.
		hu := *u
		hu.Scheme = "http"
		if err := g.check(ctx, &hu, hu.Host); err != nil {
			if ce := AsRefusal(err); ce != nil {
				return nil, ce
			}
			return nil, &twokey.Error{Code: twokey.EUnavailable, Message: fmt.Sprintf("cannot reach the twokey server at %s: %v", c.Base, err), Err: err}
		}
	}
	ws, resp, err := d.DialContext(ctx, u.String(), http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			c.mu.Lock()
			c.token = ""
			c.mu.Unlock()
		}
		return nil, &twokey.Error{Code: twokey.EUnavailable, Message: fmt.Sprintf("cannot open the WebSocket at %s: %v", u.Redacted(), err), Err: err}
	}
	return ws, nil
}

func (c *Client) followOnce(ctx context.Context, conv string, after *uint64, opt FollowOptions, fn func(conversation.Record) error) error {
	ws, err := c.Dial(ctx)
	if err != nil {
		return err
	}
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	if err := ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": conv, "after": *after}); err != nil {
		return &twokey.Error{Code: twokey.EUnavailable, Message: err.Error(), Err: err}
	}
	if opt.OnState != nil {
		opt.OnState("connected")
	}
	for {
		var f api.ServerFrame
		if err := ws.ReadJSON(&f); err != nil {
			return &twokey.Error{Code: twokey.EUnavailable, Message: "connection lost: " + err.Error(), Err: err}
		}
		switch f.Op {
		case "record":
			if f.Record == nil || f.Conversation != conv || f.Record.Seq <= *after {
				continue // a duplicate after a resume: already delivered
			}
			if err := fn(*f.Record); err != nil {
				return fnError{err}
			}
			*after = f.Record.Seq
		case "error":
			if f.Error != nil {
				return &twokey.Error{Code: f.Error.Code, Message: f.Error.Message}
			}
		}
	}
}
