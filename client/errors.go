package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrClosed is returned by operations on a client that has stopped,
	// whether by Close or because the server refused to let it reconnect
	// (then the error also wraps the *Disconnect that said so).
	ErrClosed = errors.New("client closed")

	// ErrConnectionLost is returned by an operation whose request was sent
	// but whose connection ended before the reply came. The server may or
	// may not have carried it out; the client does not retry it.
	ErrConnectionLost = errors.New("connection lost before the reply")

	// ErrServerSilent ends a connection on which nothing, not even a ping,
	// arrived for ping_interval + pong_timeout: the server or the network
	// is presumed dead, and the client reconnects.
	ErrServerSilent = errors.New("nothing received from the server in time")

	// ErrHandlerBehind ends a connection when more messages are waiting
	// for the message handler than the message buffer holds (see
	// WithMessageBuffer). The client reconnects; messages sent meanwhile
	// are lost, as they would be had the server dropped a slow consumer.
	ErrHandlerBehind = errors.New("message handler fell behind")

	// ErrNullData is returned for publish, send and broadcast data that
	// encodes as JSON null, which the protocol does not allow.
	ErrNullData = errors.New("message data must not be null")

	// ErrFrameTooLarge ends a connection on which the server sent a frame
	// over the limit set by WithMaxFrameBytes.
	ErrFrameTooLarge = errors.New("server frame over the size limit")

	// ErrUnsupportedURL is returned by Dial for a URL whose scheme is not
	// ws, wss, tcp or tcps, or that has no host.
	ErrUnsupportedURL = errors.New("unsupported server URL")
)

// Code is a stable error code sent by the server in a failed reply. Codes
// never change meaning; new ones may appear, so treat unknown codes as
// failures of the operation.
type Code string

// The error codes of protocol version 1.
const (
	CodeInvalidFrame         Code = "invalid_frame"          // not valid UTF-8, not a JSON object, or malformed JSON
	CodeUnknownOp            Code = "unknown_op"             // op is not one the server knows
	CodeMissingField         Code = "missing_field"          // a field the op requires is absent, or data is null
	CodeInvalidField         Code = "invalid_field"          // a field has the wrong JSON type
	CodeInvalidChannel       Code = "invalid_channel"        // the channel name is not of the allowed form
	CodeInvalidUser          Code = "invalid_user"           // the user id is not of the allowed form
	CodeBinaryNotSupported   Code = "binary_not_supported"   // a binary WebSocket frame was sent
	CodeNotConnected         Code = "not_connected"          // an op came before a successful connect
	CodeAlreadyConnected     Code = "already_connected"      // connect came twice
	CodeUnauthorized         Code = "unauthorized"           // the token is missing, malformed, badly signed or expired
	CodeForbidden            Code = "forbidden"              // the user may not do this
	CodeRateLimited          Code = "rate_limited"           // more operations than the connection's rate allows
	CodeTooManySubscriptions Code = "too_many_subscriptions" // the connection is at its subscription limit
	CodeNotSubscribed        Code = "not_subscribed"         // unsubscribe from a channel not subscribed to
	CodeTooManyConnections   Code = "too_many_connections"   // the user is at its connection limit
	CodeInternal             Code = "internal"               // the server failed; the operation may be retried
	CodeStorageFailed        Code = "storage_failed"         // the server could not store or read messages; retry later
	CodeNoDevice             Code = "no_device"              // ack on a connection that named no device
	CodeAckBackwards         Code = "ack_backwards"          // ack below the device's acknowledged position
	CodeAckBeyondEnd         Code = "ack_beyond_end"         // ack above the newest message of the inbox
	CodeHookUnavailable      Code = "hook_unavailable"       // the server's backend did not answer its connect or subscribe hook; retry later
	CodeUnavailable          Code = "unavailable"            // a node of a cluster lost its link to Redis, so nothing was done; retry later, or on another node

	// Codes of a refused WebSocket upgrade (an HTTP error before any frame).
	CodeForbiddenOrigin    Code = "forbidden_origin"     // the Origin header is not allowed (HTTP 403)
	CodeConnectRateLimited Code = "connect_rate_limited" // too many new connections from this address (HTTP 429)
)

// Error is a failed reply from the server: a stable code and a message for
// humans. Operations return it (wrapped) when the server refuses them:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == client.CodeInvalidChannel { ... }
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("server error %s: %s", e.Code, e.Message) }

// retryable reports whether the same operation may succeed if sent again
// later on the same connection.
func (e *Error) retryable() bool {
	return e.Code == CodeRateLimited || e.Code == CodeInternal || e.Code == CodeUnavailable
}

