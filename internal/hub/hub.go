// Package hub is the online registry: which users are connected and on
// which connections, which connections subscribe to which channels, and
// fan-out to them. It is sharded by name so that one busy channel or user
// does not serialise the others. The hub never blocks on I/O: delivering a
// frame to a Subscriber only queues it.
package hub

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/heraldpush/herald/internal/protocol"
)

// Subscriber is one client connection as the hub sees it.
type Subscriber interface {
	// User is the authenticated user id of the connection.
	User() string
	// Deliver queues f for the connection. It must not block and must not
	// call back into the hub.
	Deliver(f *protocol.Frame)
}

const numShards = 64

// Hub is the sharded registry. The zero value is not usable; call New.
type Hub struct {
	seed   maphash.Seed
	shards [numShards]shard
	conns  atomic.Int64 // registered connections
}

type shard struct {
	mu       sync.RWMutex
	channels map[string]*set
	users    map[string]*set
	// conns holds every connection whose user hashes to this shard; it is
	// what Broadcast walks.
	conns set
}

// New returns an empty hub.
func New() *Hub {
	h := &Hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*set)
		h.shards[i].users = make(map[string]*set)
	}
	return h
}

func (h *Hub) shard(name string) *shard {
	return &h.shards[maphash.String(h.seed, name)%numShards]
}

// Register adds a connection under its user. When maxPerUser > 0 and the
// user already has that many connections, it returns false and registers
// nothing.
func (h *Hub) Register(sub Subscriber, maxPerUser int) bool {
	s := h.shard(sub.User())
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := s.users[sub.User()]
	if conns == nil {
		conns = &set{}
		s.users[sub.User()] = conns
	}
	if maxPerUser > 0 && conns.len() >= maxPerUser {
		return false
	}
	if conns.add(sub) {
		s.conns.add(sub)
		h.conns.Add(1)
	}
	return true
}

// Unregister removes a connection and every subscription listed in channels.
// It is idempotent.
func (h *Hub) Unregister(sub Subscriber, channels []string) {
	for _, ch := range channels {
		h.Unsubscribe(sub, ch)
	}
	s := h.shard(sub.User())
	s.mu.Lock()
	defer s.mu.Unlock()
	if conns := s.users[sub.User()]; conns != nil && conns.remove(sub) {
		if conns.len() == 0 {
			delete(s.users, sub.User())
		}
		s.conns.remove(sub)
		h.conns.Add(-1)
	}
}

// Subscribe adds sub to channel and reports whether it was not yet there.
func (h *Hub) Subscribe(sub Subscriber, channel string) bool {
	s := h.shard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := s.channels[channel]
	if subs == nil {
		subs = &set{}
		s.channels[channel] = subs
	}
	return subs.add(sub)
}

// Unsubscribe removes sub from channel and reports whether it was there.
func (h *Hub) Unsubscribe(sub Subscriber, channel string) bool {
	s := h.shard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := s.channels[channel]
	if subs == nil || !subs.remove(sub) {
		return false
	}
	if subs.len() == 0 {
		delete(s.channels, channel)
	}
	return true
}

// Except names the connections a delivery leaves out: one connection
// (Sub), every connection of one user (User), or both. The zero value
// leaves out none, and costs the fan-out nothing.
type Except struct {
	Sub  Subscriber
	User string
}

// Publish delivers f to every subscriber of channel but those ex names,
// and returns how many connections it reached.
func (h *Hub) Publish(channel string, f *protocol.Frame, ex Except) int {
	s := h.shard(channel)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return deliverAll(s.channels[channel], f, ex)
}

// SendToUser delivers f to every connection of user but those ex names,
// and returns how many connections it reached.
func (h *Hub) SendToUser(user string, f *protocol.Frame, ex Except) int {
	s := h.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return deliverAll(s.users[user], f, ex)
}

// Broadcast delivers f to every registered connection but those ex names,
// and returns how many it reached.
func (h *Hub) Broadcast(f *protocol.Frame, ex Except) int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		n += deliverAll(&s.conns, f, ex)
		s.mu.RUnlock()
	}
	return n
}

func deliverAll(subs *set, f *protocol.Frame, ex Except) int {
	if subs == nil {
		return 0
	}
	if ex != (Except{}) {
		return deliverExcept(subs, f, ex)
	}
	for _, sub := range subs.members {
		sub.Deliver(f)
	}
	return len(subs.members)
}

// deliverExcept is deliverAll with connections left out: a separate loop,
// so that the common fan-out compares nothing per subscriber.
func deliverExcept(subs *set, f *protocol.Frame, ex Except) int {
	n := 0
	for _, sub := range subs.members {
		if sub == ex.Sub || (ex.User != "" && sub.User() == ex.User) {
			continue
		}
		sub.Deliver(f)
		n++
	}
	return n
}

// Connections returns the number of registered connections.
func (h *Hub) Connections() int { return int(h.conns.Load()) }

// UserConnections returns a copy of user's connections.
func (h *Hub) UserConnections(user string) []Subscriber {
	s := h.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if conns := s.users[user]; conns != nil {
		return append([]Subscriber(nil), conns.members...)
	}
	return nil
}

// ChannelSubscribers returns a copy of channel's subscribers.
func (h *Hub) ChannelSubscribers(channel string) []Subscriber {
	s := h.shard(channel)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if subs := s.channels[channel]; subs != nil {
		return append([]Subscriber(nil), subs.members...)
	}
	return nil
}

// Subscribers returns the number of connections subscribed to channel.
func (h *Hub) Subscribers(channel string) int {
	s := h.shard(channel)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if subs := s.channels[channel]; subs != nil {
		return subs.len()
	}
	return 0
}

// Stats are registry totals.
type Stats struct {
	Connections int `json:"connections"`
	Users       int `json:"users"`
	Channels    int `json:"channels"`
}

// Stats returns the current totals.
func (h *Hub) Stats() Stats {
	st := Stats{Connections: h.Connections()}
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		st.Users += len(s.users)
		st.Channels += len(s.channels)
		s.mu.RUnlock()
	}
	return st
}
