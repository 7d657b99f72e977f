// Package session runs one client connection as a state machine. A
// transport feeds it complete frames and it hands bytes back through the
// Transport interface; it never touches a socket itself, so the I/O engine
// can change without touching the protocol or the hub.
//
// Lock order (see also hub): Session.stateMu -> the server's lane locks
// -> hub shard locks -> Session.mu -> flusher.mu. The server's presence
// locks come after Session.stateMu and the lane locks, never with a hub
// lock held. Deliver is called under
// hub locks, so below stateMu nothing may call back into the hub or the
// node.
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
	// Write writes frames to the connection without blocking and returns
	// how many bytes it wrote. Writing less than all means the socket is
	// full: the session keeps the rest, and the transport calls the
	// session's Writable once the socket can take more. A transport that
	// buffers on its own returns ErrOverflow when that buffer is over its
	// bound; any other error means the connection is gone.
	Write(frames [][]byte) (int, error)
	// Close closes the connection for reason d, with a transport close frame
	// where the transport has one, once what was written has gone out.
	Close(d protocol.Disconnect) error
	// Abort closes the connection at once: the client is not reading, so
	// nothing more is written to it.
	Abort()
	// RemoteAddr is the client's address, for logs: the peer, or, behind a
	// trusted proxy, the address the proxy forwarded.
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
	// Device is the device the connection named in its connect, within
	// its user; empty when it named none.
	Device string
}

// Node is the server side a session talks to: authentication, the registry
// and message routing. Its methods return protocol errors for the client.
type Node interface {
	// Authenticate checks the credentials of the connect frame req on
	// session s (not yet registered), and says who the client is.
	Authenticate(ctx context.Context, s *Session, req *protocol.Request) (Identity, *protocol.Error)
	// Register adds the now-authenticated session to the registry. On
	// success it calls reply exactly once, at the point where the connect
	// reply goes in the session's queue: before anything the session
	// receives as a member of the registry (its inbox, then live
	// messages). inbox is the state of the device's inbox, nil for a
	// connection without a device. An error with code
	// too_many_connections refuses the connect for good; any other means
	// the server could not take the connection now.
	Register(s *Session, reply func(inbox *protocol.InboxState)) *protocol.Error
	// Unregister removes the session and the given subscriptions.
	Unregister(s *Session, channels []string)
	// ConnectRefused reports a connect refused before it reached
	// Authenticate (a frame the session could not read), so that the node
	// logs it like the refusals it makes itself.
	ConnectRefused(s *Session, user string, perr *protocol.Error)
	// Subscribe subscribes the session to req.Channel. On success it calls
	// reply exactly once with the subscribe result (nil when there is
	// none), at the point where the reply goes in the session's queue:
	// before any message of the channel, recovered or live.
	Subscribe(ctx context.Context, s *Session, req *protocol.Request, reply func(result any)) *protocol.Error
	Unsubscribe(s *Session, channel string)
	// Ack acknowledges the inbox of the session's device up to seq.
	Ack(ctx context.Context, s *Session, seq uint64) *protocol.Error
	// Presence lists the users subscribed to channel, for a session that
	// may subscribe to it.
	Presence(ctx context.Context, s *Session, channel string) (protocol.PresenceResult, *protocol.Error)
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
	kind   Kind
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

	// mu guards the outbound queue. It is a leaf lock. The queue holds
	// references to frames shared with every other recipient: a
	// connection that falls behind costs a slice entry per frame, never a
	// copy. The first entry may be the unwritten tail of a frame.
	mu        sync.Mutex
	queue     *[][]byte // nil while empty; from queuePool
	queued    int       // bytes in queue
	allowance int       // backlog bytes allowed beyond MaxOutboundBytes until the queue drains
	inflight  int       // bytes handed to the transport by a flush in progress
	scheduled bool      // on the flusher's ready list, or being flushed
	blocked   bool      // the socket is full: waiting for Writable
	woken     bool      // Writable came while a flush was in progress
	stalled   int64     // Unix nanoseconds when the socket last filled up
	aborted   bool      // closing without flushing: drop whatever is left
	closing   *protocol.Disconnect
	reason    atomic.Pointer[protocol.Disconnect] // why the connection ended
}

