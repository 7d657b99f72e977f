package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// backend implements api.Backend over the server.
type backend struct{ *Server }

var _ api.Backend = backend{}

func (b backend) UserPresence(user string) (int, json.RawMessage) {
	subs := b.hub.UserConnections(user)
	if len(subs) == 0 {
		return 0, nil
	}
	return len(subs), subs[0].(*session.Session).Identity().Info
}

func (b backend) ChannelPresence(channel string) []api.Member {
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
	return members
}

func (b backend) Stats() hub.Stats { return b.hub.Stats() }

// Dispatch answers a message the store refused with a 503 the caller can
// retry: nothing was sent.
func (b backend) Dispatch(ctx context.Context, m *protocol.Message) error {
	err := b.Server.Dispatch(ctx, m)
	if errors.Is(err, errNotStored) {
		b.log.Error("message not stored", "kind", m.Kind, "err", err)
	}
	return notStored(err)
}

// DispatchBatch answers each message the store refused as Dispatch does.
func (b backend) DispatchBatch(ctx context.Context, ms []*protocol.Message) []error {
	errs := b.Server.DispatchBatch(ctx, ms)
	failed := 0
	for i, err := range errs {
		if errors.Is(err, errNotStored) {
			if failed == 0 {
				b.log.Error("batch messages not stored", "kind", ms[i].Kind, "err", err)
			}
			failed++
		}
		errs[i] = notStored(err)
	}
	return errs
}

// notStored turns the error of a message the store refused into a 503.
func notStored(err error) error {
	if errors.Is(err, errNotStored) {
		perr := storageError()
		return &api.Error{Status: http.StatusServiceUnavailable, Code: string(perr.Code), Message: perr.Message}
	}
	return err
}

func (b backend) DisconnectUser(user string, d protocol.Disconnect) int {
	subs := b.hub.UserConnections(user)
	for _, sub := range subs {
		sub.(*session.Session).Close(d)
	}
	return len(subs)
}

func (b backend) UnsubscribeUser(user, channel string) int {
	n := 0
	f := protocol.UnsubscribedFrame(channel)
	for _, sub := range b.hub.UserConnections(user) {
		s := sub.(*session.Session)
		// The session leaves the hub and its own list under its state
		// lock: removing the hub entry after that lock is released lets a
		// concurrent subscribe from the client re-list the channel while
		// its hub add is a no-op, and the connection would never receive
		// the channel again.
		if s.Unsubscribe(channel) {
			s.Deliver(f)
			n++
		}
	}
	return n
}
