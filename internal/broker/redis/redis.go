// Package redis is the broker of a cluster of nodes over Redis pub/sub.
//
// Each channel and each user is a pub/sub channel of its own, named with
// the channel's (or user's) hash tag (internal/rediskey), and a node
// subscribes only to the topics its connections need, plus the one
// broadcast channel. Where Redis speaks sharded pub/sub (7.0 and later),
// the broker uses SPUBLISH and SSUBSCRIBE: on Redis Cluster a message then
// stays on the shard that owns its slot instead of being copied to every
// node of the cluster. A message is encoded once, in a compact binary form
// (codec.go), and crosses Redis as one publication.
//
// The client is rueidis (github.com/redis/rueidis) rather than go-redis:
// it pipelines concurrent commands on one connection by itself
// (auto-pipelining), so that many goroutines publishing at once cost few
// system calls and no pool of connections. On a single Redis the
// subscriptions share two dedicated pub/sub connections, each kept by one
// goroutine that batches many channels per SUBSCRIBE (pubsub.go), so that
// a topic costs no goroutine; on Redis Cluster, where a channel lives on
// the shard of its slot, each topic is one Receive, routed per hash slot.
// Either way Redis's confirmation of each channel says when it is in
// force, which is what the broker needs to know a subscription lost with
// the link is back.
//
// When the link to Redis breaks, every subscription is taken up again with
// backoff and jitter; once one is back, Options.OnGap tells the node that
// the topic's messages published meanwhile were lost, so that its clients
// recover from history.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/broker"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/rediskey"
)

// Sentinel errors.
var (
	// ErrNotRunning is returned before Start and after Close.
	ErrNotRunning = errors.New("redis broker is not running")
	// errWithdrawn: Unsubscribe came before the subscription was in
	// force.
	errWithdrawn = errors.New("redis broker: unsubscribed before the subscription was in force")
	// errDropped: Redis ended a subscription the broker still wants (a
	// slot moved to another shard, say).
	errDropped = errors.New("subscription dropped by redis")
)

// Backoff between attempts to take a lost subscription up again: it
// doubles from minBackoff up to maxBackoff, each wait drawn at random
// between half of it and all of it, so that nodes do not retry in step.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Options configures a Broker.
type Options struct {
	// Prefix starts every pub/sub channel name ("": rediskey.DefaultPrefix).
	Prefix string
	// Classic uses PUBLISH and SUBSCRIBE even where Redis has sharded
	// pub/sub.
	Classic bool
	// OnGap is called, on a goroutine of the broker, when the subscription
	// to t is back after it was lost (err says why): messages of t
	// published in between did not reach this node. It must not block.
	OnGap func(t broker.Topic, err error)
	// Logger receives the losses and recoveries of the link; nil
	// discards them.
	Logger *slog.Logger
}

// Broker is the Redis broker. Its methods are safe for concurrent use.
type Broker struct {
	client rueidis.Client
	opts   Options
	log    *slog.Logger

	h       atomic.Pointer[broker.Handler]
	sharded bool

	// mu guards the maps and runCtx; it is never held during I/O.
	mu     sync.Mutex
	runCtx context.Context
	stop   context.CancelFunc
	subs   map[string]*subscription
	ending map[string]chan struct{} // names being unsubscribed
	wg     sync.WaitGroup

	stats counters // stats.go

	// shards are the shared pub/sub connections (pubsub.go); nil on
	// Redis Cluster, where each subscription runs on its own.
	shards []*shard
}

var _ broker.Broker = (*Broker)(nil)

// subscription is one topic this node receives, kept up by a shard of
// shared connections (pubsub.go) or, on Redis Cluster, by its own
// goroutine (run; stop and done are then set).
type subscription struct {
	topic broker.Topic
	name  string
	stop  context.CancelFunc
	done  chan struct{}
	ready chan struct{} // closed once first in force

	mu       sync.Mutex
	inForce  bool
	lost     error // why it was lost, until it is back
	everUp   bool
	wasReset bool // in force since the last backoff
	// withdrawn: unsubscribed before it was first in force (ready is
	// then closed for Subscribe to give up).
	withdrawn bool
}

