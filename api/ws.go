package api

import (
	"encoding/json"

	"github.com/twokey/twokey/conversation"
)

// The WebSocket's frames (GET /v1/ws, PROTOCOL 7): one JSON object per
// text frame.

// ClientFrame is a frame a client sends: subscribe (to a conversation,
// after a seq), post (an envelope) or ping, with a ref the answer echoes.
type ClientFrame struct {
	Op           string          `json:"op"`
	Conversation string          `json:"conversation"`
	After        uint64          `json:"after"`
	Ref          json.RawMessage `json:"ref"`
	Envelope     json.RawMessage `json:"envelope"`
}

// ServerFrame is a frame the server sends: a record, an ack of a post
// (its seq), a pong, or an error.
type ServerFrame struct {
	Op           string               `json:"op"`
	Conversation string               `json:"conversation,omitempty"`
	Record       *conversation.Record `json:"record,omitempty"`
	Ref          json.RawMessage      `json:"ref,omitempty"`
	Seq          uint64               `json:"seq,omitempty"`
	Error        *ErrorDetail         `json:"error,omitempty"`
}
