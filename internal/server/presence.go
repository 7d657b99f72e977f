package server

import (
	"context"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/hooks"
)

// hookEvent is one event of the events webhook. docs/hooks.md shows
// each type.
type hookEvent struct {
	Type    string `json:"type"`
	User    string `json:"user"`
	Channel string `json:"channel,omitempty"`
	// Seq grows with each event of the user, so that a backend keeps the
	// highest it has seen and drops any event at or below it.
	Seq uint64 `json:"seq"`
	At  int64  `json:"at"` // Unix milliseconds
	// *Unacked adds the fields of message.unacknowledged (nil: none);
	// exported only so that encoding/json decodes it in tests.
	*Unacked
}

// Presence event types.
const (
	eventOnline  = "user.online"
	eventOffline = "user.offline"
	eventJoin    = "channel.join"
	eventLeave   = "channel.leave"
)

// presenceHook turns connections and subscriptions into presence events
// for the backend named by --events-webhook. Arrivals are posted at once;
// departures (a user's last connection, a user's last subscription to a
// channel) only once they have lasted the grace period, so that a client
// that reconnects within it, as after a network blip, posts nothing.
//
// A nil *presenceHook is off: every method returns at once.
//
// Lock order: a shard's mu is taken after the session's and the hub's
// locks are released or from a timer, and is held while events are queued
// (Poster.Add takes the poster's leaf lock); it never calls back into the
// hub or a session.
type presenceHook struct {
	p     *hooks.Poster[hookEvent]
	grace time.Duration
	seq   seqClock
	seed  maphash.Seed
	// closed is set at shutdown: departures are then posted at once.
	closed atomic.Bool
	// elsewhere, on a node of a cluster, counts a user's connections on
	// the other nodes: user.online and user.offline are then posted only
	// when the user's presence begins or ends across the cluster. Events
	// pass through checks, in order, on their way to the poster.
	elsewhere func(ctx context.Context, user string) (int, error)
	checks    checkQueue

	shards [64]presenceShard
}

type presenceShard struct {
	mu    sync.Mutex
	users map[string]*userPresence
}

// userPresence is what the hook knows of one user on this node: kept
// while the user is online or has a departure pending.
type userPresence struct {
	conns int
	// gone is when conns fell to 0: user.offline is due at gone + grace.
	// Zero while the user is connected.
	gone     time.Time
	channels map[string]*channelPresence
	// gen names the timer armed last; an older one that fires does
	// nothing.
	gen   uint64
	armed bool
}

// channelPresence is one channel of a user: channel.join was posted.
type channelPresence struct {
	subs int // the user's connections subscribed
	// gone is when subs fell to 0: channel.leave is due at gone + grace.
	gone time.Time
}

func newPresenceHook(cfg config.Config, log *slog.Logger) *presenceHook {
	if cfg.EventsWebhook == "" {
		return nil
	}
	h := &presenceHook{
		p:     hooks.New[hookEvent](hooks.Config{URL: cfg.EventsWebhook, Secret: []byte(cfg.EventsWebhookSecret)}, log, nil),
		grace: cfg.OfflineGrace,
		seed:  maphash.MakeSeed(),
	}
	for i := range h.shards {
		h.shards[i].users = make(map[string]*userPresence)
	}
	h.checks.wake = make(chan struct{}, 1)
	h.checks.idle = sync.NewCond(&h.checks.mu)
	return h
}

func (h *presenceHook) run(ctx context.Context) {
	if h == nil {
		return
	}
	if h.elsewhere != nil {
		go h.checks.run(ctx, h.check)
	}
	h.p.Run(ctx)
}

// add hands an event to the poster, through the checks on a node of a
// cluster.
func (h *presenceHook) add(ev hookEvent) {
	if h.elsewhere != nil {
		h.checks.add(ev)
		return
	}
	h.p.Add(ev)
}

// clusterCheckTimeout bounds the look at the other nodes for one event.
const clusterCheckTimeout = 2 * time.Second

// check posts ev unless it is a user.online or user.offline the other
// nodes of the cluster make untrue: the user has connections there. When
// Redis cannot tell, the event is posted: a backend reconciles through
// the presence API (docs/hooks.md).
func (h *presenceHook) check(ctx context.Context, ev hookEvent) {
	if ev.Type == eventOnline || ev.Type == eventOffline {
		cctx, cancel := context.WithTimeout(ctx, clusterCheckTimeout)
		n, err := h.elsewhere(cctx, ev.User)
		cancel()
		if err == nil && n > 0 {
			return
		}
	}
	h.p.Add(ev)
}

// checkQueue holds the events on their way through the checks, in order.
type checkQueue struct {
	mu      sync.Mutex
	events  []hookEvent
	wake    chan struct{}
	idle    *sync.Cond
	running bool
}

