// Package session runs one client connection as a state machine. A
// transport feeds it complete frames and it hands bytes back through the
// Transport interface; it never touches a socket itself, so the I/O engine
// can change without touching the protocol or the hub.
//
// Lock order (see also hub): Session.stateMu -> hub shard locks ->
// Session.mu -> flusher.mu. Deliver is called under hub locks, so below
// stateMu nothing may call back into the hub or the node.
package session

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldpush/herald/internal/protocol"
)

// Transport is the I/O side of one connection.
type Transport interface {
	// Wire is the framing this connection uses.
	Wire() protocol.Wire
	// Write hands complete frames to the connection. It must not block:
	// what the socket cannot take now is buffered by the engine. It returns
	// ErrOverflow when that buffer exceeds its bound.
	Write(frames [][]byte) error
	// Close closes the connection for reason d, with a transport close frame
	// where the transport has one.
	Close(d protocol.Disconnect) error
	// RemoteAddr is the peer address, for logs.
	RemoteAddr() string
}

// Identity is who a connection is, as the server authenticated it.
type Identity struct {
	User string
	// Grants lists channel patterns the user's token allows it to
	// subscribe to, beyond what the namespace rules allow everyone.
	Grants []string
	// Info is optional user information attached to presence.
	Info []byte
}

// Node is the server side a session talks to: authentication, the registry
// and message routing. Its methods return protocol errors for the client.
type Node interface {
	Authenticate(ctx context.Context, req *protocol.Request) (Identity, *protocol.Error)
	// Register adds the now-authenticated session to the registry.
	Register(s *Session) *protocol.Error
	// Unregister removes the session and the given subscriptions.
	Unregister(s *Session, channels []string)
	Subscribe(ctx context.Context, s *Session, channel string) *protocol.Error
	Unsubscribe(s *Session, channel string)
	// Route publishes, sends or broadcasts the message in req on behalf of
	// the session and returns the message id.
	Route(ctx context.Context, s *Session, req *protocol.Request) (string, *protocol.Error)
}

type state uint8

const (
	statePending state = iota // waiting for connect
	stateActive
	stateRefused // connect failed: its disconnect is on the way; frames are ignored
	stateClosed
)

// Session is one client connection.
type Session struct {
	id     uint64
	t      Transport
	wire   protocol.Wire
	mgr    *Manager
	opened int64 // Unix nanoseconds

	lastSeen atomic.Int64 // Unix nanoseconds of the last inbound frame
	lastPing atomic.Int64 // Unix nanoseconds of the last ping sent

	// Fields below stateMu are changed only by the goroutine handling this
	// session's frames and by the close path, under stateMu. state is also
	// read without it, so that the sweeper never waits on a handler.
	stateMu  sync.Mutex
	state    atomic.Uint32 // a state
	identity Identity
	subs     []string
	limiter  *rate.Limiter // all operations
	pubRate  *rate.Limiter // publish, send, broadcast
	strikes  int           // failed operations in a row
	limited  int           // rate-limited operations in a row

	// mu guards the outbound queue. It is a leaf lock.
	mu        sync.Mutex
	queue     *[][]byte // nil while empty; from queuePool
	queued    int       // bytes in queue
	scheduled bool      // in the flusher's ready list
	closing   *protocol.Disconnect
	reason    atomic.Pointer[protocol.Disconnect] // why the connection ended
}

// ID returns the connection id, unique within this server process.
func (s *Session) ID() uint64 { return s.id }

// ClientID is the connection id as clients see it.
func (s *Session) ClientID() string { return strconv.FormatUint(s.id, 36) }

// User returns the authenticated user id ("" before connect).
func (s *Session) User() string { return s.identity.User }

// Identity returns the authenticated identity.
func (s *Session) Identity() Identity { return s.identity }

// Deliver queues a frame for the client. It never blocks; a client whose
// queue exceeds its bound is disconnected as a slow consumer.
func (s *Session) Deliver(f *protocol.Frame) {
	b := f.Bytes(s.wire)
	s.mu.Lock()
	if s.closing != nil {
		s.mu.Unlock()
		return
	}
	if s.queued+len(b) > s.mgr.limits.MaxOutboundBytes {
		s.mu.Unlock()
		s.mgr.metrics.SlowConsumers.Add(1)
		s.abort(protocol.DisconnectSlowConsumer)
		return
	}
	s.enqueueLocked(b)
	s.mu.Unlock()
}

