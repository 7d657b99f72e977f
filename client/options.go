package client

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"
)

// Defaults of the options.
const (
	DefaultMinBackoff       = 500 * time.Millisecond
	DefaultMaxBackoff       = 30 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxFrameBytes    = 1 << 20
	DefaultMessageBuffer    = 4096
)

// Option configures Dial.
type Option func(*options)

type options struct {
	token, user      string
	tokenFunc        func(context.Context) (string, error)
	tls              *tls.Config
	header           http.Header
	minBackoff       time.Duration
	maxBackoff       time.Duration
	handshakeTimeout time.Duration
	writeTimeout     time.Duration
	maxFrameBytes    int
	messageBuffer    int
	onMessage        func(Message)
	onState          func(StateChange)
	onError          func(error)
	onUnsubscribed   func(string)
	onSubscribed     func(Subscription)
	device           string
	manualAck        bool
	dedupeWindow     int
	fallbacks        []string
}

func defaultOptions() options {
	return options{
		minBackoff:       DefaultMinBackoff,
		maxBackoff:       DefaultMaxBackoff,
		handshakeTimeout: DefaultHandshakeTimeout,
		writeTimeout:     DefaultWriteTimeout,
		maxFrameBytes:    DefaultMaxFrameBytes,
		messageBuffer:    DefaultMessageBuffer,
		dedupeWindow:     DefaultDedupeWindow,
	}
}

// WithToken authenticates with a signed token (the connect frame's token).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTokenFunc sets a function called before every connection attempt for
// the token to send, so that a client outliving its token (the server
// checks it at connect only) reconnects with a fresh one. An error fails
// the attempt; the client retries with backoff. It overrides WithToken.
func WithTokenFunc(f func(ctx context.Context) (string, error)) Option {
	return func(o *options) { o.tokenFunc = f }
}

// WithUser declares the user id (the connect frame's user). Only a server
// in insecure (development) mode accepts it without a token.
func WithUser(user string) Option { return func(o *options) { o.user = user } }

// WithTLSConfig sets the TLS configuration for wss:// and tcps:// URLs.
func WithTLSConfig(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithHeader adds HTTP headers to the WebSocket upgrade request.
func WithHeader(h http.Header) Option { return func(o *options) { o.header = h.Clone() } }

// WithBackoff sets the wait between reconnect attempts: it starts at min
// and doubles up to max; each wait is drawn at random from half to one and
// a half times that, and never exceeds max. Non-positive values keep the
// defaults (DefaultMinBackoff, DefaultMaxBackoff).
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) {
		if min > 0 {
			o.minBackoff = min
		}
		if max > 0 {
			o.maxBackoff = max
		}
	}
}

// WithHandshakeTimeout bounds dialling plus the connect exchange of each
// attempt (default DefaultHandshakeTimeout).
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.handshakeTimeout = d
		}
	}
}

// WithWriteTimeout bounds each write to the socket; a write that takes
// longer ends the connection (default DefaultWriteTimeout).
func WithWriteTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.writeTimeout = d
		}
	}
}

// WithMaxFrameBytes sets the largest frame accepted from the server (default
// DefaultMaxFrameBytes); a larger one ends the connection with
// ErrFrameTooLarge.
func WithMaxFrameBytes(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxFrameBytes = n
		}
	}
}

// WithMessageBuffer sets how many received messages may wait for the
// message handler (default DefaultMessageBuffer). When the handler falls
// further behind, the connection is dropped with ErrHandlerBehind and
// re-established.
func WithMessageBuffer(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.messageBuffer = n
		}
	}
}

// WithMessageHandler sets the function that receives every message, in the
// order the server sent them. Without one, messages are discarded (and,
// with a device, acknowledged).
//
// The handler, the state handler and the error handler run one at a time
// on a goroutine of the client's, never on the one reading the socket, so
// they may call Publish, Subscribe and the other operations. They must not
// call Close, which waits for them to return.
func WithMessageHandler(f func(Message)) Option { return func(o *options) { o.onMessage = f } }

// WithStateHandler sets the function told of every state change, in order
// with the messages.
func WithStateHandler(f func(StateChange)) Option { return func(o *options) { o.onState = f } }

// WithErrorHandler sets the function told of errors that belong to no
// operation: a failed reply without an id, a frame that could not be
// decoded, a channel the server refused to subscribe again after a
// reconnect.
func WithErrorHandler(f func(error)) Option { return func(o *options) { o.onError = f } }

// WithUnsubscribedHandler sets the function told when the server removes
// this client from a channel (through its API). The client has already
// forgotten the channel: it will not subscribe to it again on reconnect.
func WithUnsubscribedHandler(f func(channel string)) Option {
	return func(o *options) { o.onUnsubscribed = f }
}

// WithSubscribedHandler sets the function told of each successful
// subscribe, the client's own after a reconnect included, in order with
// the messages: the messages the Subscription announces follow it. On a
// channel with history, a Subscription that is Lost means some messages
// will never come, and the application should reload its state.
func WithSubscribedHandler(f func(Subscription)) Option {
	return func(o *options) { o.onSubscribed = f }
}

// WithDevice names this client's device (1 to 64 characters from A-Z a-z
// 0-9 _ - . @, meaningful within its user). The server then keeps the
// user's direct messages until this device acknowledges them, and sends
// what it has not acknowledged on every connection, before anything new
// (ConnectInfo.Inbox says how many).
//
// The client acknowledges a message once the message handler has returned
// for it, in batches (at most one acknowledgement every 100 ms, and a last
// one on Close); WithManualAck leaves it to the application. Messages
// that were handed to the handler but not yet acknowledged when a
// connection ended come again on the next: the client drops them, by id,
// remembering the ids of the last DefaultDedupeWindow messages (see
// WithDedupeWindow). A new client with the same device gets what the last
// one did not acknowledge.
func WithDevice(id string) Option { return func(o *options) { o.device = id } }

// WithManualAck makes the application acknowledge its device's inbox
// messages itself, with Client.Ack, rather than the client once the
// message handler has returned: for an application that processes
// messages after the handler returns. It needs WithDevice.
func WithManualAck() Option { return func(o *options) { o.manualAck = true } }

// WithDedupeWindow sets how many ids of direct messages a client with a
// device remembers to drop the ones that come again (default
// DefaultDedupeWindow).
func WithDedupeWindow(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.dedupeWindow = n
		}
	}
}

// WithFallbacks gives more URLs of servers that serve the same users and
// channels (other nodes of a cluster), to turn to when the one in use
// cannot be reached. Dial tries the URL it is given, then each fallback in
// turn, one attempt each, until one connects. Once connected, a client that
// loses its connection makes its next attempt on the URL after the one it
// was using, and so on in a ring, waiting between attempts with the usual
// backoff and jitter. What it resumes from goes along from one server to
// the next: its channels and their positions, its device and the ids of
// the direct messages it has handled. StateChange.URL says which server
// each attempt and each connection is on. Every URL is checked by Dial as
// its own is; empty strings are skipped.
func WithFallbacks(urls ...string) Option {
	return func(o *options) { o.fallbacks = append(o.fallbacks, urls...) }
}