func (q *checkQueue) add(ev hookEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.events = append(q.events, ev)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run checks the events as they come until ctx ends, then passes on what
// is left.
func (q *checkQueue) run(ctx context.Context, check func(context.Context, hookEvent)) {
	for {
		q.mu.Lock()
		evs := q.events
		q.events = nil
		q.running = len(evs) > 0
		if !q.running {
			q.idle.Broadcast()
		}
		q.mu.Unlock()
		for _, ev := range evs {
			check(ctx, ev)
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			q.mu.Lock()
			q.running = false
			q.idle.Broadcast()
			q.mu.Unlock()
			return
		}
	}
}

// drain waits until every event added so far went through its check, or
// ctx ends.
func (q *checkQueue) drain(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.idle.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for (len(q.events) > 0 || q.running) && ctx.Err() == nil {
		q.idle.Wait()
	}
}

func (h *presenceHook) shard(user string) *presenceShard {
	return &h.shards[maphash.String(h.seed, user)%uint64(len(h.shards))]
}

// emit queues an event; the user's shard lock is held, so that a user's
// events are queued in the order of their seq.
func (h *presenceHook) emit(typ, user, channel string) {
	h.add(hookEvent{Type: typ, User: user, Channel: channel, Seq: h.seq.next(), At: time.Now().UnixMilli()})
}

// post queues an event of user that is not about presence, under the
// user's shard lock as emit is, so that it keeps the order of the user's
// seq among the presence events.
func (h *presenceHook) post(user string, ev hookEvent) {
	sh := h.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ev.User, ev.Seq, ev.At = user, h.seq.next(), time.Now().UnixMilli()
	h.add(ev)
}

// connected counts a connection of user: user.online when it is the
// first and the user was not online within the grace.
func (h *presenceHook) connected(user string) {
	if h == nil {
		return
	}
	sh := h.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.users[user]
	if u == nil {
		u = &userPresence{channels: make(map[string]*channelPresence)}
		sh.users[user] = u
		h.emit(eventOnline, user, "")
	}
	u.conns++
	u.gone = time.Time{}
}

// withUser calls fn with user's state under its shard's lock, when the
// hook is on and knows the user: connected comes first.
func (h *presenceHook) withUser(user string, fn func(sh *presenceShard, u *userPresence)) {
	if h == nil {
		return
	}
	sh := h.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if u := sh.users[user]; u != nil {
		fn(sh, u)
	}
}

// disconnected counts a connection of user gone, after its channels.
func (h *presenceHook) disconnected(user string) {
	h.withUser(user, func(sh *presenceShard, u *userPresence) {
		if u.conns == 0 {
			return
		}
		if u.conns--; u.conns == 0 {
			u.gone = time.Now()
			h.settle(sh, user, u)
		}
	})
}

// joined counts a subscription of user to channel: channel.join when it is
// the user's first and the user did not leave the channel within the
// grace.
func (h *presenceHook) joined(user, channel string) {
	h.withUser(user, func(_ *presenceShard, u *userPresence) {
		c := u.channels[channel]
		if c == nil {
			c = &channelPresence{}
			u.channels[channel] = c
			h.emit(eventJoin, user, channel)
		}
		c.subs++
		c.gone = time.Time{}
	})
}

// left counts a subscription of user to channel gone.
func (h *presenceHook) left(user, channel string) {
	h.withUser(user, func(sh *presenceShard, u *userPresence) {
		c := u.channels[channel]
		if c == nil || c.subs == 0 {
			return
		}
		if c.subs--; c.subs == 0 {
			c.gone = time.Now()
			h.settle(sh, user, u)
		}
	})
}

// settle posts the departures of u that are due, the channels first in
// the order they were left, then the user's; it forgets the user once
// offline, and arms a timer for the departures still pending. sh.mu held.
func (h *presenceHook) settle(sh *presenceShard, user string, u *userPresence) {
	now := time.Now()
	due := func(gone time.Time) bool {
		return !gone.IsZero() && (h.grace == 0 || h.closed.Load() || !now.Before(gone.Add(h.grace)))
	}
	var leaving []string
	var next time.Time
	for name, c := range u.channels {
		switch {
		case due(c.gone):
			leaving = append(leaving, name)
		case !c.gone.IsZero() && (next.IsZero() || c.gone.Before(next)):
			next = c.gone
		}
	}
	slices.SortFunc(leaving, func(a, b string) int { return u.channels[a].gone.Compare(u.channels[b].gone) })
	for _, name := range leaving {
		delete(u.channels, name)
		h.emit(eventLeave, user, name)
	}
	switch {
	case due(u.gone):
		delete(sh.users, user)
		h.emit(eventOffline, user, "")
		return
	case !u.gone.IsZero() && (next.IsZero() || u.gone.Before(next)):
		next = u.gone
	}
	if next.IsZero() || u.armed {
		// Nothing pending, or a timer will come and look again.
		return
	}
	u.gen++
	u.armed = true
	gen := u.gen
	time.AfterFunc(time.Until(next.Add(h.grace)), func() { h.fire(sh, user, u, gen) })
}

// fire runs a timer armed for u: it settles what is due if u is still the
// user's state and the timer is its latest.
func (h *presenceHook) fire(sh *presenceShard, user string, u *userPresence, gen uint64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.users[user] != u || u.gen != gen {
		return
	}
	u.armed = false
	h.settle(sh, user, u)
}

// close posts every pending departure now: at shutdown, when every
// connection has closed, no user can come back within the grace. Later
// departures are posted at once.
func (h *presenceHook) close() {
	if h == nil {
		return
	}
	h.closed.Store(true)
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for user, u := range sh.users {
			h.settle(sh, user, u)
		}
		sh.mu.Unlock()
	}
	if h.elsewhere != nil {
		// The poster's last try takes only what passed its check.
		ctx, cancel := context.WithTimeout(context.Background(), 2*clusterCheckTimeout)
		defer cancel()
		h.checks.drain(ctx)
	}
}

// seqClock hands out event sequence numbers: each above the last, and at
// least the time in microseconds since 1970, so that they keep growing
// across restarts of the server and across the forgetting of a user who
// went offline.
type seqClock struct{ last atomic.Uint64 }

func (c *seqClock) next() uint64 {
	for {
		last := c.last.Load()
		n := max(last+1, uint64(time.Now().UnixMicro()))
		if c.last.CompareAndSwap(last, n) {
			return n
		}
	}
}
