package session

import (
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldpush/herald/internal/protocol"
)

// HandleFrame processes one complete inbound text frame (a WebSocket text
// message or one line). The transport calls it for one session at a time,
// in arrival order.
func (s *Session) HandleFrame(frame []byte) {
	defer s.closeOnPanic()
	s.touch(time.Now().UnixNano())
	s.mgr.metrics.FramesIn.Add(1)
	st := s.loadState()
	if st == stateRefused {
		return
	}
	req, perr := protocol.Decode(frame)
	if perr != nil {
		if st == statePending && req.Op == protocol.OpConnect {
			// A connect the server cannot even read (a malformed user id,
			// a field of the wrong type) fails like any other connect.
			s.mgr.node.ConnectRefused(s, req.User, perr)
			s.refuse(req.ID, perr, protocol.DisconnectUnauthorized)
			return
		}
		s.fail(req.ID, perr)
		return
	}
	s.handle(&req)
}

// closeOnPanic ends the connection as a server error if its handler
// panics, then lets the panic go on to the transport, which logs it. After
// a panic the session's view of its subscriptions and the registry's may
// disagree; a client that reconnects starts both afresh.
func (s *Session) closeOnPanic() {
	if r := recover(); r != nil {
		s.Close(protocol.DisconnectServerError)
		panic(r)
	}
}

// HandleBinary reports a binary WebSocket frame, which the protocol does not
// use.
func (s *Session) HandleBinary() {
	s.touch(time.Now().UnixNano())
	if s.loadState() == stateRefused {
		return
	}
	s.fail(0, protocol.Errorf(protocol.CodeBinaryNotSupported, "binary frames are not supported; send JSON in text frames"))
}

// Touch records liveness from a transport-level frame (a WebSocket ping or
// pong) that carries no operation.
func (s *Session) Touch() { s.touch(time.Now().UnixNano()) }

// HandleOversize reports an inbound frame over MaxFrameBytes: the stream
// cannot be resynchronised, so the connection is closed.
func (s *Session) HandleOversize() {
	s.Close(protocol.DisconnectFrameTooLarge)
}

func (s *Session) handle(req *protocol.Request) {
	if req.Op == protocol.OpPong {
		return
	}
	st := s.loadState()
	if st == statePending {
		if req.Op != protocol.OpConnect {
			s.fail(req.ID, protocol.Errorf(protocol.CodeNotConnected, "send connect first"))
			return
		}
		s.connect(req)
		return
	}
	if st != stateActive {
		return
	}
	if req.Op == protocol.OpConnect {
		s.fail(req.ID, protocol.Errorf(protocol.CodeAlreadyConnected, "this connection is already connected"))
		return
	}
	if !s.limiter.Allow() {
		s.fail(req.ID, protocol.Errorf(protocol.CodeRateLimited, "more than %g operations per second; slow down", s.mgr.limits.OpsPerSecond))
		return
	}
	switch req.Op {
	case protocol.OpPing:
		s.succeed(req.ID, nil)
	case protocol.OpSubscribe:
		s.subscribe(req)
	case protocol.OpAck:
		if perr := s.mgr.node.Ack(s.mgr.ctx, s, *req.Seq); perr != nil {
			s.fail(req.ID, perr)
			return
		}
		s.succeed(req.ID, nil)
	case protocol.OpUnsubscribe:
		s.unsubscribe(req)
	case protocol.OpPresence:
		res, perr := s.mgr.node.Presence(s.mgr.ctx, s, req.Channel)
		if perr != nil {
			s.fail(req.ID, perr)
			return
		}
		s.succeed(req.ID, res)
	case protocol.OpPublish, protocol.OpSend, protocol.OpBroadcast:
		if !s.pubRate.Allow() {
			s.fail(req.ID, protocol.Errorf(protocol.CodeRateLimited, "more than %g messages per second; slow down", s.mgr.limits.PublishPerSecond))
			return
		}
		id, perr := s.mgr.node.Route(s.mgr.ctx, s, req)
		if perr != nil {
			s.fail(req.ID, perr)
			return
		}
		s.succeed(req.ID, protocol.PublishResult{ID: id})
	}
}

