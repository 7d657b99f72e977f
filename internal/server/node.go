package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rs/xid"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/broker"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// node implements session.Node: it is how a client connection reaches
// authentication, the registry and routing.
type node struct{ s *Server }

var _ session.Node = node{}

func (n node) Register(s *session.Session, reply func(*protocol.InboxState)) *protocol.Error {
	t := broker.UserTopic(s.User())
	if perr := n.s.want(t, "the connection could not be registered"); perr != nil {
		return perr
	}
	var perr *protocol.Error
	switch {
	case s.Identity().Device != "" && n.s.cfg.InboxTTL > 0:
		perr = n.s.registerDevice(n.s.runCtx, s, reply)
	case n.s.cluster != nil && n.s.cfg.InboxTTL > 0:
		perr = n.s.registerClustered(n.s.runCtx, s, reply)
	default:
		if perr = n.s.register(s); perr == nil {
			reply(nil)
		}
	}
	if perr != nil {
		n.s.unwant(t)
	}
	return perr
}

// register adds s to the hub, within the per-user connection limit.
func (s *Server) register(sess *session.Session) *protocol.Error {
	if !s.hub.Register(sess, s.cfg.MaxConnsPerUser) {
		perr := protocol.Errorf(protocol.CodeTooManyConnections, "user %q already has %d connections open", sess.User(), s.cfg.MaxConnsPerUser)
		s.connLog.refused(sess, sess.User(), perr, nil)
		return perr
	}
	s.connLog.connected(sess)
	s.presenceHook.connected(sess.User())
	if s.cluster != nil {
		s.cluster.presence.Connected(sess.User(), sess.Identity().Info)
	}
	return nil
}

func (n node) ConnectRefused(s *session.Session, user string, perr *protocol.Error) {
	n.s.connLog.refused(s, user, perr, nil)
}

func (n node) Unregister(s *session.Session, channels []string) {
	n.s.hub.Unregister(s, channels)
	if c := n.s.cluster; c != nil {
		for _, ch := range channels {
			c.presence.Left(ch, s.User())
			n.s.unwant(broker.ChannelTopic(ch))
		}
		c.presence.Disconnected(s.User())
		n.s.unwant(broker.UserTopic(s.User()))
	}
	if h := n.s.presenceHook; h != nil {
		for _, ch := range channels {
			if n.s.policy.rule(ch).PresenceEvents {
				h.left(s.User(), ch)
			}
		}
		h.disconnected(s.User())
	}
}

func (n node) Subscribe(ctx context.Context, s *session.Session, req *protocol.Request, reply func(any)) *protocol.Error {
	rule := n.s.policy.rule(req.Channel)
	if rule.SubscribeHook && !auth.MatchChannel(s.Identity().Grants, req.Channel) {
		// The backend decides in place of the namespace's rule. Asked
		// under the session's stateMu, as the store is for history:
		// hook-timeout bounds the wait.
		if perr := n.s.authHooks.askSubscribe(ctx, s, req.Channel); perr != nil {
			n.s.log.Debug("subscribe refused", "client", s.ClientID(), "user", s.User(), "channel", req.Channel, "err", perr)
			return perr
		}
	} else if perr := n.s.policy.canSubscribe(s.Identity(), req.Channel); perr != nil {
		return perr
	}
	size, ttl := rule.History()
	if size == 0 && req.Offset != nil {
		return protocol.Errorf(protocol.CodeInvalidField, "channel %q keeps no history to recover from: subscribe without offset and epoch", req.Channel)
	}
	t := broker.ChannelTopic(req.Channel)
	if perr := n.s.want(t, "the subscription could not be made"); perr != nil {
		return perr
	}
	if size > 0 {
		if perr := n.s.subscribeHistory(ctx, s, req, size, ttl, reply); perr != nil {
			n.s.unwant(t)
			return perr
		}
	} else {
		if !n.s.hub.Subscribe(s, req.Channel) {
			n.s.unwant(t)
		}
		reply(nil)
	}
	if n.s.cluster != nil {
		n.s.cluster.presence.Joined(req.Channel, s.User())
	}
	if rule.PresenceEvents {
		n.s.presenceHook.joined(s.User(), req.Channel)
	}
	return nil
}

func (n node) Ack(ctx context.Context, s *session.Session, seq uint64) *protocol.Error {
	if n.s.cfg.InboxTTL == 0 {
		return protocol.Errorf(protocol.CodeForbidden, "this server keeps no inbox (inbox-ttl is 0): there is nothing to acknowledge")
	}
	return n.s.ack(ctx, s, seq)
}

func (n node) Unsubscribe(s *session.Session, channel string) {
	if !n.s.hub.Unsubscribe(s, channel) {
		return
	}
	if n.s.policy.rule(channel).PresenceEvents {
		n.s.presenceHook.left(s.User(), channel)
	}
	if n.s.cluster != nil {
		n.s.cluster.presence.Left(channel, s.User())
		n.s.unwant(broker.ChannelTopic(channel))
	}
}

