package session

import (
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
)

// Kind names a transport, for metrics and the server API.
type Kind string

// The transports the server runs.
const (
	KindWebSocket Kind = "websocket"
	KindTCP       Kind = "tcp"
	KindSSE       Kind = "sse"
	KindOther     Kind = "other"
)

// Kinds lists every Kind, in the order metrics show them.
var Kinds = []Kind{KindWebSocket, KindTCP, KindSSE, KindOther}

// Kinded is a Transport that says which kind it is. A transport that does
// not is counted as KindOther.
type Kinded interface {
	Kind() Kind
}

func kindOf(t Transport) Kind {
	if k, ok := t.(Kinded); ok {
		return k.Kind()
	}
	return KindOther
}

func kindIndex(k Kind) int {
	for i, v := range Kinds {
		if v == k {
			return i
		}
	}
	return len(Kinds) - 1
}

// ReasonClientClosed counts connections that ended without a disconnect
// from the server: the client closed, or the network dropped it.
const ReasonClientClosed = "client_closed"

// disconnectReasons are the reasons counted one by one; anything else
// counts as "other".
var disconnectReasons = []protocol.Disconnect{
	protocol.DisconnectShutdown, protocol.DisconnectSlowConsumer, protocol.DisconnectHeartbeatTimeout,
	protocol.DisconnectHandshakeTimeout, protocol.DisconnectServerError, protocol.DisconnectConnectRate,
	protocol.DisconnectReconnect, protocol.DisconnectMissed, protocol.DisconnectProtocolViolation, protocol.DisconnectFrameTooLarge,
	protocol.DisconnectUnauthorized, protocol.DisconnectTooManyConns, protocol.DisconnectKicked,
}

// DisconnectCounts counts ended connections by reason. The table is built
// once and only its counters change, so it is read without a lock.
type DisconnectCounts struct {
	byReason map[string]*atomic.Int64
}

func newDisconnectCounts() DisconnectCounts {
	c := DisconnectCounts{byReason: make(map[string]*atomic.Int64, len(disconnectReasons)+2)}
	for _, d := range disconnectReasons {
		c.byReason[d.Reason] = new(atomic.Int64)
	}
	c.byReason[ReasonClientClosed] = new(atomic.Int64)
	c.byReason["other"] = new(atomic.Int64)
	return c
}

func (c DisconnectCounts) add(reason string) {
	n, ok := c.byReason[reason]
	if !ok {
		n = c.byReason["other"]
	}
	n.Add(1)
}

// Snapshot returns the count of every reason, zeros included.
func (c DisconnectCounts) Snapshot() map[string]int64 {
	out := make(map[string]int64, len(c.byReason))
	for r, n := range c.byReason {
		out[r] = n.Load()
	}
	return out
}

// Kind is the transport the session runs on.
func (s *Session) Kind() Kind { return s.kind }

// Opened is when the connection was opened.
func (s *Session) Opened() time.Time { return time.Unix(0, s.opened) }

// Subscriptions returns a copy of the channels the session subscribes to.
func (s *Session) Subscriptions() []string {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return append([]string(nil), s.subs...)
}

// ConnectionsByKind returns the open connections of each transport,
// authenticated or not.
func (m *Manager) ConnectionsByKind() map[Kind]int {
	out := make(map[Kind]int, len(Kinds))
	for i, k := range Kinds {
		out[k] = int(m.byKind[i].Load())
	}
	return out
}
