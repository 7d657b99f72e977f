package redis

import (
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/broker"
)

// On a single Redis (or one behind Sentinel), the broker's subscriptions
// share a few dedicated pub/sub connections instead of costing a goroutine
// and a blocked Receive each: a node with 10,000 topics would otherwise
// hold 10,000 goroutines and their stacks. Each topic belongs to one of
// pubsubConns connections, by the hash of its name, and one goroutine per
// connection (shard.run) keeps it: it sends the subscriptions and
// unsubscriptions asked for since its last round in batches of at most
// batchMax channels per command, and when the connection breaks it
// reconnects with backoff and jitter and subscribes everything again.
// Redis confirms each channel of a command in order, on the connection;
// those confirmations, seen by the connection's hook, are what puts a
// subscription in force.
//
// Two connections rather than one so that decoding the publications of a
// busy node uses two cores; more would cost each its rueidis buffers.
//
// On Redis Cluster each sharded channel lives on the node that owns its
// slot, and a rueidis dedicated connection is bound to one slot: there the
// broker keeps one Receive per topic (Broker.run).
const (
	pubsubConns = 2
	batchMax    = 500
)

// errLinkBroken: a pub/sub connection ended with no error given.
var errLinkBroken = errors.New("redis pub/sub connection closed")

// shard is one dedicated pub/sub connection and the topics it carries.
type shard struct {
	b    *Broker
	kick chan struct{} // a change waits to be sent

	// mu guards what follows; it is taken after Broker.mu and before
	// subscription.mu, and never held during I/O.
	mu        sync.Mutex
	names     map[string]*chanState
	dirty     map[string]struct{} // names whose wanted state changed
	connected bool                // hooks are set on a connection
	gen       uint64              // counts connections, to ignore a stale hook
}

// chanState is one pub/sub channel of a shard, as the current connection
// has it.
type chanState struct {
	s        *subscription // who wants it; nil once unsubscribed
	sent     bool          // the last command sent for it subscribes
	awaiting int           // commands sent for it not yet confirmed
	waiters  []chan struct{}
}

func newShard(b *Broker) *shard {
	return &shard{b: b, kick: make(chan struct{}, 1), names: map[string]*chanState{}, dirty: map[string]struct{}{}}
}

// shardOf returns the shard of the channel name.
func (b *Broker) shardOf(name string) *shard {
	h := fnv.New32a()
	h.Write([]byte(name))
	return b.shards[h.Sum32()%uint32(len(b.shards))]
}

// subscribeShared subscribes name on its shard and waits until Redis
// confirmed it.
func (b *Broker) subscribeShared(ctx context.Context, t broker.Topic, name string) error {
	b.mu.Lock()
	if b.runCtx == nil || b.runCtx.Err() != nil {
		b.mu.Unlock()
		return ErrNotRunning
	}
	stopped := b.runCtx.Done()
	s := b.subs[name]
	if s == nil {
		s = &subscription{topic: t, name: name, ready: make(chan struct{})}
		b.subs[name] = s
		b.shardOf(name).want(s)
	}
	b.mu.Unlock()
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

// unsubscribeShared unsubscribes name and waits until Redis confirmed it,
// so that nothing published afterwards arrives.
func (b *Broker) unsubscribeShared(ctx context.Context, name string) error {
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
	gone := b.shardOf(name).unwant(name)
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
// s is in force at once.
func (sh *shard) want(s *subscription) {
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
	if now {
		markInForce(s) // first time in force: no gap
		return
	}
	sh.wake()
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
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// session takes a dedicated connection, subscribes what is wanted and
// follows the changes until the connection breaks or ctx ends. The
// backoff starts again once Redis answered.
func (sh *shard) session(ctx context.Context, backoff *time.Duration) error {
	dc, release := sh.b.client.Dedicate()
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
	for len(subs) > 0 || len(unsubs) > 0 {
		var cmd rueidis.Completed
		if len(unsubs) > 0 {
			n := min(len(unsubs), batchMax)
			cmd = sh.b.unsubscribeCmd(dc, unsubs[:n])
			unsubs = unsubs[n:]
		} else {
			n := min(len(subs), batchMax)
			cmd = sh.b.subscribeCmd(dc, subs[:n])
			subs = subs[n:]
		}
		if err := dc.Do(ctx, cmd).Error(); err != nil {
			return false, err
		}
	}
	return true, nil
}

func (b *Broker) subscribeCmd(c rueidis.CoreClient, names []string) rueidis.Completed {
	if b.sharded {
		return c.B().Ssubscribe().Channel(names...).Build()
	}
	return c.B().Subscribe().Channel(names...).Build()
}

func (b *Broker) unsubscribeCmd(c rueidis.CoreClient, names []string) rueidis.Completed {
	if b.sharded {
		return c.B().Sunsubscribe().Channel(names...).Build()
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
		// Redis ended a subscription by itself: take it up again.
		st.sent = false
		if dropped = st.s; dropped != nil {
			sh.dirty[ps.Channel] = struct{}{}
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
