package api

import "time"

// The management API's webhook targets (/v0/management/webhooks) and the
// deliveries of their notifications: docs/operations.md, Notifications.

// Formats of a webhook target.
const (
	WebhookJSON  = "json"  // the versioned JSON schema, signed (Standard Webhooks)
	WebhookSlack = "slack" // a Slack incoming-webhook message with a button to the deep link
	WebhookNtfy  = "ntfy"  // an ntfy message: title, message, priority, Click: the deep link
)

// Details of a webhook target: what its payloads carry beyond the summary.
const (
	DetailSummary = "summary" // default: no params, no URL
	DetailFull    = "full"    // also the params and the resolved URL
)

// Webhook is a notification target as the management API shows it: never
// its secret.
type Webhook struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Format string `json:"format"`
	// Conversations are the names or ids of the conversations it covers;
	// ["*"] covers all.
	Conversations []string `json:"conversations"`
	// Events are the events it wants (notify's event names); empty: the
	// default set (every event but request.approved_by).
	Events []string `json:"events"`
	Detail string   `json:"detail"`
	// Source is "config" for a target of twokey.yaml (read-only through
	// the API) or "api".
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// SecretRotatedAt is when its secret was last made; until
	// PreviousSecretUntil the previous secret signs too.
	SecretRotatedAt     time.Time `json:"secret_rotated_at,omitzero"`
	PreviousSecretUntil time.Time `json:"previous_secret_until,omitzero"`
	// The queue: deliveries waiting (and the oldest's creation), and
	// deliveries given up (dead-lettered).
	Queued       int       `json:"queued"`
	OldestQueued time.Time `json:"oldest_queued,omitzero"`
	Dead         int       `json:"dead"`
}

// WebhookCreate is the body of POST /v0/management/webhooks.
type WebhookCreate struct {
	Name          string   `json:"name"`
	URL           string   `json:"url"`
	Format        string   `json:"format,omitempty"` // default json
	Conversations []string `json:"conversations,omitempty"`
	Events        []string `json:"events,omitempty"`
	Detail        string   `json:"detail,omitempty"` // default summary
}

// WebhookUpdate is the body of PATCH /v0/management/webhooks/{name}: the
// fields given replace the target's. RotateSecret makes a new secret;
// the previous one keeps signing beside it for Grace (default 24h, "0"
// ends it at once).
type WebhookUpdate struct {
	URL           *string   `json:"url,omitempty"`
	Format        *string   `json:"format,omitempty"`
	Conversations *[]string `json:"conversations,omitempty"`
	Events        *[]string `json:"events,omitempty"`
	Detail        *string   `json:"detail,omitempty"`
	RotateSecret  bool      `json:"rotate_secret,omitempty"`
	Grace         string    `json:"grace,omitempty"`
}

// WebhookSecret is what creating a target or rotating its secret answers:
// the target, and its new secret, shown this once.
type WebhookSecret struct {
	Webhook
	Secret string `json:"secret,omitempty"`
}

// States of a delivery.
const (
	DeliveryQueued    = "queued"    // waiting for its next attempt
	DeliveryDelivered = "delivered" // a 2xx answer
	DeliveryDead      = "dead"      // given up after the retry window
)

// WebhookDelivery is one notification to one target and what became of it.
type WebhookDelivery struct {
	// ID is the webhook-id every attempt carries.
	ID           string    `json:"id"`
	Target       string    `json:"target"`
	Event        string    `json:"event"`
	Conversation string    `json:"conversation,omitempty"`
	Request      string    `json:"request_id,omitempty"`
	State        string    `json:"state"`
	Attempts     int       `json:"attempts"`
	CreatedAt    time.Time `json:"created_at"`
	NextAt       time.Time `json:"next_at,omitzero"`
	DoneAt       time.Time `json:"done_at,omitzero"`
	// LastStatus is the receiver's last HTTP status (0: no answer), and
	// LastError why the last attempt failed, clipped (never the whole
	// response body).
	LastStatus int    `json:"last_status,omitempty"`
	LastError  string `json:"last_error,omitempty"`
}

// WebhookDeliveries is GET /v0/management/webhooks/{name}/deliveries:
// newest first.
type WebhookDeliveries struct {
	Deliveries []WebhookDelivery `json:"deliveries"`
}

// WebhookList is GET /v0/management/webhooks: every target, those of
// twokey.yaml and those made through the API, by name.
type WebhookList struct {
	Webhooks []Webhook `json:"webhooks"`
}

// WebhookDeleted is what DELETE /v0/management/webhooks/{name} answers.
type WebhookDeleted struct {
	Deleted string `json:"deleted"`
}

// A page of GET /v0/management/webhooks/{name}/deliveries: limit= is 1 to
// MaxDeliveries, DefaultDeliveries when not given.
const (
	DefaultDeliveries = 50
	MaxDeliveries     = 1000
)