// Disconnect is the reason the server gave for closing a connection, from
// its disconnect frame (or, on WebSocket, its close frame). Codes 3000-3499
// invite a reconnect with backoff, which the client does by itself; codes
// 3500-3999 (Reconnect false) mean the same attempt would fail again, so
// the client stops and Err returns the *Disconnect.
type Disconnect struct {
	Code      int    `json:"code"`
	Reason    string `json:"reason"` // stable, like Code
	Reconnect bool   `json:"reconnect"`
	Message   string `json:"message,omitempty"` // for humans, when the server gave one
}

func (d *Disconnect) Error() string {
	if d.Message != "" {
		return fmt.Sprintf("disconnected by server: %d %s: %s", d.Code, d.Reason, d.Message)
	}
	return fmt.Sprintf("disconnected by server: %d %s", d.Code, d.Reason)
}

// Disconnect codes of protocol version 1.
const (
	DisconnectShutdown           = 3000 // the server is shutting down or restarting
	DisconnectSlowConsumer       = 3001 // the client did not read fast enough
	DisconnectHeartbeatTimeout   = 3002 // nothing received from the client for too long
	DisconnectHandshakeTimeout   = 3003 // no successful connect in time
	DisconnectServerError        = 3004 // the server failed
	DisconnectConnectRateLimited = 3006 // too many new connections from this address; wait longer
	DisconnectReconnect          = 3007 // the server asks the client to reconnect
	DisconnectMissed             = 3008 // the server lost messages for this connection (a node of a cluster lost its link to Redis); reconnecting resumes
	DisconnectProtocolViolation  = 3500 // too many failed operations in a row
	DisconnectFrameTooLarge      = 3501 // a frame or line over the size limit
	DisconnectUnauthorized       = 3502 // connect failed: bad, missing or malformed credentials or connect frame
	DisconnectTooManyConnections = 3503 // the user is at its connection limit
	DisconnectKicked             = 3505 // the server (or its operator) disconnected this user
)

// closeCodeDisconnect maps a WebSocket close code in the protocol's range to
// a Disconnect, for a server whose disconnect frame was not read.
func closeCodeDisconnect(code int, reason string) (*Disconnect, bool) {
	if code < 3000 || code > 3999 {
		return nil, false
	}
	return &Disconnect{Code: code, Reason: reason, Reconnect: code < 3500}, true
}

// terminal reports whether err means reconnecting is pointless: the server
// said so with a disconnect, or refused the credentials outright.
func terminal(err error) bool {
	var d *Disconnect
	if errors.As(err, &d) {
		return !d.Reconnect
	}
	var e *connectError
	if errors.As(err, &e) {
		return !e.reply.retryable()
	}
	var u *UpgradeError
	if errors.As(err, &u) {
		return u.StatusCode == http.StatusUnauthorized || u.StatusCode == http.StatusForbidden
	}
	return false
}

// UpgradeError is a WebSocket upgrade the server refused with an HTTP error
// before any frame. Reply holds the error code and message of the body, when
// it had them (such as CodeConnectRateLimited).
type UpgradeError struct {
	StatusCode int
	// RetryAfter is the server's Retry-After; the client waits at least
	// this long before its next attempt.
	RetryAfter time.Duration
	Reply      *Error
}

func (e *UpgradeError) Error() string {
	if e.Reply != nil {
		return fmt.Sprintf("websocket upgrade refused: HTTP %d: %v", e.StatusCode, e.Reply)
	}
	return fmt.Sprintf("websocket upgrade refused: HTTP %d", e.StatusCode)
}

// Unwrap returns the body's *Error, if any.
func (e *UpgradeError) Unwrap() error {
	if e.Reply == nil {
		return nil
	}
	return e.Reply
}

// minWait returns the least time to wait before reconnecting after err: the
// server's Retry-After, or a second after connect_rate_limited (the limit is
// per second; the protocol gives no figure).
func minWait(err error) time.Duration {
	var u *UpgradeError
	if errors.As(err, &u) {
		return u.RetryAfter
	}
	var d *Disconnect
	if errors.As(err, &d) && d.Code == DisconnectConnectRateLimited {
		return time.Second
	}
	return 0
}

// connectError is a refused connect. It wraps the server's *Error and, when
// the server sent one before closing, its *Disconnect.
type connectError struct {
	reply *Error
	disc  *Disconnect
}

func (e *connectError) Error() string {
	if e.disc != nil {
		return fmt.Sprintf("refused: %v (%v)", e.reply, e.disc)
	}
	return fmt.Sprintf("refused: %v", e.reply)
}

func (e *connectError) Unwrap() []error {
	if e.disc != nil {
		return []error{e.reply, e.disc}
	}
	return []error{e.reply}
}
