package twokey

import "time"

// Limits the server enforces. Each is refused with a clear error naming it.
const (
	// MaxEnvelopeBytes bounds one posted envelope (PROTOCOL 7: too_large).
	MaxEnvelopeBytes = 64 << 10
	// MaxTextBytes bounds a chat message's text.
	MaxTextBytes = 16 << 10
	// MaxNameBytes bounds a conversation's or member's name.
	MaxNameBytes = 128
	// MaxMembers bounds the members of one conversation.
	MaxMembers = 64
	// MaxPageRecords bounds the records returned by one page of the log.
	MaxPageRecords = 1000
	// DefaultPageRecords is the page size when the client names none.
	DefaultPageRecords = 100
	// MaxRules bounds the threshold rules of one conversation.
	MaxRules = 1000
	// MaxFutureSkew is how far in the future a payload's created_at may be.
	MaxFutureSkew = 5 * time.Minute
	// MaxPastSkew is how old a posted envelope's created_at may be
	// (PROTOCOL 2, freshness): an older one is refused, and a newer one is
	// accepted once, its payload digest remembered while it is fresh.
	MaxPastSkew = 5 * time.Minute
	// SessionWindow is how old a session.open's created_at may be.
	SessionWindow = 5 * time.Minute
	// SessionTTL is the life of a bearer token.
	SessionTTL = time.Hour
	// MinNonceBytes is the least entropy a session nonce carries.
	MinNonceBytes = 16
	// MaxSecretTTLSeconds is the longest ttl_seconds a gate.secret may
	// ask for: 10 years (which also keeps the duration from overflowing).
	MaxSecretTTLSeconds = 10 * 365 * 24 * 60 * 60
	// MaxRequestTTL is how far ahead a request's expires_at may lie.
	MaxRequestTTL = 7 * 24 * time.Hour
	// MaxResponseBody is how much of an upstream body a gate.response carries.
	MaxResponseBody = 64 << 10
	// MaxPendingPerSigner bounds the pending requests one author may hold
	// open in one conversation, so that no signer can flood the others.
	MaxPendingPerSigner = 100
	// MaxRequestTarget bounds the request target (path and query) of a
	// proxied call: a longer one is refused with 414 before anything is
	// stored.
	MaxRequestTarget = 8 << 10
	// MaxJSONDepth bounds the nesting of any JSON the server decodes.
	MaxJSONDepth = 64
)
