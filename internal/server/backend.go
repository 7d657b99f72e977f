package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/rs/xid"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// backend implements api.Backend over the server.
type backend struct{ *Server }

var _ api.Backend = backend{}

func (b backend) UserPresence(ctx context.Context, user string) (int, json.RawMessage, error) {
	if c := b.cluster; c != nil {
		n, info, err := c.presence.User(ctx, user)
		if err != nil {
			return 0, nil, b.lostRedis("read presence", err)
		}
		return n, info, nil
	}
	subs := b.hub.UserConnections(user)
	if len(subs) == 0 {
		return 0, nil, nil
	}
	return len(subs), subs[0].(*session.Session).Identity().Info, nil
}

func (b backend) ChannelPresence(ctx context.Context, channel string) ([]api.Member, error) {
	if c := b.cluster; c != nil {
		ms, err := c.presence.Channel(ctx, channel)
		if err != nil {
			return nil, b.lostRedis("read presence", err)
		}
		members := make([]api.Member, len(ms))
		for i, m := range ms {
			members[i] = api.Member{User: m.User, Connections: m.Connections, Info: m.Info}
		}
		return members, nil
	}
	var members []api.Member
	index := make(map[string]int)
	for _, sub := range b.hub.ChannelSubscribers(channel) {
		s := sub.(*session.Session)
		if i, ok := index[s.User()]; ok {
			members[i].Connections++
			continue
		}
		index[s.User()] = len(members)
		members = append(members, api.Member{User: s.User(), Connections: 1, Info: s.Identity().Info})
	}
	return members, nil
}

func (b backend) Stats(ctx context.Context) (api.Stats, error) {
	if c := b.cluster; c != nil {
		t, err := c.presence.Stats(ctx)
		if err != nil {
			return api.Stats{}, b.lostRedis("read stats", err)
		}
		return api.Stats{Stats: hub.Stats(t.Stats), Nodes: t.Nodes}, nil
	}
	return api.Stats{Stats: b.hub.Stats()}, nil
}

// lostRedis logs a failed call to Redis and answers it with a 503.
func (b backend) lostRedis(what string, err error) error {
	b.failures.log(b.log, slog.LevelWarn, what, "err", err)
	perr := unavailable("the cluster's state could not be read")
	return &api.Error{Status: http.StatusServiceUnavailable, Code: string(perr.Code), Message: perr.Message}
}

// Dispatch answers a message the store refused with a 503 the caller can
// retry: nothing was sent.
func (b backend) Dispatch(ctx context.Context, m *protocol.Message) error {
	err := b.Server.Dispatch(ctx, m)
	if errors.Is(err, errNotStored) {
		b.failures.log(b.log, slog.LevelError, "message not stored", "kind", m.Kind, "err", err)
	}
	return b.notStored(err)
}

// DispatchBatch answers each message the store refused as Dispatch does.
func (b backend) DispatchBatch(ctx context.Context, ms []*protocol.Message) []error {
	return b.batchErrors(ms, b.Server.DispatchBatch(ctx, ms))
}

func (b backend) SendBatch(ctx context.Context, ms []*protocol.Message) []error {
	return b.batchErrors(ms, b.Server.SendBatch(ctx, ms))
}

// batchErrors logs the first of the messages of a batch the store refused
// and turns each one's error into the API's.
func (b backend) batchErrors(ms []*protocol.Message, errs []error) []error {
	failed := 0
	for i, err := range errs {
		if errors.Is(err, errNotStored) {
			if failed == 0 {
				b.failures.log(b.log, slog.LevelError, "batch messages not stored", "kind", ms[i].Kind, "err", err)
			}
			failed++
		}
		errs[i] = b.notStored(err)
	}
	return errs
}

// notStored turns the error of a message the store refused, or one a
// node of a cluster could not hand to Redis, into a 503.
func (b backend) notStored(err error) error {
	var perr *protocol.Error
	switch {
	case errors.Is(err, errNotStored):
		perr = b.storageError()
	case errors.Is(err, errUnavailable):
		perr = unavailable("the message was not sent")
	default:
		return err
	}
	return &api.Error{Status: http.StatusServiceUnavailable, Code: string(perr.Code), Message: perr.Message}
}

func (b backend) DisconnectUser(ctx context.Context, user string, d protocol.Disconnect) (int, error) {
	if b.cluster == nil {
		return b.disconnectLocal(user, d), nil
	}
	n, _, err := b.UserPresence(ctx, user)
	if err != nil {
		return 0, err
	}
	data, err := json.Marshal(d)
	if err != nil {
		return 0, err
	}
	return n, b.sendControl(ctx, user, "disconnect", string(data))
}

func (b backend) UnsubscribeUser(ctx context.Context, user, channel string) (int, error) {
	if b.cluster == nil {
		return b.unsubscribeLocal(user, channel), nil
	}
	members, err := b.ChannelPresence(ctx, channel)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range members {
		if m.User == user {
			n = m.Connections
		}
	}
	return n, b.sendControl(ctx, user, "unsubscribe", channel)
}

// sendControl has every node that holds user carry out op (control).
func (b backend) sendControl(ctx context.Context, user, op, arg string) error {
	m := &protocol.Message{ID: xid.New().String(), Kind: protocol.KindControl, To: user, Time: time.Now().UnixMilli(), Data: []byte(op + "\x00" + arg)}
	if err := b.broker.Publish(ctx, m); err != nil {
		b.log.Warn("send "+op+" to the nodes", "user", user, "err", err)
		perr := unavailable("the " + op + " could not reach the other nodes")
		return &api.Error{Status: http.StatusServiceUnavailable, Code: string(perr.Code), Message: perr.Message}
	}
	return nil
}

// decodeDisconnect reads the disconnect of a control message.
func decodeDisconnect(s string) (protocol.Disconnect, error) {
	var d protocol.Disconnect
	err := json.Unmarshal([]byte(s), &d)
	return d, err
}

// disconnectLocal closes every connection of user on this node; returns
// how many.
func (s *Server) disconnectLocal(user string, d protocol.Disconnect) int {
	subs := s.hub.UserConnections(user)
	for _, sub := range subs {
		sub.(*session.Session).Close(d)
	}
	return len(subs)
}

// unsubscribeLocal removes user's connections on this node from channel;
// returns how many were subscribed.
func (s *Server) unsubscribeLocal(user, channel string) int {
	n := 0
	f := protocol.UnsubscribedFrame(channel)
	for _, sub := range s.hub.UserConnections(user) {
		sess := sub.(*session.Session)
		// The session leaves the hub and its own list under its state
		// lock: removing the hub entry after that lock is released lets a
		// concurrent subscribe from the client re-list the channel while
		// its hub add is a no-op, and the connection would never receive
		// the channel again.
		if sess.Unsubscribe(channel) {
			sess.Deliver(f)
			n++
		}
	}
	return n
}