func (s *Session) enqueueLocked(b []byte) {
	if s.queue == nil {
		s.queue = queuePool.Get().(*[][]byte)
	}
	*s.queue = append(*s.queue, b)
	s.queued += len(b)
	s.scheduleLocked()
}

func (s *Session) scheduleLocked() {
	if !s.scheduled {
		s.scheduled = true
		s.mgr.flusher.schedule(s)
	}
}

// Close disconnects the client for reason d: queued frames are written,
// then the disconnect push, then the connection is closed.
func (s *Session) Close(d protocol.Disconnect) {
	df := protocol.DisconnectFrame(d).Bytes(s.wire)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing != nil {
		return
	}
	s.closing = &d
	s.reason.CompareAndSwap(nil, &d)
	s.enqueueLocked(df)
}

func (s *Session) dropQueueLocked() {
	if s.queue != nil {
		clear(*s.queue)
		*s.queue = (*s.queue)[:0]
		queuePool.Put(s.queue)
		s.queue = nil
	}
	s.queued = 0
}

// abort disconnects without flushing what is queued: the client cannot take
// it anyway.
func (s *Session) abort(d protocol.Disconnect) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing != nil {
		return
	}
	s.closing = &d
	s.reason.CompareAndSwap(nil, &d)
	s.dropQueueLocked()
	s.scheduleLocked()
}

// queuePool recycles outbound queues, so that an idle connection holds none.
var queuePool = sync.Pool{New: func() any {
	q := make([][]byte, 0, 16)
	return &q
}}

// flush writes everything queued in one call. Only the flusher calls it,
// and never for the same session twice at once.
func (s *Session) flush() {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.queued = 0
	s.mu.Unlock()

	if q != nil {
		if len(*q) > 0 {
			if err := s.t.Write(*q); err != nil && IsOverflow(err) {
				s.mgr.metrics.SlowConsumers.Add(1)
				s.reason.CompareAndSwap(nil, &protocol.DisconnectSlowConsumer)
			}
		}
		clear(*q)
		*q = (*q)[:0]
		if cap(*q) <= 1024 {
			queuePool.Put(q)
		}
	}

	s.mu.Lock()
	if s.queue != nil {
		// More arrived while writing: go to the back of the line.
		s.mgr.flusher.schedule(s)
		s.mu.Unlock()
		return
	}
	s.scheduled = false
	closing := s.closing
	s.mu.Unlock()
	if closing != nil {
		_ = s.t.Close(*closing)
	}
}

// touch records inbound activity.
func (s *Session) touch(now int64) { s.lastSeen.Store(now) }

// tick runs the session's timers; the manager's sweeper calls it.
func (s *Session) tick(now int64) {
	l := &s.mgr.limits
	switch s.loadState() {
	case statePending:
		if now-s.opened > int64(l.HandshakeTimeout) {
			s.Close(protocol.DisconnectHandshakeTimeout)
		}
	case stateActive:
		if now-s.lastSeen.Load() > int64(l.PingInterval+l.PongTimeout) {
			s.Close(protocol.DisconnectHeartbeatTimeout)
			return
		}
		if now-s.lastPing.Load() >= int64(l.PingInterval) {
			s.lastPing.Store(now)
			s.Deliver(protocol.PingFrame)
		}
	}
}

// Closed must be called by the transport exactly once when the connection
// has ended, whatever the cause. It removes the session from the registry.
func (s *Session) Closed(err error) {
	was, subs := s.markClosed()
	if was == stateClosed {
		return
	}
	s.mu.Lock()
	if s.closing == nil {
		s.closing = &protocol.Disconnect{Code: 0, Reason: "closed by client"}
	}
	s.dropQueueLocked()
	s.mu.Unlock()

	if was == stateActive {
		s.mgr.node.Unregister(s, subs)
	}
	s.mgr.remove(s)
	reason := "closed by client"
	if r := s.reason.Load(); r != nil {
		reason = r.Reason
	}
	s.mgr.log.Debug("connection closed", "client", s.ClientID(), "user", s.identity.User,
		"remote", s.t.RemoteAddr(), "reason", reason, "err", err,
		"duration", time.Duration(time.Now().UnixNano()-s.opened))
}

// Transport returns the connection's transport.
func (s *Session) Transport() Transport { return s.t }
