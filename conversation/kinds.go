package conversation

import "strings"

// Kinds of PROTOCOL.md section 4.
const (
	KindConversationCreate = "conversation.create"
	KindChatMessage        = "chat.message"
	KindMemberAdd          = "member.add"
	KindMemberRemove       = "member.remove"
	KindGateEnable         = "gate.enable"
	KindGateEnabled        = "gate.enabled"
	KindGateSecret         = "gate.secret"
	KindGateSecretStored   = "gate.secret.stored"
	KindGateSecretRevoke   = "gate.secret.revoke"
	KindGateSecretRevoked  = "gate.secret.revoked"
	KindGateRequest        = "gate.request"
	KindGateApprove        = "gate.approve"
	KindGateReject         = "gate.reject"
	KindGateCancel         = "gate.cancel"
	KindGateExecuted       = "gate.executed"
	KindGateResponse       = "gate.response"
	KindGateFailed         = "gate.failed"
	KindGateExpired        = "gate.expired"
	KindGateRejected       = "gate.rejected"
	KindGateCancelled      = "gate.cancelled"
	KindGateApproved       = "gate.approved"
	KindMemberPropose      = "member.propose"
	KindMemberApprove      = "member.approve"
	KindMemberChanged      = "member.changed"
	KindSessionOpen        = "session.open"
	// KindCheckpoint is this implementation's addition (docs/protocol.md):
	// the gateway's signed statement of a log's latest seq and chain. It is
	// never a record.
	KindCheckpoint = "checkpoint"
)

// gatewayKinds are written only by the gateway.
var gatewayKinds = map[string]bool{
	KindGateEnabled: true, KindGateSecretStored: true, KindGateSecretRevoked: true,
	KindGateExecuted: true, KindGateResponse: true, KindGateFailed: true, KindGateExpired: true,
	KindGateRejected: true, KindGateCancelled: true, KindGateApproved: true, KindMemberChanged: true, KindCheckpoint: true,
}

var memberKinds = map[string]bool{
	KindConversationCreate: true, KindChatMessage: true, KindMemberAdd: true, KindMemberRemove: true,
	KindGateEnable: true, KindGateSecret: true, KindGateSecretRevoke: true, KindGateRequest: true,
	KindGateApprove: true, KindGateReject: true, KindGateCancel: true, KindMemberPropose: true,
	KindMemberApprove: true, KindSessionOpen: true,
}

// KnownKind reports whether kind is one of the protocol's kinds.
func KnownKind(kind string) bool { return gatewayKinds[kind] || memberKinds[kind] }

// GatewayKind reports whether only the gateway may author kind.
func GatewayKind(kind string) bool { return gatewayKinds[kind] }

// NeedsGateway reports whether a member-signed payload of kind must carry
// the gateway's key id (PROTOCOL 2: every gate.* and member.* payload).
func NeedsGateway(kind string) bool {
	if gatewayKinds[kind] {
		return false
	}
	return strings.HasPrefix(kind, "gate.") || strings.HasPrefix(kind, "member.")
}
