package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/broker"
)

// The broker's subscriptions share a few dedicated pub/sub connections
// (shards) instead of costing a goroutine and a blocked Receive each: a
// node with 10,000 topics would otherwise hold 10,000 goroutines and their
// stacks. One goroutine per connection (shard.run) keeps it: it sends the
// subscriptions and unsubscriptions asked for since its last round,
// pipelined, at most batchMax channels per command, and when the
// connection breaks it reconnects with backoff and jitter and subscribes
// everything again. Redis confirms each channel of a command in order, on
// the connection; those confirmations, seen by the connection's hook, are
// what puts a subscription in force. A shard connects only once it has
// channels to hold.
//
// On a single Redis (or one behind Sentinel) a topic belongs to one of
// pubsubConns shards by the hash of its name: two rather than one so that
// delivering the publications of a busy node uses two cores (the handler
// runs on the connection's reading goroutine); each more costs its rueidis
// buffers and ring, some 4 MiB.
//
// On Redis Cluster a sharded channel lives on the node that owns its slot:
// there is a shard per node, a topic goes to the shard of its slot's owner
// (CLUSTER SLOTS), and a command carries channels of one slot only. When a
// node's connection breaks, or Redis ends a subscription because its slot
// moved, the broker reads the slots again and hands the topics that now
// belong elsewhere to their node's shard.
const (
	pubsubConns = 2
	batchMax    = 500
)

var (
	// errLinkBroken: a pub/sub connection ended with no error given.
	errLinkBroken = errors.New("redis pub/sub connection closed")
	// errNoNode: the client does not know the node a shard is for.
	errNoNode = errors.New("not a node of the cluster")
	// errMoved: the slot of a subscription moved to another node.
	errMoved = errors.New("slot moved to another redis node")
)

// shard is one dedicated pub/sub connection and the topics it carries.
type shard struct {
	b    *Broker
	addr string        // on Redis Cluster, the node it connects to
	kick chan struct{} // a change waits to be sent

	// mu guards what follows; it is taken after Broker.mu and before
	// subscription.mu, and never held during I/O.
	mu        sync.Mutex
	names     map[string]*chanState
	dirty     map[string]struct{} // names whose wanted state changed
	connected bool                // hooks are set on a connection
	gen       uint64              // counts connections, to ignore a stale hook
	moved     bool                // Redis ended a subscription: its slot moved
}

// chanState is one pub/sub channel of a shard, as the current connection
// has it.
type chanState struct {
	s        *subscription // who wants it; nil once unsubscribed
	sent     bool          // the last command sent for it subscribes
	awaiting int           // commands sent for it not yet confirmed
	waiters  []chan struct{}
}

func newShard(b *Broker, addr string) *shard {
	return &shard{b: b, addr: addr, kick: make(chan struct{}, 1), names: map[string]*chanState{}, dirty: map[string]struct{}{}}
}

// route returns the shard that is to hold the channel name, b.mu held: on
// a single Redis, one of pubsubConns by the hash of the name; on Redis
// Cluster, the shard of the node that owns its slot, started on first
// use.
func (b *Broker) route(name string) *shard {
	if !b.cluster {
		h := fnv.New32a()
		h.Write([]byte(name))
		return b.shards[h.Sum32()%uint32(len(b.shards))]
	}
	addr := b.owner(b.slotOf(name))
	for _, sh := range b.shards {
		if sh.addr == addr {
			return sh
		}
	}
	sh := newShard(b, addr)
	b.shards = append(b.shards, sh)
	b.wg.Add(1)
	go sh.run(b.runCtx)
	return sh
}

