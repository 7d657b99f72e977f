package protocol

import "fmt"

// Code is a stable, machine-readable error code. Codes never change meaning;
// new ones may be added. docs/protocol.md lists every code.
type Code string

// Error codes carried in replies to client operations.
const (
	CodeInvalidFrame        Code = "invalid_frame"          // not a JSON object, or malformed JSON
	CodeUnknownOp           Code = "unknown_op"             // op is not one the server knows
	CodeMissingField        Code = "missing_field"          // a field the op needs is absent
	CodeInvalidField        Code = "invalid_field"          // a field has the wrong type or form
	CodeInvalidChannel      Code = "invalid_channel"        // channel name does not match the allowed form
	CodeInvalidUser         Code = "invalid_user"           // user id does not match the allowed form
	CodeBinaryNotSupported  Code = "binary_not_supported"   // a binary WebSocket frame was sent
	CodeNotConnected        Code = "not_connected"          // an op other than connect before the handshake
	CodeAlreadyConnected    Code = "already_connected"      // connect sent twice
	CodeUnauthorized        Code = "unauthorized"           // token missing, malformed, badly signed or expired
	CodeForbidden           Code = "forbidden"              // identity is known but the op is not allowed
	CodeRateLimited         Code = "rate_limited"           // too many operations; slow down
	CodeTooManySubscription Code = "too_many_subscriptions" // per-connection subscription limit reached
	CodeNotSubscribed       Code = "not_subscribed"         // unsubscribe from a channel not subscribed to
	CodeTooManyConnections  Code = "too_many_connections"   // per-user connection limit reached
	CodeInternal            Code = "internal"               // the server failed; the op may be retried
	CodeStorageFailed       Code = "storage_failed"         // the message could not be stored (disk full, failing disk); nothing was accepted; retry later
	CodeNoDevice            Code = "no_device"              // ack on a connection that named no device in its connect
	CodeAckBackwards        Code = "ack_backwards"          // ack below the device's acknowledged position
	CodeAckBeyondEnd        Code = "ack_beyond_end"         // ack above the last sequence of the user's inbox
	CodeHookUnavailable     Code = "hook_unavailable"       // the backend's connect or subscribe hook gave no answer in time; retry later
	CodeUnavailable         Code = "unavailable"            // cluster mode: the node lost its link to Redis, so nothing was sent; retry later
)

// Error is a protocol error: a stable code and a human-readable message.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Disconnect is the reason the server closes a connection. Codes 3000-3499
// invite the client to reconnect (with backoff); codes 3500-3999 mean the
// same connection attempt would fail again, so the client should not retry
// without changing something (a new token, a smaller frame, ...). The codes
// are also used as WebSocket close codes.
type Disconnect struct {
	Code      int    `json:"code"`
	Reason    string `json:"reason"`
	Reconnect bool   `json:"reconnect"`
	// Message is an optional human explanation (from the server API's
	// disconnect call, for example).
	Message string `json:"message,omitempty"`
}

func (d Disconnect) Error() string { return fmt.Sprintf("disconnect %d: %s", d.Code, d.Reason) }

func reconnectable(code int, reason string) Disconnect {
	return Disconnect{Code: code, Reason: reason, Reconnect: true}
}

func terminal(code int, reason string) Disconnect {
	return Disconnect{Code: code, Reason: reason, Reconnect: false}
}

// Disconnect reasons. The Reason strings are stable like the codes.
var (
	DisconnectShutdown          = reconnectable(3000, "shutdown")
	DisconnectSlowConsumer      = reconnectable(3001, "slow_consumer")
	DisconnectHeartbeatTimeout  = reconnectable(3002, "heartbeat_timeout")
	DisconnectHandshakeTimeout  = reconnectable(3003, "handshake_timeout")
	DisconnectServerError       = reconnectable(3004, "server_error")
	DisconnectKicked            = terminal(3505, "kicked")
	DisconnectConnectRate       = reconnectable(3006, "connect_rate_limited")
	DisconnectReconnect         = reconnectable(3007, "reconnect")
	DisconnectMissed            = reconnectable(3008, "messages_missed")
	DisconnectProtocolViolation = terminal(3500, "protocol_violation")
	DisconnectFrameTooLarge     = terminal(3501, "frame_too_large")
	DisconnectUnauthorized      = terminal(3502, "unauthorized")
	DisconnectTooManyConns      = terminal(3503, "too_many_connections")
)
