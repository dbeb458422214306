package server

import (
	"context"
	"net/http"
	"slices"
	"strconv"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
)

// webhookAdmin is what the management API asks of the notifier
// (notify.Notifier) about its targets and their deliveries. Its errors are
// classified (twokey.Errorf) and writeError answers them as they are.
type webhookAdmin interface {
	Targets() []api.Webhook
	Target(name string) (api.Webhook, error)
	Create(in api.WebhookCreate) (api.WebhookSecret, error)
	// Update answers the target and, only when it rotated the secret, the
	// new secret.
	Update(name string, in api.WebhookUpdate) (api.WebhookSecret, error)
	Delete(name string) error
	// Test sends one webhook.test to the target now and waits for it.
	Test(ctx context.Context, name string) (api.WebhookDelivery, error)
	// Deliveries are the target's, newest first; state "" is all of them.
	Deliveries(name, state string, limit int) ([]api.WebhookDelivery, error)
}

// Log attribute keys of the webhook endpoints. A target's URL is never
// logged (a Slack or ntfy URL is itself a credential), nor its secret.
const (
	attrWebhook = "webhook"
	attrFormat  = "format"
)

func (o *operator) webhookRoutes(a *API, g func(http.HandlerFunc) http.HandlerFunc) {
	a.Handle("GET /v0/management/webhooks", g(o.hooked(o.webhooksList)))
	a.Handle("POST /v0/management/webhooks", g(o.hooked(o.webhooksCreate)))
	a.Handle("GET /v0/management/webhooks/{name}", g(o.hooked(o.webhooksGet)))
	a.Handle("PATCH /v0/management/webhooks/{name}", g(o.hooked(o.webhooksUpdate)))
	a.Handle("DELETE /v0/management/webhooks/{name}", g(o.hooked(o.webhooksDelete)))
	a.Handle("POST /v0/management/webhooks/{name}/test", g(o.hooked(o.webhooksTest)))
	a.Handle("GET /v0/management/webhooks/{name}/deliveries", g(o.hooked(o.webhooksDeliveries)))
}

// hooked answers 404 while no notifier runs (o.hooks nil), else h.
func (o *operator) hooked(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o.hooks == nil {
			writeError(w, o.log, twokey.Errorf(twokey.ENotFound,
				"webhook notifications are not running on this server, so it has no targets to manage; see docs/operations.md, Notifications"))
			return
		}
		h(w, r)
	}
}

func (o *operator) webhooksList(w http.ResponseWriter, r *http.Request) {
	hooks := o.hooks.Targets()
	if hooks == nil {
		hooks = []api.Webhook{}
	}
	writeJSON(w, http.StatusOK, api.WebhookList{Webhooks: hooks})
}

func (o *operator) webhooksGet(w http.ResponseWriter, r *http.Request) {
	h, err := o.hooks.Target(r.PathValue("name"))
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

func (o *operator) webhooksCreate(w http.ResponseWriter, r *http.Request) {
	var in api.WebhookCreate
	if err := decodeStrict(w, r, &in); err != nil {
		writeError(w, o.log, err)
		return
	}
	out, err := o.hooks.Create(in)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	o.log.Info("webhook target created", attrWebhook, out.Name, attrFormat, out.Format, attrClient, o.mgmt.clientAddr(r))
	writeJSON(w, http.StatusCreated, out)
}

func (o *operator) webhooksUpdate(w http.ResponseWriter, r *http.Request) {
	var in api.WebhookUpdate
	if err := decodeStrict(w, r, &in); err != nil {
		writeError(w, o.log, err)
		return
	}
	if in.Grace != "" && !in.RotateSecret {
		writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "grace is how long the previous secret keeps signing after a rotation: give it with rotate_secret: true"))
		return
	}
	out, err := o.hooks.Update(r.PathValue("name"), in)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	o.log.Info("webhook target changed", attrWebhook, out.Name, "fields", updatedFields(in), "secret_rotated", out.Secret != "", attrClient, o.mgmt.clientAddr(r))
	writeJSON(w, http.StatusOK, out)
}

// updatedFields names the fields an update gives, for the log (never
// their values).
func updatedFields(in api.WebhookUpdate) []string {
	var fs []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"url", in.URL != nil}, {"format", in.Format != nil}, {"conversations", in.Conversations != nil},
		{"events", in.Events != nil}, {"detail", in.Detail != nil}, {"secret", in.RotateSecret}} {
		if f.set {
			fs = append(fs, f.name)
		}
	}
	return fs
}

func (o *operator) webhooksDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := o.hooks.Delete(name); err != nil {
		writeError(w, o.log, err)
		return
	}
	o.log.Info("webhook target deleted", attrWebhook, name, attrClient, o.mgmt.clientAddr(r))
	writeJSON(w, http.StatusOK, api.WebhookDeleted{Deleted: name})
}

// webhooksTest sends one webhook.test now and answers the delivery, 200
// whatever the receiver said: the delivery's state and last status say it.
func (o *operator) webhooksTest(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	d, err := o.hooks.Test(r.Context(), name)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	o.log.Info("webhook target tested", attrWebhook, name, "state", d.State, "status", d.LastStatus, attrClient, o.mgmt.clientAddr(r))
	writeJSON(w, http.StatusOK, d)
}

var deliveryStates = []string{api.DeliveryQueued, api.DeliveryDelivered, api.DeliveryDead}

func (o *operator) webhooksDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && !slices.Contains(deliveryStates, state) {
		writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "state=%q: give queued, delivered or dead (or no state for all)", twokey.ClipAt(state, 200)))
		return
	}
	limit := api.DefaultDeliveries
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > api.MaxDeliveries {
			writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "limit=%q: give 1 to %d deliveries", twokey.ClipAt(s, 200), api.MaxDeliveries))
			return
		}
		limit = n
	}
	ds, err := o.hooks.Deliveries(r.PathValue("name"), state, limit)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	if ds == nil {
		ds = []api.WebhookDelivery{}
	}
	writeJSON(w, http.StatusOK, api.WebhookDeliveries{Deliveries: ds})
}