func (s *Session) connect(req *protocol.Request) {
	id, perr := s.mgr.node.Authenticate(s.mgr.ctx, s, req)
	if perr != nil {
		d := protocol.DisconnectUnauthorized
		if perr.Code == protocol.CodeHookUnavailable {
			// The backend could not say; the client did nothing wrong
			// and may try again.
			d = protocol.DisconnectServerError
		}
		s.refuse(req.ID, perr, d)
		return
	}
	id.Device = req.Device
	l := &s.mgr.limits
	result := protocol.ConnectResult{
		Protocol:     protocol.Version,
		Client:       s.ClientID(),
		User:         id.User,
		Device:       id.Device,
		PingInterval: int(l.PingInterval / time.Second),
		PongTimeout:  int(l.PongTimeout / time.Second),
		Limits: protocol.ConnectLimits{
			MaxFrameBytes:    l.MaxFrameBytes,
			OpsPerSecond:     l.OpsPerSecond,
			OpsBurst:         l.OpsBurst,
			PublishPerSecond: l.PublishPerSecond,
			PublishBurst:     l.PublishBurst,
			MaxSubscriptions: l.MaxSubscriptions,
		},
	}
	active, perr := s.activate(id, func(inbox *protocol.InboxState) {
		result.Inbox = inbox
		s.reply(req.ID, result, nil)
	})
	switch {
	case perr != nil && perr.Code == protocol.CodeTooManyConnections:
		s.refuse(req.ID, perr, protocol.DisconnectTooManyConns)
	case perr != nil:
		// The server could not take the connection now (its store
		// failed): the client may try again.
		s.refuse(req.ID, perr, protocol.DisconnectServerError)
	case active:
		s.clearStrikes()
	}
}

// refuse ends a connection whose connect failed: the error reply, then
// disconnect d. A failed connect is final, so nothing the client sends after
// it is handled, not even another connect.
func (s *Session) refuse(id uint64, perr *protocol.Error, d protocol.Disconnect) {
	s.mgr.metrics.Errors.Add(1)
	s.markRefused()
	s.reply(id, nil, perr)
	s.Close(d)
}

func (s *Session) subscribe(req *protocol.Request) {
	replied := false
	active, perr := s.addSubscription(req, func(result any) {
		replied = true
		if req.ID != 0 {
			s.reply(req.ID, result, nil)
		}
	})
	switch {
	case perr != nil:
		s.fail(req.ID, perr)
	case replied:
		s.clearStrikes()
	case active:
		s.succeed(req.ID, nil) // subscribed already
	}
}

func (s *Session) unsubscribe(req *protocol.Request) {
	if !s.dropSubscription(req.Channel) {
		s.fail(req.ID, protocol.Errorf(protocol.CodeNotSubscribed, "not subscribed to %q", req.Channel))
		return
	}
	s.succeed(req.ID, nil)
}

// Unsubscribe removes the session from channel on the server's initiative
// (the server API's): from the registry and from the session's list in one
// step, as a client's unsubscribe does, so that a subscribe from the client
// at the same moment sees both changes or neither. It returns false if the
// session was not subscribed. The caller then delivers the unsubscribed
// push.
func (s *Session) Unsubscribe(channel string) bool { return s.dropSubscription(channel) }

func (s *Session) succeed(id uint64, result any) {
	s.clearStrikes()
	if id != 0 {
		s.reply(id, result, nil)
	}
}

// fail replies with an error and counts a strike; too many failures in a
// row close the connection as a protocol violation.
func (s *Session) fail(id uint64, perr *protocol.Error) {
	s.mgr.metrics.Errors.Add(1)
	s.reply(id, nil, perr)
	if s.strike(perr.Code) {
		s.Close(protocol.DisconnectProtocolViolation)
	}
}