// ClientID is the connection id as clients see it.
func (s *Session) ClientID() string { return strconv.FormatUint(s.id, 36) }

// User returns the authenticated user id ("" before connect).
func (s *Session) User() string { return s.identity.User }

// Identity returns the authenticated identity.
func (s *Session) Identity() Identity { return s.identity }

// Deliver queues a frame for the client. It never blocks; a client whose
// queue exceeds its bound is disconnected as a slow consumer.
func (s *Session) Deliver(f *protocol.Frame) { s.deliver(f.Bytes(s.wire)) }

// DeliverControl queues a transport-level frame (a WebSocket pong) behind
// what is queued. It counts against the outbound bound like any frame, so
// a client that sends pings and never reads the pongs falls behind like
// any other.
func (s *Session) DeliverControl(b []byte) { s.deliver(b) }

func (s *Session) deliver(b []byte) {
	s.mu.Lock()
	if s.closing != nil {
		s.mu.Unlock()
		return
	}
	if s.queued+s.inflight+len(b) > s.mgr.limits.MaxOutboundBytes+s.allowance {
		s.mu.Unlock()
		s.mgr.metrics.SlowConsumers.Add(1)
		s.abort(protocol.DisconnectSlowConsumer)
		return
	}
	s.enqueueLocked(b)
	s.mu.Unlock()
}

// DeliverBacklog queues stored messages (a channel's recovery, a device's
// inbox) that the client is owed at once. They are allowed beyond the
// outbound bound, which applies again once the queue has drained: the
// caller bounds a backlog, and a client that does not read it is still
// dropped when its socket stays full.
func (s *Session) DeliverBacklog(frames []*protocol.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing != nil {
		return
	}
	for _, f := range frames {
		b := f.Bytes(s.wire)
		s.allowance += len(b)
		s.enqueueLocked(b)
	}
}

func (s *Session) enqueueLocked(b []byte) {
	if s.queue == nil {
		s.queue = queuePool.Get().(*[][]byte)
	}
	*s.queue = append(*s.queue, b)
	s.queued += len(b)
	s.scheduleLocked()
}

// scheduleLocked puts the session on the writers' list, unless it is there
// already or its socket is full: a writer never spends time on a
// connection that cannot take anything.
func (s *Session) scheduleLocked() {
	if !s.scheduled && !s.blocked {
		s.scheduled = true
		s.mgr.flusher.schedule(s)
	}
}

// Writable is called by the transport when a socket that was full can take
// more: the session goes back on the writers' list.
func (s *Session) Writable() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.blocked {
		// The flush that filled the socket has not yet recorded it.
		s.woken = true
		return
	}
	s.blocked, s.stalled = false, 0
	s.scheduleLocked()
}

// Close disconnects the client for reason d: queued frames are written,
// then the disconnect push, then the connection is closed.
func (s *Session) Close(d protocol.Disconnect) {
	s.end(d, protocol.DisconnectFrame(d).Bytes(s.wire))
}

// Leave ends a connection whose client is closing it (a WebSocket close
// frame): what is queued is still written, then the transport closes with
// d, but no disconnect frame goes out, which the client no longer waits
// for.
func (s *Session) Leave(d protocol.Disconnect) { s.end(d, nil) }

// end marks the session closing for d, unless it is already, and has the
// flusher write what is queued, then last (when not nil), then close.
func (s *Session) end(d protocol.Disconnect, last []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing != nil {
		return
	}
	s.closing = &d
	s.reason.CompareAndSwap(nil, &d)
	if last != nil {
		s.enqueueLocked(last)
	} else {
		s.scheduleLocked()
	}
}

