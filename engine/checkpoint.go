package engine

import (
	"encoding/json"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/conversation"
)

// CheckpointPayload is the gateway's signed statement that conv's log
// stood at seq with chain value chain.
type CheckpointPayload struct {
	conversation.Header
	Seq   uint64 `json:"seq"`
	Chain string `json:"chain"`
}

// Checkpoint signs where conv's log stands now, for a member.
func (e *Engine) Checkpoint(convID, key string) (*api.Checkpoint, error) {
	c, err := e.member(convID, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	seq, chain := c.st.Seq, c.st.Chain.String()
	c.mu.Unlock()
	p := CheckpointPayload{Header: e.header(convID), Seq: seq, Chain: chain}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return &api.Checkpoint{Seq: seq, Chain: chain, Envelope: conversation.Sign(e.cfg.Gateway, conversation.KindCheckpoint, raw)}, nil
}
