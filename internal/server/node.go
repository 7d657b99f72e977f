package server

import (
	"context"
	"time"

	"github.com/rs/xid"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// node implements session.Node: it is how a client connection reaches
// authentication, the registry and routing.
type node struct{ s *Server }

var _ session.Node = node{}

func (n node) Register(s *session.Session) *protocol.Error {
	if !n.s.hub.Register(s, n.s.cfg.MaxConnsPerUser) {
		perr := protocol.Errorf(protocol.CodeTooManyConnections, "user %q already has %d connections open", s.User(), n.s.cfg.MaxConnsPerUser)
		n.s.connLog.refused(s, s.User(), perr, nil)
		return perr
	}
	n.s.connLog.connected(s)
	return nil
}

func (n node) ConnectRefused(s *session.Session, user string, perr *protocol.Error) {
	n.s.connLog.refused(s, user, perr, nil)
}

func (n node) Unregister(s *session.Session, channels []string) {
	n.s.hub.Unregister(s, channels)
}

func (n node) Subscribe(_ context.Context, s *session.Session, channel string) *protocol.Error {
	if perr := n.s.policy.canSubscribe(s.Identity(), channel); perr != nil {
		return perr
	}
	n.s.hub.Subscribe(s, channel)
	return nil
}

func (n node) Unsubscribe(s *session.Session, channel string) {
	n.s.hub.Unsubscribe(s, channel)
}

func (n node) Presence(_ context.Context, s *session.Session, channel string) (protocol.PresenceResult, *protocol.Error) {
	if perr := n.s.policy.canSubscribe(s.Identity(), channel); perr != nil {
		return protocol.PresenceResult{}, perr
	}
	return protocol.NewPresenceResult(channel, backend{n.s}.ChannelPresence(channel)), nil
}

func (n node) Route(ctx context.Context, s *session.Session, req *protocol.Request) (string, *protocol.Error) {
	m := &protocol.Message{From: s.User(), Data: req.Data}
	switch req.Op {
	case protocol.OpPublish:
		if perr := n.s.policy.canPublish(s.Identity(), req.Channel); perr != nil {
			return "", perr
		}
		m.Kind, m.Channel = protocol.KindChannel, req.Channel
	case protocol.OpSend:
		if !n.s.cfg.ClientSend {
			return "", protocol.Errorf(protocol.CodeForbidden, "clients may not send direct messages on this server")
		}
		m.Kind, m.To = protocol.KindDirect, req.To
	case protocol.OpBroadcast:
		if !n.s.cfg.ClientBroadcast {
			return "", protocol.Errorf(protocol.CodeForbidden, "clients may not broadcast on this server")
		}
		m.Kind = protocol.KindBroadcast
	}
	if err := n.s.Dispatch(ctx, m); err != nil {
		n.s.log.Error("publish failed", "err", err)
		return "", protocol.Errorf(protocol.CodeInternal, "the message could not be published; retry")
	}
	return m.ID, nil
}

// Dispatch accepts a message from a client or the server API: it stamps m
// with an id and the server time and publishes it through the broker,
// which hands it to every node (this one included) for delivery to the
// connections it addresses.
func (s *Server) Dispatch(ctx context.Context, m *protocol.Message) error {
	now := time.Now()
	m.ID = xid.New().String()
	m.Time = now.UnixMilli()
	m.Accepted = now
	s.counters.messages.Add(1)
	return s.broker.Publish(ctx, m)
}

// deliverLocal delivers a message from the broker to this node's
// connections: encoded once, then queued to each.
func (s *Server) deliverLocal(m *protocol.Message) {
	f := m.Frame()
	var n int
	switch m.Kind {
	case protocol.KindChannel:
		n = s.hub.Publish(m.Channel, f)
	case protocol.KindDirect:
		n = s.hub.SendToUser(m.To, f)
	default:
		n = s.hub.Broadcast(f)
	}
	s.counters.deliveries.Add(int64(n))
	accepted := m.Accepted
	if accepted.IsZero() {
		// From another node: only the wire's millisecond time is known.
		accepted = time.UnixMilli(m.Time)
	}
	s.latency.Observe(time.Since(accepted).Seconds())
}