// New returns a broker over client; call Start before anything else. The
// broker does not close client.
func New(client rueidis.Client, opts Options) *Broker {
	if opts.Prefix == "" {
		opts.Prefix = rediskey.DefaultPrefix
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Broker{client: client, opts: opts, log: log, subs: map[string]*subscription{}, ending: map[string]chan struct{}{}}
}

// Start checks the link, subscribes to broadcasts and installs h. The
// broker's goroutines run until Close or until ctx ends.
func (b *Broker) Start(ctx context.Context, h broker.Handler) error {
	version, err := b.client.Do(ctx, b.client.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return fmt.Errorf("connect to redis: %w", err)
	}
	b.sharded = !b.opts.Classic && majorVersion(version) >= 7
	b.mu.Lock()
	b.runCtx, b.stop = context.WithCancel(context.WithoutCancel(ctx))
	if b.client.Mode() != rueidis.ClientModeCluster {
		b.shards = make([]*shard, pubsubConns)
		for i := range b.shards {
			b.shards[i] = newShard(b)
			b.wg.Add(1)
			go b.shards[i].run(b.runCtx)
		}
	}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() { b.Close() })
	b.h.Store(&h)
	b.startPinger()
	if err := b.subscribe(ctx, broker.Topic{}, rediskey.Broadcast(b.opts.Prefix)); err != nil {
		b.Close()
		return fmt.Errorf("subscribe to broadcasts: %w", err)
	}
	return nil
}

// majorVersion reads redis_version from the server section of INFO.
func majorVersion(info string) int {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			major, _, _ := strings.Cut(v, ".")
			n, _ := strconv.Atoi(major)
			return n
		}
	}
	return 0
}

