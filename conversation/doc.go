// Package conversation is the signed group chat underneath the gateway:
// identities and key ids, DSSE envelopes and their verification over the
// exact bytes received, the conversation's membership rules, records and
// their hash chain, and the hub that fans committed records out to readers.
//
// It knows nothing of HTTP or storage: transports hand it bytes, the engine
// hands it state.
package conversation
