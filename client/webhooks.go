package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/twokey/twokey/api"
)

func webhookPath(name string) string { return "/v0/management/webhooks/" + url.PathEscape(name) }

// Webhooks lists the notification targets, never their secrets.
func (m *Management) Webhooks(ctx context.Context) ([]api.Webhook, error) {
	var out api.WebhookList
	err := m.do(ctx, "GET", "/v0/management/webhooks", nil, &out)
	return out.Webhooks, err
}

// Webhook describes one notification target.
func (m *Management) Webhook(ctx context.Context, name string) (api.Webhook, error) {
	var out api.Webhook
	err := m.do(ctx, "GET", webhookPath(name), nil, &out)
	return out, err
}

// CreateWebhook makes a notification target; the answer holds its
// signing secret, shown this once.
func (m *Management) CreateWebhook(ctx context.Context, in api.WebhookCreate) (api.WebhookSecret, error) {
	var out api.WebhookSecret
	err := m.do(ctx, "POST", "/v0/management/webhooks", in, &out)
	return out, err
}

// UpdateWebhook changes the fields in gives; with in.RotateSecret the
// answer holds the new secret, shown this once.
func (m *Management) UpdateWebhook(ctx context.Context, name string, in api.WebhookUpdate) (api.WebhookSecret, error) {
	var out api.WebhookSecret
	err := m.do(ctx, "PATCH", webhookPath(name), in, &out)
	return out, err
}

// DeleteWebhook deletes a notification target and its queue.
func (m *Management) DeleteWebhook(ctx context.Context, name string) error {
	return m.do(ctx, "DELETE", webhookPath(name), nil, nil)
}

// TestWebhook sends one webhook.test to the target now and returns what
// became of it: a receiver's refusal is in the delivery, not an error.
func (m *Management) TestWebhook(ctx context.Context, name string) (api.WebhookDelivery, error) {
	var out api.WebhookDelivery
	err := m.do(ctx, "POST", webhookPath(name)+"/test", nil, &out)
	return out, err
}

// WebhookDeliveries lists a target's deliveries, newest first: state is
// one of api.DeliveryQueued, DeliveryDelivered, DeliveryDead, or "" for
// all; limit 0 is the server's default (api.DefaultDeliveries).
func (m *Management) WebhookDeliveries(ctx context.Context, name, state string, limit int) ([]api.WebhookDelivery, error) {
	v := url.Values{}
	if state != "" {
		v.Set("state", state)
	}
	if limit != 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	path := webhookPath(name) + "/deliveries"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out api.WebhookDeliveries
	err := m.do(ctx, "GET", path, nil, &out)
	return out.Deliveries, err
}
