package notify

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twokey/twokey/api"
)

// entry is one notification to one target, as the outbox keeps it (key
// TARGET/ORDER) until it is delivered or given up.
type entry struct {
	V          int       `json:"v"`
	Target     string    `json:"target"`
	Order      uint64    `json:"order"`
	Key        string    `json:"key,omitempty"` // its ordering key: r/CONV/REQUEST or c/CONV
	Event      Event     `json:"event"`
	Attempts   int       `json:"attempts,omitempty"`
	NextAt     time.Time `json:"next_at,omitzero"`
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`

	busy bool // an attempt is in flight (memory only)
}

const entryVersion = 1

// orderKey is ORDER in keys: sorts as the orders do.
func orderKey(target string, order uint64) string { return fmt.Sprintf("%s/%016x", target, order) }

// parseKey reads TARGET/ORDER.
func parseKey(k string) (target string, order uint64, err error) {
	i := strings.LastIndexByte(k, '/')
	if i <= 0 || len(k)-i-1 != 16 {
		return "", 0, fmt.Errorf("notify: key %q is not TARGET/ORDER", k)
	}
	order, err = strconv.ParseUint(k[i+1:], 16, 64)
	if err != nil {
		return "", 0, fmt.Errorf("notify: key %q is not TARGET/ORDER", k)
	}
	return k[:i], order, nil
}

// decodeEntry reads an outbox value stored under key k.
func decodeEntry(k string, v []byte) (*entry, error) {
	target, order, err := parseKey(k)
	if err != nil {
		return nil, err
	}
	var e entry
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("notify: outbox %s: %w", k, err)
	}
	switch {
	case e.V != entryVersion:
		return nil, fmt.Errorf("notify: outbox %s: version %d, not %d", k, e.V, entryVersion)
	case e.Target != target || e.Order != order:
		return nil, fmt.Errorf("notify: outbox %s: holds %s/%016x", k, e.Target, e.Order)
	case !strings.HasPrefix(e.Event.ID, "msg_") || e.Event.Type == "":
		return nil, fmt.Errorf("notify: outbox %s: no webhook id or type", k)
	case e.Attempts < 0:
		return nil, fmt.Errorf("notify: outbox %s: %d attempts", k, e.Attempts)
	}
	return &e, nil
}

// decodeDelivery reads a Deliveries value.
func decodeDelivery(k string, v []byte) (api.WebhookDelivery, uint64, error) {
	_, order, err := parseKey(k)
	if err != nil {
		return api.WebhookDelivery{}, 0, err
	}
	var d api.WebhookDelivery
	if err := json.Unmarshal(v, &d); err != nil {
		return d, 0, fmt.Errorf("notify: delivery %s: %w", k, err)
	}
	if d.State != api.DeliveryDelivered && d.State != api.DeliveryDead {
		return d, 0, errors.New("notify: delivery " + k + ": state " + d.State)
	}
	return d, order, nil
}

// delivery is e as the management API shows it.
func (e *entry) delivery(state string) api.WebhookDelivery {
	return api.WebhookDelivery{ID: e.Event.ID, Target: e.Target, Event: e.Event.Type, Conversation: e.Event.Data.Conversation.ID,
		Request: requestID(&e.Event), State: state, Attempts: e.Attempts, CreatedAt: e.Event.Timestamp, NextAt: e.NextAt,
		LastStatus: e.LastStatus, LastError: e.LastError}
}

func requestID(ev *Event) string {
	if ev.Data.Request != nil {
		return ev.Data.Request.ID
	}
	return ""
}

// newID is a webhook-id: msg_ and 16 random bytes.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "msg_" + base64.RawURLEncoding.EncodeToString(b)
}
