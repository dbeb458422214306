// Package twokey holds what every layer of the gateway shares: the error
// codes of the wire protocol and the limits the server enforces.
//
// Errors are classified once, where they arise, with one of the codes below
// (PROTOCOL.md section 7); transports map a code to an HTTP status or an exit
// code through the tables in this file, never by matching message text.
package twokey

import (
	"errors"
	"fmt"
)

// Error codes of PROTOCOL.md section 7, plus internal for everything else.
const (
	EBadEnvelope         = "bad_envelope"
	EBadPayload          = "bad_payload"
	EBadSignature        = "bad_signature"
	EHostMismatch        = "host_mismatch"
	EUnauthorized        = "unauthorized"
	ENotMember           = "not_member"
	ENotSigner           = "not_signer"
	ENotAdmin            = "not_admin"
	EForbidden           = "forbidden"
	EGateDisabled        = "gate_disabled"
	EGateEnabled         = "gate_enabled"
	EUnknownConversation = "unknown_conversation"
	EUnknownRequest      = "unknown_request"
	EDuplicateRequest    = "duplicate_request"
	EAlreadyVoted        = "already_voted"
	EDigestMismatch      = "digest_mismatch"
	ERequestClosed       = "request_closed"
	ERequestExpired      = "request_expired"
	ETooLarge            = "too_large"
	ERateLimited         = "rate_limited"
	EReplayed            = "replayed"
	// Codes this implementation adds (docs/protocol.md).
	ENotFound    = "not_found"   // a route or object other than a conversation or request
	EUnavailable = "unavailable" // the server is shutting down or its store failed
	EInternal    = "internal"    // a bug; the message never carries details
)

// Error is a classified error: a protocol code and a message written for the
// person who will read it, saying what went wrong and what to do.
type Error struct {
	Code    string
	Message string
	Err     error // optional cause, never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Code + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or internal.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the message of the first *Error in err's chain. An
// unclassified error yields a generic message so that no internal detail (a
// path, a key, a stack) ever reaches a client.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		if e.Message != "" {
			return e.Message
		}
		return e.Code
	}
	return "internal error; the server log has the details"
}

// HTTPStatus maps an error code to its HTTP status (PROTOCOL.md section 7).
// The numbers are written out so that this package, which every domain
// package imports, does not pull in net/http.
func HTTPStatus(code string) int {
	switch code {
	case EBadEnvelope, EBadPayload, EBadSignature, EHostMismatch:
		return 400
	case EUnauthorized:
		return 401
	case ENotMember, ENotSigner, ENotAdmin, EForbidden, EGateDisabled, EGateEnabled:
		return 403
	case EUnknownConversation, EUnknownRequest, ENotFound:
		return 404
	case EDuplicateRequest, EAlreadyVoted, EDigestMismatch, ERequestClosed, EReplayed:
		return 409
	case ERequestExpired:
		return 410
	case ETooLarge:
		return 413
	case ERateLimited:
		return 429
	case EUnavailable:
		return 503
	}
	return 500
}

// ExitCode maps an error code to the CLI's exit status: 1 for a refusal the
// user can act on, 2 for usage, 3 for an unreachable or failing server.
func ExitCode(code string) int {
	switch code {
	case "":
		return 0
	case EInternal, EUnavailable:
		return 3
	}
	return 1
}

// Clip shortens other people's text quoted in a message to 64 bytes.
func Clip(s string) string { return ClipAt(s, 64) }

// ClipAt shortens s to at most n bytes (n > 3), ending in "..." when cut.
func ClipAt(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}