// subscribe subscribes name on its shard and waits until Redis
// confirmed it.
func (b *Broker) subscribe(ctx context.Context, t broker.Topic, name string) error {
	b.mu.Lock()
	if b.runCtx == nil || b.runCtx.Err() != nil {
		b.mu.Unlock()
		return ErrNotRunning
	}
	stopped := b.runCtx.Done()
	s := b.subs[name]
	now := false
	if s == nil {
		s = &subscription{topic: t, name: name, ready: make(chan struct{})}
		b.subs[name] = s
		s.shard = b.route(name)
		now = s.shard.want(s)
	}
	b.mu.Unlock()
	if now {
		b.upAgain(s)
	}
	select {
	case <-s.ready:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.withdrawn {
			return errWithdrawn
		}
		return nil
	case <-stopped:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unsubscribe unsubscribes name and waits until Redis confirmed it,
// so that nothing published afterwards arrives.
func (b *Broker) unsubscribe(ctx context.Context, name string) error {
	b.mu.Lock()
	s := b.subs[name]
	if s == nil || b.runCtx == nil {
		b.mu.Unlock()
		return nil
	}
	s.mu.Lock()
	if !s.everUp {
		s.withdrawn = true
		close(s.ready)
	}
	s.mu.Unlock()
	delete(b.subs, name)
	stopped := b.runCtx.Done()
	gone := s.shard.unwant(name)
	b.mu.Unlock()
	if gone == nil {
		return nil
	}
	select {
	case <-gone:
	case <-stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (sh *shard) wake() {
	select {
	case sh.kick <- struct{}{}:
	default:
	}
}

// want asks for s. If the connection already holds its channel (a topic
// unsubscribed and subscribed again before the unsubscription was sent),
// s is in force at once: want reports it, for the caller to call upAgain
// once it holds no lock.
func (sh *shard) want(s *subscription) bool {
	sh.mu.Lock()
	st := sh.names[s.name]
	if st == nil {
		st = &chanState{}
		sh.names[s.name] = st
	}
	st.s = s
	now := sh.connected && st.sent && st.awaiting == 0
	if !now {
		sh.dirty[s.name] = struct{}{}
	}
	sh.mu.Unlock()
	if !now {
		sh.wake()
	}
	return now
}

// unwant withdraws the interest in name. It returns a channel closed once
// Redis confirmed the unsubscription (or the connection is gone), or nil
// if the connection does not hold the channel.
func (sh *shard) unwant(name string) <-chan struct{} {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.names[name]
	if st == nil {
		return nil
	}
	st.s = nil
	sh.dirty[name] = struct{}{}
	sh.wake()
	if !sh.connected || (!st.sent && st.awaiting == 0) {
		return nil
	}
	ch := make(chan struct{})
	st.waiters = append(st.waiters, ch)
	return ch
}

func (st *chanState) release() {
	for _, ch := range st.waiters {
		close(ch)
	}
	st.waiters = nil
}

// run keeps the shard's connection until ctx ends.
func (sh *shard) run(ctx context.Context) {
	defer sh.b.wg.Done()
	backoff := minBackoff
	for {
		if !sh.waitWork(ctx) {
			return
		}
		err := sh.session(ctx, &backoff)
		if ctx.Err() != nil {
			sh.mu.Lock()
			sh.connected = false
			for _, st := range sh.names {
				st.release()
			}
			sh.mu.Unlock()
			return
		}
		sh.broken(err)
		if sh.b.cluster {
			sh.b.refreshSlots(ctx)
			sh.b.reroute(sh)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// waitWork waits until the shard has channels to hold, and reports
// false if ctx ended first: a shard connects only when it has work.
func (sh *shard) waitWork(ctx context.Context) bool {
	for {
		sh.mu.Lock()
		n := len(sh.names)
		sh.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-sh.kick:
		case <-ctx.Done():
			return false
		}
	}
}

// session takes a dedicated connection, subscribes what is wanted and
// follows the changes until the connection breaks or ctx ends. The
// backoff starts again once Redis answered.
func (sh *shard) session(ctx context.Context, backoff *time.Duration) error {
	var dc rueidis.DedicatedClient
	var release func()
	if sh.b.cluster {
		node := sh.b.client.Nodes()[sh.addr]
		if node == nil {
			return fmt.Errorf("redis node %q: %w", sh.addr, errNoNode)
		}
		dc, release = node.Dedicate()
	} else {
		dc, release = sh.b.client.Dedicate()
	}
	defer func() {
		dc.Close()
		release()
	}()
	sh.mu.Lock()
	sh.gen++
	gen := sh.gen
	sh.mu.Unlock()
	broken := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage:      func(m rueidis.PubSubMessage) { sh.b.deliver(m.Message) },
		OnSubscription: func(s rueidis.PubSubSubscription) { sh.confirmed(gen, s) },
	})
	sh.mu.Lock()
	sh.connected = true
	sh.mu.Unlock()
	for {
		sent, err := sh.flush(ctx, dc)
		if err != nil {
			return err
		}
		if sent {
			*backoff = minBackoff
		}
		select {
		case <-sh.kick:
			sh.mu.Lock()
			moved := sh.moved
			sh.moved = false
			sh.mu.Unlock()
			if moved {
				sh.b.refreshSlots(ctx)
				sh.b.reroute(sh)
			}
		case err := <-broken:
			if err == nil {
				err = errLinkBroken
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flush sends the subscriptions and unsubscriptions asked for since the
// last flush, and reports whether it sent any.
func (sh *shard) flush(ctx context.Context, dc rueidis.DedicatedClient) (bool, error) {
	var subs, unsubs []string
	sh.mu.Lock()
	for name := range sh.dirty {
		st := sh.names[name]
		if st == nil {
			continue
		}
		switch {
		case st.s != nil && !st.sent:
			subs = append(subs, name)
			st.sent = true
			st.awaiting++
		case st.s == nil && st.sent:
			unsubs = append(unsubs, name)
			st.sent = false
			st.awaiting++
		}
		if st.s != nil {
			st.release() // wanted again: nobody waits for it to go
		} else if !st.sent && st.awaiting == 0 {
			st.release()
			delete(sh.names, name)
		}
	}
	clear(sh.dirty)
	sh.mu.Unlock()
	cmds := append(sh.b.commands(dc, unsubs, false), sh.b.commands(dc, subs, true)...)
	if len(cmds) == 0 {
		return false, nil
	}
	for _, r := range dc.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// commands returns the commands that subscribe (or unsubscribe) names, at
// most batchMax channels each; on Redis Cluster a command holds channels
// of one slot only.
func (b *Broker) commands(c rueidis.CoreClient, names []string, subscribe bool) []rueidis.Completed {
	groups := [][]string{names}
	if b.cluster {
		bySlot := map[uint16][]string{}
		for _, name := range names {
			slot := b.slotOf(name)
			bySlot[slot] = append(bySlot[slot], name)
		}
		groups = slices.Collect(maps.Values(bySlot))
	}
	var cmds []rueidis.Completed
	for _, g := range groups {
		for len(g) > 0 {
			n := min(len(g), batchMax)
			cmds = append(cmds, b.command(c, g[:n], subscribe))
			g = g[n:]
		}
	}
	return cmds
}

func (b *Broker) command(c rueidis.CoreClient, names []string, subscribe bool) rueidis.Completed {
	switch {
	case b.sharded && subscribe:
		return c.B().Ssubscribe().Channel(names...).Build()
	case b.sharded:
		return c.B().Sunsubscribe().Channel(names...).Build()
	case subscribe:
		return c.B().Subscribe().Channel(names...).Build()
	}
	return c.B().Unsubscribe().Channel(names...).Build()
}

// confirmed takes Redis's confirmation of one channel of a command sent
// on the connection gen. Confirmations come in the order of the commands,
// so once a channel has none left to come, the last command sent for it
// is in effect.
func (sh *shard) confirmed(gen uint64, ps rueidis.PubSubSubscription) {
	var subscribed bool
	switch ps.Kind {
	case "subscribe", "ssubscribe":
		subscribed = true
	case "unsubscribe", "sunsubscribe":
	default:
		return
	}
	var up, dropped *subscription
	sh.mu.Lock()
	st := sh.names[ps.Channel]
	switch {
	case gen != sh.gen || st == nil:
	case st.awaiting > 0:
		st.awaiting--
		if st.awaiting > 0 {
			break
		}
		if st.sent {
			up = st.s
		} else {
			st.release()
			if st.s == nil {
				delete(sh.names, ps.Channel)
			}
		}
	case !subscribed && st.sent:
		// Redis ended a subscription by itself (its slot moved to
		// another node): take it up again, where it now belongs.
		st.sent = false
		if dropped = st.s; dropped != nil {
			sh.dirty[ps.Channel] = struct{}{}
			sh.moved = sh.b.cluster
			sh.wake()
		}
	}
	sh.mu.Unlock()
	if up != nil {
		sh.b.upAgain(up)
	}
	if dropped != nil && markLost(dropped, errDropped) {
		sh.b.log.Warn("redis broker: subscription lost", "topic", dropped.name, "err", errDropped)
	}
}

// broken records that the connection is gone with every subscription it
// held.
func (sh *shard) broken(err error) {
	var lost []*subscription
	sh.mu.Lock()
	sh.connected = false
	sh.gen++
	for name, st := range sh.names {
		st.release()
		st.sent, st.awaiting = false, 0
		if st.s == nil {
			delete(sh.names, name)
			continue
		}
		lost = append(lost, st.s)
		sh.dirty[name] = struct{}{}
	}
	sh.mu.Unlock()
	n := 0
	for _, s := range lost {
		if markLost(s, err) {
			n++
		}
	}
	if n > 0 {
		sh.b.log.Warn("redis broker: subscriptions lost", "count", n, "err", err)
	}
}

// upAgain records that s is in force, and reports a gap if it was lost.
// It logs at debug level: thousands of topics come back at once.
func (b *Broker) upAgain(s *subscription) {
	gap, lost := markInForce(s)
	if !gap {
		return
	}
	b.stats.reconnects.Add(1)
	b.log.Debug("redis broker: subscription back; messages may have been missed", "topic", s.name, "lost", lost)
	if b.opts.OnGap != nil {
		b.opts.OnGap(s.topic, lost)
	}
}

// slotRange is a range of hash slots and the node that owns them.
type slotRange struct {
	first, last uint16
	addr        string
}

// slotOf returns the hash slot of the channel name.
func (b *Broker) slotOf(name string) uint16 {
	cmd := b.client.B().Spublish().Channel(name).Message("").Build()
	return cmd.Slot()
}

// owner returns the address of the node that owns slot, b.mu held ("" if
// none is known).
func (b *Broker) owner(slot uint16) string {
	i := sort.Search(len(b.slots), func(i int) bool { return b.slots[i].last >= slot })
	if i < len(b.slots) && b.slots[i].first <= slot {
		return b.slots[i].addr
	}
	return ""
}

// refreshSlots reads which node owns which slots (CLUSTER SLOTS); on
// failure it keeps what it knew.
func (b *Broker) refreshSlots(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ranges, err := b.client.Do(ctx, b.client.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		b.log.Debug("redis broker: cluster slots", "err", err)
		return
	}
	var slots []slotRange
	for _, r := range ranges {
		v, err := r.ToArray()
		if err != nil || len(v) < 3 {
			continue
		}
		first, err1 := v[0].AsInt64()
		last, err2 := v[1].AsInt64()
		node, err3 := v[2].ToArray()
		if err1 != nil || err2 != nil || err3 != nil || len(node) < 2 {
			continue
		}
		host, err1 := node[0].ToString()
		port, err2 := node[1].AsInt64()
		if err1 != nil || err2 != nil {
			continue
		}
		slots = append(slots, slotRange{uint16(first), uint16(last), net.JoinHostPort(host, strconv.FormatInt(port, 10))})
	}
	slices.SortFunc(slots, func(a, b slotRange) int { return int(a.first) - int(b.first) })
	b.mu.Lock()
	b.slots = slots
	b.mu.Unlock()
}

// reroute hands the channels of sh that belong to another node now to
// that node's shard; each is lost until it is back there.
func (b *Broker) reroute(sh *shard) {
	b.mu.Lock()
	if b.runCtx.Err() != nil {
		b.mu.Unlock()
		return
	}
	var moved []*subscription
	sh.mu.Lock()
	for name, st := range sh.names {
		if st.s == nil || b.route(name) == sh {
			continue
		}
		moved = append(moved, st.s)
		st.s = nil
		if st.sent || st.awaiting > 0 {
			sh.dirty[name] = struct{}{} // unsubscribed here
		} else {
			st.release()
			delete(sh.names, name)
		}
	}
	sh.mu.Unlock()
	var now []*subscription
	for _, s := range moved {
		markLost(s, errMoved)
		s.shard = b.route(s.name)
		if s.shard.want(s) {
			now = append(now, s)
		}
	}
	b.mu.Unlock()
	if len(moved) > 0 {
		b.log.Info("redis broker: subscriptions moved to another node", "count", len(moved), "from", sh.addr)
		sh.wake()
	}
	for _, s := range now {
		b.upAgain(s)
	}
}