func (s *Session) dropQueueLocked() {
	if s.queue != nil {
		releaseQueue(s.queue)
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
	s.closing, s.aborted = &d, true
	s.reason.CompareAndSwap(nil, &d)
	s.dropQueueLocked()
	s.blocked = false
	s.scheduleLocked()
}

// queuePool recycles outbound queues, so that an idle connection holds none.
var queuePool = sync.Pool{New: func() any {
	q := make([][]byte, 0, 16)
	return &q
}}

func releaseQueue(q *[][]byte) {
	clear(*q)
	*q = (*q)[:0]
	if cap(*q) <= 1024 {
		queuePool.Put(q)
	}
}

// flush writes what is queued in one call. Only the flusher calls it, and
// never for the same session twice at once.
func (s *Session) flush() {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.inflight, s.queued = s.queued, 0
	s.mu.Unlock()

	var rest int // frames of q not written whole
	if q != nil && len(*q) > 0 {
		rest = s.write(*q)
	}

	s.mu.Lock()
	s.inflight = 0
	if rest > 0 && !s.aborted {
		s.requeueLocked(q, rest)
		if s.woken {
			s.woken = false
			s.mgr.flusher.schedule(s) // still scheduled: straight back in line
		} else {
			s.blocked, s.scheduled = true, false
			s.stalled = time.Now().UnixNano()
		}
		s.mu.Unlock()
		return
	}
	if q != nil {
		releaseQueue(q)
	}
	if s.queue != nil {
		// More arrived while writing: go to the back of the line.
		s.mgr.flusher.schedule(s)
		s.mu.Unlock()
		return
	}
	s.scheduled = false
	s.allowance = 0
	closing, aborted := s.closing, s.aborted
	s.mu.Unlock()
	switch {
	case aborted:
		s.t.Abort()
	case closing != nil:
		_ = s.t.Close(*closing)
	}
}

// write hands frames to the transport and returns how many of them, at
// the end, it did not write whole; frames is trimmed in place to those,
// the first one cut to its unwritten tail.
func (s *Session) write(frames [][]byte) int {
	n, err := s.t.Write(frames)
	if err != nil {
		if IsOverflow(err) {
			s.mgr.metrics.SlowConsumers.Add(1)
			s.reason.CompareAndSwap(nil, &protocol.DisconnectSlowConsumer)
		}
		return 0 // the connection is gone; the transport reports it closed
	}
	for i, f := range frames {
		if n < len(f) {
			frames[i] = f[n:]
			k := copy(frames, frames[i:])
			clear(frames[k:])
			return k
		}
		n -= len(f)
	}
	return 0
}

// requeueLocked puts the first rest frames of q back in front of what was
// queued meanwhile.
func (s *Session) requeueLocked(q *[][]byte, rest int) {
	*q = (*q)[:rest]
	for _, b := range *q {
		s.queued += len(b)
	}
	if s.queue != nil {
		*q = append(*q, *s.queue...)
		releaseQueue(s.queue)
	}
	s.queue = q
}

// stalledFor reports how long the socket has been full, or 0.
func (s *Session) stalledFor(now int64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.blocked {
		return 0
	}
	return time.Duration(now - s.stalled)
}

// touch records inbound activity.
func (s *Session) touch(now int64) { s.lastSeen.Store(now) }

// tick runs the session's timers; the manager's sweeper calls it.
func (s *Session) tick(now int64) {
	l := &s.mgr.limits
	if s.stalledFor(now) > l.PongTimeout {
		// The socket has taken nothing for as long as a silent client is
		// tolerated: the client is not reading.
		s.mgr.metrics.SlowConsumers.Add(1)
		s.abort(protocol.DisconnectSlowConsumer)
		return
	}
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
	s.aborted, s.blocked = true, false
	s.dropQueueLocked()
	s.mu.Unlock()

	if was == stateActive {
		s.mgr.node.Unregister(s, subs)
	}
	reason := ReasonClientClosed
	if r := s.reason.Load(); r != nil {
		reason = r.Reason
	}
	s.mgr.remove(s, reason)
	s.mgr.log.Debug("connection closed", "client", s.ClientID(), "user", s.identity.User,
		"remote", s.t.RemoteAddr(), "reason", reason, "err", err,
		"duration", time.Duration(time.Now().UnixNano()-s.opened))
}

// Transport returns the connection's transport.
func (s *Session) Transport() Transport { return s.t }
