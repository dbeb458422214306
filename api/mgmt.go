package api

// The management API (/v0/management/...): program keys, the running
// configuration and the blocks on clients that sent wrong management keys.
// The request log's shapes are in requestlog.go.

// KeyInfo describes a program key; never the key itself.
type KeyInfo struct {
	Name             string   `json:"name"`
	Prefix           string   `json:"prefix"`
	Conversation     string   `json:"conversation"`
	ConversationName string   `json:"conversation_name"`
	Enabled          bool     `json:"enabled"`
	CreatedAt        string   `json:"created_at"`
	LastUsed         string   `json:"last_used,omitempty"`
	ExpiresAt        string   `json:"expires_at,omitempty"`
	Templates        []string `json:"templates"`
	Rate             string   `json:"rate"`
	Monthly          int64    `json:"monthly"`
	MonthUsage       int64    `json:"month_usage"`
	OldKeys          []OldKey `json:"old_keys,omitempty"`
}

// OldKey is a rotated-out key and when it stops (or stopped) working.
type OldKey struct {
	Prefix     string `json:"prefix"`
	ValidUntil string `json:"valid_until"`
}

// KeyList is GET /v0/management/keys.
type KeyList struct {
	Keys []KeyInfo `json:"keys"`
}

// KeyCreate is the body of POST /v0/management/keys.
type KeyCreate struct {
	Name         string   `json:"name"`
	Conversation string   `json:"conversation"` // id or unique name
	Templates    []string `json:"templates,omitempty"`
	Rate         string   `json:"rate,omitempty"`    // e.g. 60/m
	Monthly      int64    `json:"monthly,omitempty"` // requests per month
	Expires      string   `json:"expires,omitempty"` // from now, e.g. 30d
}

// KeyRotate is the body of POST /v0/management/keys/{name}/rotate.
type KeyRotate struct {
	Grace string `json:"grace,omitempty"` // how long the old key stays valid, e.g. 1h; absent or "0": it ends now (programs.DefaultGrace)
}

// NewKey answers create and rotate: the key, shown this once.
type NewKey struct {
	Key     string  `json:"key"`
	Program KeyInfo `json:"program"`
}

// Ban is a blocked client: loopback, an IPv4 address or an IPv6 /64.
type Ban struct {
	Addr  string `json:"addr"`
	Until string `json:"until"`
}

// BanList is GET /v0/management/bans.
type BanList struct {
	Bans []Ban `json:"bans"`
}

// Unbanned is DELETE /v0/management/bans: how many blocks were lifted.
type Unbanned struct {
	Unbanned int `json:"unbanned"`
}

// KeyDeleted is DELETE /v0/management/keys/{name}.
type KeyDeleted struct {
	Deleted string `json:"deleted"`
}

// RunningConfig is GET /v0/management/config: the configuration the
// server runs with, secrets masked.
type RunningConfig struct {
	Config map[string]any `json:"config"`
}
