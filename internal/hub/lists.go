package hub

import (
	"cmp"
	"slices"
)

// Count is a channel or a user and its number of connections.
type Count struct {
	Name        string
	Connections int
}

// TopChannels returns the n channels with the most subscribed connections,
// most first (ties by name), and the total of subscriptions over every
// channel. It walks every channel, one shard at a time under its read
// lock: it is for an operator's view, not for the message path.
func (h *Hub) TopChannels(n int) (top []Count, subscriptions int) {
	if n < 0 {
		n = 0
	}
	better := func(a, b Count) int {
		if c := cmp.Compare(b.Connections, a.Connections); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	}
	top = make([]Count, 0, n+1)
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for name, subs := range s.channels {
			c := Count{name, subs.len()}
			subscriptions += c.Connections
			if n == 0 || (len(top) == n && better(c, top[n-1]) >= 0) {
				continue
			}
			at, _ := slices.BinarySearchFunc(top, c, better)
			top = slices.Insert(top, at, c)
			if len(top) > n {
				top = top[:n]
			}
		}
		s.mu.RUnlock()
	}
	return top, subscriptions
}

// Users returns the first n online users in name order, each with its
// number of connections, and how many users are online. It walks every
// user, as TopChannels walks every channel.
func (h *Hub) Users(n int) (list []Count, total int) {
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		total += len(s.users)
		for name, conns := range s.users {
			list = append(list, Count{name, conns.len()})
		}
		s.mu.RUnlock()
	}
	slices.SortFunc(list, func(a, b Count) int { return cmp.Compare(a.Name, b.Name) })
	if len(list) > n {
		list = list[:max(n, 0)]
	}
	return list, total
}
