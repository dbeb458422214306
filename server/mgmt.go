package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/programs"
)

func keyInfo(p *programs.Program, now time.Time) api.KeyInfo {
	k := api.KeyInfo{Name: p.Name, Prefix: p.Prefix(), Conversation: p.Conversation, ConversationName: p.ConversationName,
		Enabled: p.Enabled, CreatedAt: conversation.FormatTime(p.CreatedAt), Templates: p.Policy.Templates,
		Rate: p.Policy.Rate.String(), Monthly: p.Policy.Monthly, MonthUsage: p.UsedIn(now)}
	if k.Templates == nil {
		k.Templates = []string{}
	}
	if !p.LastUsed.IsZero() {
		k.LastUsed = conversation.FormatTime(p.LastUsed)
	}
	if !p.Policy.ExpiresAt.IsZero() {
		k.ExpiresAt = conversation.FormatTime(p.Policy.ExpiresAt)
	}
	for _, old := range p.Keys[min(1, len(p.Keys)):] {
		k.OldKeys = append(k.OldKeys, api.OldKey{Prefix: old.Prefix, ValidUntil: conversation.FormatTime(old.Until)})
	}
	return k
}

func (o *operator) mgmtRoutes(a *API) {
	g := o.mgmt.wrap
	a.Handle("GET /v0/management/keys", g(o.keysList))
	a.Handle("POST /v0/management/keys", g(o.keysCreate))
	a.Handle("GET /v0/management/keys/{name}", g(o.keysGet))
	a.Handle("DELETE /v0/management/keys/{name}", g(o.keysDelete))
	a.Handle("POST /v0/management/keys/{name}/enable", g(o.keysEnable(true)))
	a.Handle("POST /v0/management/keys/{name}/disable", g(o.keysEnable(false)))
	a.Handle("POST /v0/management/keys/{name}/rotate", g(o.keysRotate))
	a.Handle("GET /v0/management/logs", g(o.logsList))
	a.Handle("GET /v0/management/usage", g(o.usage))
	a.Handle("GET /v0/management/config", g(o.configShow))
	a.Handle("GET /v0/management/bans", g(o.bansList))
	a.Handle("GET /v0/management/cluster", g(o.clusterStatus))
	a.Handle("DELETE /v0/management/bans", g(o.bansDelete))
	o.webhookRoutes(a, g)
	a.Handle("/v0/management/", g(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, o.log, twokey.Errorf(twokey.ENotFound, "no route %s %s; see docs/protocol.md", r.Method, r.URL.Path))
	}))
}

// decodeStrict reads a JSON body into v, refusing unknown fields.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return twokey.Errorf(twokey.EBadPayload, "the body is not what this endpoint takes: %v", err)
	}
	return nil
}

func (o *operator) keysList(w http.ResponseWriter, r *http.Request) {
	now := o.eng.Now()
	out := []api.KeyInfo{}
	for _, p := range o.progs.List() {
		out = append(out, keyInfo(p, now))
	}
	writeJSON(w, http.StatusOK, api.KeyList{Keys: out})
}

func (o *operator) keysGet(w http.ResponseWriter, r *http.Request) {
	p, err := o.progs.Get(r.PathValue("name"))
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	writeJSON(w, http.StatusOK, keyInfo(p, o.eng.Now()))
}

func (o *operator) keysCreate(w http.ResponseWriter, r *http.Request) {
	var in api.KeyCreate
	if err := decodeStrict(w, r, &in); err != nil {
		writeError(w, o.log, err)
		return
	}
	if in.Conversation == "" {
		writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "name the conversation the key proposes to (its id or name)"))
		return
	}
	convID, convName, err := o.eng.ResolveConversation(in.Conversation)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	rate, err := programs.ParseRate(in.Rate)
	if err != nil {
		writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "%v", err))
		return
	}
	pol := programs.Policy{Rate: rate, Monthly: in.Monthly}
	for _, t := range in.Templates {
		if t = strings.TrimSpace(t); t != "" {
			pol.Templates = append(pol.Templates, t)
		}
	}
	if in.Expires != "" {
		d, err := config.ParseDuration(in.Expires)
		if err != nil || d <= 0 {
			writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "expires %q: give a duration such as 30d or 12h", in.Expires))
			return
		}
		pol.ExpiresAt = o.eng.Now().Add(d)
	}
	p, key, err := o.progs.Create(programs.Spec{Name: in.Name, Conversation: convID, ConversationName: convName, Policy: pol})
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	o.log.Info("program key created", attrProgram, p.Name, attrKeyPrefix, p.Prefix(), "conversation", convID, attrClient, o.mgmt.clientAddr(r))
	writeJSON(w, http.StatusCreated, api.NewKey{Key: key, Program: keyInfo(p, o.eng.Now())})
}

func (o *operator) keysEnable(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := o.progs.SetEnabled(r.PathValue("name"), on)
		if err != nil {
			writeError(w, o.log, err)
			return
		}
		o.log.Info("program key changed", attrProgram, p.Name, "enabled", on, attrClient, o.mgmt.clientAddr(r))
		writeJSON(w, http.StatusOK, keyInfo(p, o.eng.Now()))
	}
}

func (o *operator) keysRotate(w http.ResponseWriter, r *http.Request) {
	var in api.KeyRotate
	if err := decodeStrict(w, r, &in); err != nil {
		writeError(w, o.log, err)
		return
	}
	grace := programs.DefaultGrace
	if in.Grace != "" {
		d, err := config.ParseDuration(in.Grace)
		if err != nil {
			writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "grace %q: give a duration such as 24h (0 ends the old key now)", in.Grace))
			return
		}
		grace = d
	}
	p, key, err := o.progs.Rotate(r.PathValue("name"), grace)
	if err != nil {
		writeError(w, o.log, err)
		return
	}
	o.log.Info("program key rotated", attrProgram, p.Name, attrKeyPrefix, p.Prefix(), "grace", grace.String(), attrClient, o.mgmt.clientAddr(r))
	writeJSON(w, http.StatusOK, api.NewKey{Key: key, Program: keyInfo(p, o.eng.Now())})
}

func (o *operator) keysDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := o.progs.Delete(name); err != nil {
		writeError(w, o.log, err)
		return
	}
	o.log.Info("program key deleted", attrProgram, name, attrClient, o.mgmt.clientAddr(r))
	writeJSON(w, http.StatusOK, api.KeyDeleted{Deleted: name})
}

// The logs and usage handlers are in operator_reqlog.go.

func (o *operator) configShow(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.RunningConfig{Config: o.effective})
}

func (o *operator) bansList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.BanList{Bans: o.mgmt.bans(o.eng.Now())})
}

func (o *operator) bansDelete(w http.ResponseWriter, r *http.Request) {
	addr := r.URL.Query().Get("addr")
	if addr != "" {
		client, ok := clientKeyOf(addr)
		if !ok {
			writeError(w, o.log, twokey.Errorf(twokey.EBadPayload, "addr=%q is not an IP address, loopback or an IPv6 /64 as GET /bans lists them", twokey.ClipAt(addr, 200)))
			return
		}
		addr = client
	}
	n := o.mgmt.unban(addr)
	o.log.Info("management blocks lifted", attrClient, addr, "count", n)
	writeJSON(w, http.StatusOK, api.Unbanned{Unbanned: n})
}
