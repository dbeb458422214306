package audit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/conversation"
)

// ParseCheckpoint reads a checkpoint an auditor kept: the JSON answer of
// GET /v1/conversations/{id}/checkpoint, or an earlier export, whose
// checkpoint is taken. It checks the layout only (a seq, a chain value
// and an envelope); Verify checks the gateway's signature and that the log
// still agrees with it.
func ParseCheckpoint(data []byte) (*Checkpoint, error) {
	var x struct {
		Format     string      `json:"format"`
		Checkpoint *Checkpoint `json:"checkpoint"`
	}
	if err := json.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("is not JSON: %v", err)
	}
	cp := x.Checkpoint
	if x.Format != "" {
		if cp == nil {
			return nil, fmt.Errorf("is an export without a checkpoint")
		}
	} else {
		cp = &Checkpoint{}
		if err := json.Unmarshal(data, cp); err != nil {
			return nil, fmt.Errorf("holds no checkpoint (seq, chain, envelope): %v", err)
		}
	}
	if cp.Seq == 0 || cp.Envelope.Payload == "" || len(cp.Envelope.Signatures) == 0 {
		return nil, fmt.Errorf("holds no checkpoint (seq, chain, envelope)")
	}
	if _, err := conversation.ParseChain(cp.Chain); err != nil {
		return nil, fmt.Errorf("has a chain value that is not sha256:<64 hex digits>")
	}
	return cp, nil
}

// ParseAnchor reads a chain value an auditor noted, SEQ=sha256:HEX (as a
// record's seq and chain show it).
func ParseAnchor(s string) (Anchor, error) {
	seqText, chain, ok := strings.Cut(s, "=")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil || seq == 0 || seqText != strconv.FormatUint(seq, 10) {
		return Anchor{}, fmt.Errorf("%q: write SEQ=sha256:HEX with SEQ a record's number from 1, e.g. 17=sha256:3f2a...", twokey.Clip(s))
	}
	if _, err := conversation.ParseChain(chain); err != nil {
		return Anchor{}, fmt.Errorf("%q: the chain value is not sha256: and 64 hex digits, as a record's \"chain\" shows it", twokey.Clip(s))
	}
	return Anchor{Seq: seq, Chain: chain, From: "your --anchor " + seqText}, nil
}