func (n node) Presence(_ context.Context, s *session.Session, channel string) (protocol.PresenceResult, *protocol.Error) {
	if perr := n.s.policy.canSubscribe(s.Identity(), channel); perr != nil {
		return protocol.PresenceResult{}, perr
	}
	members, err := backend{n.s}.ChannelPresence(n.s.runCtx, channel)
	if err != nil {
		return protocol.PresenceResult{}, unavailable("presence could not be read")
	}
	return protocol.NewPresenceResult(channel, members), nil
}

func (n node) Route(ctx context.Context, s *session.Session, req *protocol.Request) (string, *protocol.Error) {
	m := &protocol.Message{From: s.User(), Data: req.Data}
	if req.NoEcho() {
		m.ExceptClient = s.ClientID()
	}
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
		n.s.failures.log(n.s.log, slog.LevelError, "publish failed", "err", err)
		switch {
		case errors.Is(err, errNotStored):
			return "", n.s.storageError()
		case errors.Is(err, errUnavailable):
			return "", unavailable("the message was not sent")
		}
		return "", protocol.Errorf(protocol.CodeInternal, "the message could not be published; retry")
	}
	return m.ID, nil
}

// Dispatch accepts a message from a client or the server API: it stamps m
// with an id and the server time and publishes it through the broker,
// which hands it to every node (this one included) for delivery to the
// connections it addresses.
//
// A message for a channel with history, or for a user's inbox, is stored
// first: a nil error then means it is on disk. An error wrapping
// errNotStored means the store refused it and nothing was sent.
//
// A message that comes with an id keeps it: the server API chooses ids
// before it acts, so that a retried request sends the same ids.
func (s *Server) Dispatch(ctx context.Context, m *protocol.Message) error {
	s.stamp(m, time.Now())
	var err error
	switch {
	case m.Kind == protocol.KindChannel:
		size, ttl := s.policy.rule(m.Channel).History()
		if size == 0 {
			return s.publish(ctx, m)
		}
		err = s.publishStored(ctx, m.Channel, []*protocol.Message{m}, size, ttl)
	case m.Kind == protocol.KindDirect && s.cfg.InboxTTL > 0:
		err = s.sendStored(ctx, m)
	default:
		return s.publish(ctx, m)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errNotStored, err)
	}
	return nil
}

// stamp gives m an id unless it has one, and the time it was accepted,
// and counts it.
func (s *Server) stamp(m *protocol.Message, now time.Time) {
	if m.ID == "" {
		m.ID = xid.New().String()
	}
	m.Time = now.UnixMilli()
	m.Accepted = now
	s.counters.messages.Add(1)
}

// errNotStored marks a message the store refused.
var errNotStored = errors.New("message not stored")

// errUnavailable marks a message a node of a cluster could not hand to
// Redis: nothing was sent.
var errUnavailable = errors.New("redis unavailable")

// publish hands a message that is not stored to the broker.
func (s *Server) publish(ctx context.Context, m *protocol.Message) error {
	err := s.broker.Publish(ctx, m)
	if err != nil && s.cluster != nil {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return err
}

// deliverLocal delivers a message from the broker to this node's
// connections. In a cluster, a stored message goes through its lane first
// (arrive), and an order of the server API is carried out (control).
func (s *Server) deliverLocal(m *protocol.Message) {
	if s.cluster != nil {
		switch {
		case m.Kind == protocol.KindControl:
			s.control(m)
			return
		case m.Offset != 0 || m.Seq != 0:
			s.arrive(m)
			return
		}
	}
	s.deliver(m)
}

// deliver delivers a message, in order, to this node's connections:
// encoded once, then queued to each.
func (s *Server) deliver(m *protocol.Message) {
	f := m.Frame()
	ex := s.except(m)
	var n int
	switch m.Kind {
	case protocol.KindChannel:
		n = s.hub.Publish(m.Channel, f, ex)
	case protocol.KindDirect:
		n = s.hub.SendToUser(m.To, f, ex)
		if m.Seq != 0 && n > 0 {
			for _, sub := range s.hub.UserConnections(m.To) {
				if sub == ex.Sub || (ex.User != "" && sub.User() == ex.User) {
					continue
				}
				if d := sub.(*session.Session).Identity().Device; d != "" {
					s.receipts.delivered(m.To, d, m.Seq)
					if s.receiptHook != nil {
						s.receiptHook.add(eventDelivered, m.To, d, m.Seq, []string{m.ID})
					}
				}
			}
		}
	default:
		n = s.hub.Broadcast(f, ex)
	}
	s.counters.deliveries.Add(int64(n))
	accepted := m.Accepted
	if accepted.IsZero() {
		// From another node: only the wire's millisecond time is known.
		accepted = time.UnixMilli(m.Time)
	}
	s.latency.Observe(time.Since(accepted).Seconds())
}

// except is what m's delivery leaves out on this node. A client id that
// names no open connection here leaves out nothing: that connection is
// gone, or on another node.
func (s *Server) except(m *protocol.Message) hub.Except {
	ex := hub.Except{User: m.ExceptUser}
	if m.ExceptClient != "" {
		if sess := s.mgr.Lookup(m.ExceptClient); sess != nil {
			ex.Sub = sess
		}
	}
	return ex
}
