package session

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldpush/herald/internal/protocol"
)

// HandleFrame processes one complete inbound text frame (a WebSocket text
// message or one line). The transport calls it for one session at a time,
// in arrival order.
func (s *Session) HandleFrame(frame []byte) {
	s.touch(time.Now().UnixNano())
	s.mgr.metrics.FramesIn.Add(1)
	req, perr := protocol.Decode(frame)
	if perr != nil {
		s.fail(req.ID, perr)
		return
	}
	s.handle(&req)
}

// HandleBinary reports a binary WebSocket frame, which the protocol does not
// use.
func (s *Session) HandleBinary() {
	s.touch(time.Now().UnixNano())
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
	s.stateMu.Lock()
	st := s.state
	s.stateMu.Unlock()

	if req.Op == protocol.OpPong {
		return
	}
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
	case protocol.OpUnsubscribe:
		s.unsubscribe(req)
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
	id, perr := s.mgr.node.Authenticate(s.mgr.ctx, req)
	if perr != nil {
		s.reply(req.ID, nil, perr)
		s.Close(protocol.DisconnectUnauthorized)
		return
	}
	s.stateMu.Lock()
	if s.state != statePending {
		s.stateMu.Unlock()
		return
	}
	s.identity = id
	if perr := s.mgr.node.Register(s); perr != nil {
		s.stateMu.Unlock()
		s.reply(req.ID, nil, perr)
		s.Close(protocol.DisconnectTooManyConns)
		return
	}
	s.state = stateActive
	l := &s.mgr.limits
	s.limiter = rate.NewLimiter(rate.Limit(l.OpsPerSecond), l.OpsBurst)
	s.pubRate = rate.NewLimiter(rate.Limit(l.PublishPerSecond), l.PublishBurst)
	s.lastPing.Store(time.Now().UnixNano())
	s.stateMu.Unlock()
	s.succeed(req.ID, protocol.ConnectResult{
		Client:       s.ClientID(),
		User:         id.User,
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
	})
}

func (s *Session) subscribe(req *protocol.Request) {
	s.stateMu.Lock()
	if s.state != stateActive {
		s.stateMu.Unlock()
		return
	}
	for _, ch := range s.subs {
		if ch == req.Channel {
			s.stateMu.Unlock()
			s.succeed(req.ID, nil)
			return
		}
	}
	if max := s.mgr.limits.MaxSubscriptions; max > 0 && len(s.subs) >= max {
		s.stateMu.Unlock()
		s.fail(req.ID, protocol.Errorf(protocol.CodeTooManySubscription, "a connection may subscribe to at most %d channels", max))
		return
	}
	// The hub add happens under stateMu so that a concurrent close cannot
	// miss this subscription when it unregisters.
	perr := s.mgr.node.Subscribe(s.mgr.ctx, s, req.Channel)
	if perr == nil {
		s.subs = append(s.subs, req.Channel)
	}
	s.stateMu.Unlock()
	if perr != nil {
		s.fail(req.ID, perr)
		return
	}
	s.succeed(req.ID, nil)
}

func (s *Session) unsubscribe(req *protocol.Request) {
	s.stateMu.Lock()
	found := -1
	for i, ch := range s.subs {
		if ch == req.Channel {
			found = i
			break
		}
	}
	if found >= 0 {
		s.mgr.node.Unsubscribe(s, req.Channel)
		last := len(s.subs) - 1
		s.subs[found] = s.subs[last]
		s.subs = s.subs[:last]
	}
	s.stateMu.Unlock()
	if found < 0 {
		s.fail(req.ID, protocol.Errorf(protocol.CodeNotSubscribed, "not subscribed to %q", req.Channel))
		return
	}
	s.succeed(req.ID, nil)
}

// Unsubscribed records that the server removed the session from channel (on
// the server API's request); it returns false if it was not subscribed.
func (s *Session) Unsubscribed(channel string) bool {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	for i, ch := range s.subs {
		if ch == channel {
			last := len(s.subs) - 1
			s.subs[i] = s.subs[last]
			s.subs = s.subs[:last]
			return true
		}
	}
	return false
}

func (s *Session) succeed(id uint64, result any) {
	s.stateMu.Lock()
	s.strikes, s.limited = 0, 0
	s.stateMu.Unlock()
	if id != 0 {
		s.reply(id, result, nil)
	}
}

// fail replies with an error and counts a strike; too many failures in a
// row close the connection as a protocol violation.
func (s *Session) fail(id uint64, perr *protocol.Error) {
	s.mgr.metrics.Errors.Add(1)
	s.reply(id, nil, perr)
	l := &s.mgr.limits
	s.stateMu.Lock()
	var over bool
	if perr.Code == protocol.CodeRateLimited {
		// Being slowed down is not a violation: a client resubscribing
		// after a reconnect may well outrun the burst. A client that
		// keeps going past a second burst without one success is
		// flooding.
		s.limited++
		over = s.limited > l.OpsBurst
	} else {
		s.strikes++
		over = l.MaxStrikes > 0 && s.strikes >= l.MaxStrikes
	}
	s.stateMu.Unlock()
	if over {
		s.Close(protocol.DisconnectProtocolViolation)
	}
}

func (s *Session) reply(id uint64, result any, perr *protocol.Error) {
	s.Deliver(protocol.ReplyFrame(id, result, perr))
}
