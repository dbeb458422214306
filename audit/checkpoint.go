package audit

import (
	"encoding/json"
	"fmt"
	"slices"
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

// prepare checks the gateway key and every checkpoint's signature.
func (v *verifier) prepare(opt Options) error {
	if _, err := conversation.ParseKeyID(v.gw); err != nil {
		return v.fail(CheckFormat, "the export's gateway key %q is not a key id: %s", twokey.Clip(v.gw), twokey.ErrorMessage(err))
	}
	if opt.Gateway != "" && opt.Gateway != v.gw {
		return v.fail(CheckGateway, "the export names gateway %s, but you pinned %s: it comes from another gateway or was re-signed", v.gw, opt.Gateway)
	}
	v.rep.Gateway = v.gw
	cps := slices.Clone(opt.Checkpoints)
	if v.x.Checkpoint != nil {
		cps = append([]Checkpoint{*v.x.Checkpoint}, cps...)
	}
	for i, cp := range cps {
		from := "the export's checkpoint"
		if v.x.Checkpoint == nil || i > 0 {
			from = "a checkpoint you kept"
		}
		m, err := conversation.Verify(cp.Envelope)
		if err != nil {
			return v.fail(CheckCheckpoint, "%s does not verify: %s", from, twokey.ErrorMessage(err))
		}
		if m.Kind != conversation.KindCheckpoint || m.Author != v.gw {
			return v.fail(CheckCheckpoint, "%s is a %s signed by %s, not a checkpoint signed by the gateway %s", from, m.Kind, m.Author, v.gw)
		}
		var p struct {
			Conversation string `json:"conversation"`
			Seq          uint64 `json:"seq"`
			Chain        string `json:"chain"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Conversation != v.x.Conversation || p.Seq != cp.Seq || p.Chain != cp.Chain {
			return v.fail(CheckCheckpoint, "%s's signed payload (conversation %s, seq %d) does not match its fields or this conversation", from, twokey.Clip(p.Conversation), p.Seq)
		}
		if cp.Seq == 0 {
			return v.fail(CheckCheckpoint, "%s is at seq 0", from)
		}
		v.anchors[cp.Seq] = append(v.anchors[cp.Seq], Anchor{Seq: cp.Seq, Chain: cp.Chain, From: from + " (signed by the gateway)"})
	}
	for _, a := range opt.Anchors {
		if a.From == "" {
			a.From = "a chain value you kept"
		}
		if a.Seq == 0 {
			return v.fail(CheckFormat, "an anchor at seq 0")
		}
		v.anchors[a.Seq] = append(v.anchors[a.Seq], a)
	}
	return nil
}