// PublishCommand is the command this broker publishes with, SPUBLISH or
// PUBLISH, for a store that publishes what it stores (valid after Start).
func (b *Broker) PublishCommand() string {
	if b.sharded {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// name returns the pub/sub channel of t.
func (b *Broker) name(t broker.Topic) (string, error) {
	switch t.Kind {
	case broker.TopicChannel:
		return rediskey.Live(rediskey.Channel(b.opts.Prefix, t.Name)), nil
	case broker.TopicUser:
		return rediskey.Live(rediskey.User(b.opts.Prefix, t.Name)), nil
	}
	return "", fmt.Errorf("redis broker: unknown topic kind %d", t.Kind)
}

// Publish implements broker.Broker: one publication to the message's
// topic, or to the broadcast channel.
func (b *Broker) Publish(ctx context.Context, m *protocol.Message) error {
	if b.h.Load() == nil {
		return ErrNotRunning
	}
	name := rediskey.Broadcast(b.opts.Prefix)
	if t, ok := broker.TopicOf(m); ok {
		var err error
		if name, err = b.name(t); err != nil {
			return err
		}
	} else if m.Kind != protocol.KindBroadcast {
		return fmt.Errorf("redis broker: message %s of unknown kind %q", m.ID, m.Kind)
	}
	payload := rueidis.BinaryString(Encode(m))
	var cmd rueidis.Completed
	if b.sharded {
		cmd = b.client.B().Spublish().Channel(name).Message(payload).Build()
	} else {
		cmd = b.client.B().Publish().Channel(name).Message(payload).Build()
	}
	if err := b.client.Do(ctx, cmd).Error(); err != nil {
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("publish %s to redis: %w", m.ID, err)
	}
	b.stats.published.Add(1)
	return nil
}

// Subscribe implements broker.Broker.
func (b *Broker) Subscribe(ctx context.Context, t broker.Topic) error {
	name, err := b.name(t)
	if err != nil {
		return err
	}
	return b.subscribe(ctx, t, name)
}

func (b *Broker) subscribe(ctx context.Context, t broker.Topic, name string) error {
	if b.shards != nil {
		return b.subscribeShared(ctx, t, name)
	}
	for {
		b.mu.Lock()
		if b.runCtx == nil || b.runCtx.Err() != nil {
			b.mu.Unlock()
			return ErrNotRunning
		}
		ending := b.ending[name]
		s := b.subs[name]
		if ending == nil && s == nil {
			runCtx, stop := context.WithCancel(b.runCtx)
			s = &subscription{topic: t, name: name, stop: stop, done: make(chan struct{}), ready: make(chan struct{})}
			b.subs[name] = s
			b.wg.Add(1)
			go b.run(runCtx, s)
		}
		b.mu.Unlock()
		if ending != nil {
			// Unsubscribing: wait until it is over, then subscribe anew.
			select {
			case <-ending:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-s.ready:
			return nil
		case <-s.done:
			return ErrNotRunning
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Unsubscribe implements broker.Broker.
func (b *Broker) Unsubscribe(ctx context.Context, t broker.Topic) error {
	name, err := b.name(t)
	if err != nil {
		return err
	}
	if b.shards != nil {
		return b.unsubscribeShared(ctx, name)
	}
	b.mu.Lock()
	s := b.subs[name]
	if s == nil {
		b.mu.Unlock()
		return nil
	}
	delete(b.subs, name)
	ended := make(chan struct{})
	b.ending[name] = ended
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.ending, name)
		b.mu.Unlock()
		close(ended)
	}()

	s.stop()
	select {
	case <-s.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	// The subscription's goroutine is gone; the server still holds the
	// subscription on the connection until told otherwise.
	var cmd rueidis.Completed
	if b.sharded {
		cmd = b.client.B().Sunsubscribe().Channel(name).Build()
	} else {
		cmd = b.client.B().Unsubscribe().Channel(name).Build()
	}
	if err := b.client.Do(ctx, cmd).Error(); err != nil && !rueidis.IsRedisNil(err) {
		// A broken link dropped the subscription anyway.
		b.log.Debug("redis broker: unsubscribe", "topic", name, "err", err)
	}
	return nil
}

// run keeps s in force until runCtx ends: each time the subscription is
// lost, it waits a backoff and subscribes again.
func (b *Broker) run(runCtx context.Context, s *subscription) {
	defer b.wg.Done()
	defer close(s.done)
	backoff := minBackoff
	hookCtx := rueidis.WithOnSubscriptionHook(runCtx, func(ps rueidis.PubSubSubscription) {
		if ps.Kind == "subscribe" || ps.Kind == "ssubscribe" {
			b.inForce(s)
		}
	})
	// rueidis takes a subscription lost with its connection up again by
	// itself, within Receive: this hook is how the broker learns of the
	// loss.
	hookCtx = rueidis.WithOnReceiveReturnHook(hookCtx, func(err error, _ rueidis.CommandClient) error {
		if runCtx.Err() == nil {
			b.dropped(s, err)
		}
		return err
	})
	for {
		var cmd rueidis.Completed
		if b.sharded {
			cmd = b.client.B().Ssubscribe().Channel(s.name).Build()
		} else {
			cmd = b.client.B().Subscribe().Channel(s.name).Build()
		}
		err := b.client.Receive(hookCtx, cmd, func(msg rueidis.PubSubMessage) { b.deliver(msg.Message) })
		if runCtx.Err() != nil {
			return
		}
		b.dropped(s, err)
		s.mu.Lock()
		if s.wasReset {
			backoff, s.wasReset = minBackoff, false
		}
		s.mu.Unlock()
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-time.After(wait):
		case <-runCtx.Done():
			return
		}
	}
}

// markInForce records that s is subscribed. The first time, it lets
// Subscribe return; after that, it reports a gap and why s was lost.
func markInForce(s *subscription) (gap bool, lost error) {
	s.mu.Lock()
	if s.withdrawn {
		s.mu.Unlock()
		return false, nil
	}
	first := !s.everUp
	lost = s.lost
	if lost == nil && !first {
		// The client took the subscription up again by itself.
		lost = errDropped
	}
	s.inForce, s.everUp, s.lost, s.wasReset = true, true, nil, true
	s.mu.Unlock()
	if first {
		close(s.ready)
		return false, nil
	}
	return true, lost
}

// markLost records that s is no longer in force, because of err (the
// first cause is kept until s is back), and reports whether it was.
func markLost(s *subscription, err error) bool {
	if err == nil {
		err = errDropped
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.inForce
	s.inForce = false
	if s.lost == nil {
		s.lost = err
	}
	return was
}

// inForce records that s is subscribed, and reports the gap if it was
// lost before.
func (b *Broker) inForce(s *subscription) {
	gap, lost := markInForce(s)
	if !gap {
		return
	}
	b.stats.reconnects.Add(1)
	b.log.Info("redis broker: subscription back; messages may have been missed", "topic", s.name, "lost", lost)
	if b.opts.OnGap != nil {
		b.opts.OnGap(s.topic, lost)
	}
}

// dropped records that s is no longer in force, because of err, and
// logs the loss once.
func (b *Broker) dropped(s *subscription, err error) {
	if markLost(s, err) {
		b.log.Warn("redis broker: subscription lost", "topic", s.name, "err", err)
	}
}

// deliver decodes one publication and hands it to the handler.
func (b *Broker) deliver(payload string) {
	b.stats.received.Add(1)
	h := b.h.Load()
	if h == nil {
		return
	}
	m, err := decode([]byte(payload))
	if err != nil {
		b.log.Warn("redis broker: message dropped", "err", err)
		return
	}
	(*h)(m)
}

// Close stops delivery and every subscription, and waits for the broker's
// goroutines to end. It does not close the client.
func (b *Broker) Close() error {
	b.h.Store(nil)
	b.mu.Lock()
	if b.stop != nil {
		b.stop()
	}
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}
