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
		return protocol.Errorf(protocol.CodeTooManyConnections, "user %q already has %d connections open", s.User(), n.s.cfg.MaxConnsPerUser)
	}
	return nil
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
	n.s.Deliver(ctx, m)
	return m.ID, nil
}

// Deliver stamps m with an id and the server time and delivers it to every
// connection it addresses. It returns the number of connections reached.
func (s *Server) Deliver(_ context.Context, m *protocol.Message) int {
	m.ID = xid.New().String()
	m.Time = time.Now().UnixMilli()
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
	s.counters.messages.Add(1)
	s.counters.deliveries.Add(int64(n))
	return n
}