func (s *Session) reply(id uint64, result any, perr *protocol.Error) {
	s.Deliver(protocol.ReplyFrame(id, result, perr))
}

// The methods below make the session's state changes under stateMu. Each
// releases it by defer, so that a panic in a handler or in the node (which
// the transport recovers) leaves it free for the sweeper and the close
// path. Under stateMu they may call the node, which takes hub locks, as the
// lock order allows.

func (s *Session) loadState() state { return state(s.state.Load()) }

// activate registers the pending session as id and makes it active. It
// returns false and no error when the session is no longer pending.
func (s *Session) activate(id Identity, reply func(*protocol.InboxState)) (bool, *protocol.Error) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.loadState() != statePending {
		return false, nil
	}
	s.identity = id
	if perr := s.mgr.node.Register(s, reply); perr != nil {
		return false, perr
	}
	l := &s.mgr.limits
	s.limiter = rate.NewLimiter(rate.Limit(l.OpsPerSecond), l.OpsBurst)
	s.pubRate = rate.NewLimiter(rate.Limit(l.PublishPerSecond), l.PublishBurst)
	s.lastPing.Store(time.Now().UnixNano())
	s.state.Store(uint32(stateActive))
	return true, nil
}

// markRefused moves a pending session to stateRefused.
func (s *Session) markRefused() {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.loadState() == statePending {
		s.state.Store(uint32(stateRefused))
	}
}

// addSubscription subscribes the active session to channel. The node's add
// and the list's happen under stateMu, so that a concurrent close cannot
// miss the subscription when it unregisters. It returns false and no error
// when the session is not active.
func (s *Session) addSubscription(req *protocol.Request, reply func(any)) (bool, *protocol.Error) {
	channel := req.Channel
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.loadState() != stateActive {
		return false, nil
	}
	if slices.Contains(s.subs, channel) {
		return true, nil
	}
	if max := s.mgr.limits.MaxSubscriptions; max > 0 && len(s.subs) >= max {
		return true, protocol.Errorf(protocol.CodeTooManySubscription, "a connection may subscribe to at most %d channels", max)
	}
	// Listed before the node adds it, so that the close path unregisters
	// the channel whatever the node did, even if it panicked halfway.
	s.subs = append(s.subs, channel)
	if perr := s.mgr.node.Subscribe(s.mgr.ctx, s, req, reply); perr != nil {
		s.subs = s.subs[:len(s.subs)-1]
		return true, perr
	}
	return true, nil
}

// dropSubscription removes channel from the node and from the list in one
// step under stateMu; it returns false if the session was not subscribed.
// The list keeps the channel until the node has removed it, so that the
// close path unregisters it even if the node panicked.
func (s *Session) dropSubscription(channel string) bool {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	i := slices.Index(s.subs, channel)
	if i < 0 {
		return false
	}
	s.mgr.node.Unsubscribe(s, channel)
	last := len(s.subs) - 1
	s.subs[i] = s.subs[last]
	s.subs[last] = ""
	s.subs = s.subs[:last]
	return true
}

// markClosed moves the session to stateClosed and hands back the state it
// was in and its subscriptions, for the close path to unregister.
func (s *Session) markClosed() (state, []string) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	was := s.loadState()
	s.state.Store(uint32(stateClosed))
	subs := s.subs
	s.subs = nil
	return was, subs
}

func (s *Session) clearStrikes() {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.strikes, s.limited = 0, 0
}

// strike counts a failed operation and reports whether the connection has
// now failed too often.
func (s *Session) strike(code protocol.Code) bool {
	l := &s.mgr.limits
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if code == protocol.CodeRateLimited {
		// Being slowed down is not a violation: a client resubscribing
		// after a reconnect may well outrun the burst. A client that
		// keeps going past a second burst without one success is
		// flooding.
		s.limited++
		return s.limited > l.OpsBurst
	}
	s.strikes++
	return l.MaxStrikes > 0 && s.strikes >= l.MaxStrikes
}
