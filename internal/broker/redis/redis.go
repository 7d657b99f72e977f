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
// system calls and no pool of connections. The subscriptions share a few
// dedicated pub/sub connections (two on a single Redis, one per node on
// Redis Cluster), each kept by one goroutine that batches many channels
// per SUBSCRIBE (pubsub.go), so that a topic costs no goroutine. Redis's
// confirmation of each channel says when it is in force, which is what the
// broker needs to know a subscription lost with the link is back.
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

	cluster bool // Redis Cluster: a shard per node (pubsub.go)

	// mu guards what follows; it is never held during I/O.
	mu     sync.Mutex
	runCtx context.Context
	stop   context.CancelFunc
	subs   map[string]*subscription
	shards []*shard    // the pub/sub connections (pubsub.go)
	slots  []slotRange // on Redis Cluster, who owns which slots
	wg     sync.WaitGroup

	stats counters // stats.go
}

var _ broker.Broker = (*Broker)(nil)

// subscription is one topic this node receives, kept up by a shard of
// shared connections (pubsub.go).
type subscription struct {
	topic broker.Topic
	name  string
	shard *shard        // the one that holds it (Broker.mu)
	ready chan struct{} // closed once first in force

	mu      sync.Mutex
	inForce bool
	lost    error // why it was lost, until it is back
	everUp  bool
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
	return &Broker{client: client, opts: opts, log: log, subs: map[string]*subscription{}}
}

// Start checks the link, subscribes to broadcasts and installs h. The
// broker's goroutines run until Close or until ctx ends.
func (b *Broker) Start(ctx context.Context, h broker.Handler) error {
	version, err := b.client.Do(ctx, b.client.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return fmt.Errorf("connect to redis: %w", err)
	}
	b.sharded = !b.opts.Classic && majorVersion(version) >= 7
	b.cluster = b.client.Mode() == rueidis.ClientModeCluster
	if b.cluster {
		b.refreshSlots(ctx)
	}
	b.mu.Lock()
	b.runCtx, b.stop = context.WithCancel(context.WithoutCancel(ctx))
	if !b.cluster {
		for range pubsubConns {
			sh := newShard(b, "")
			b.shards = append(b.shards, sh)
			b.wg.Add(1)
			go sh.run(b.runCtx)
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

// Unsubscribe implements broker.Broker.
func (b *Broker) Unsubscribe(ctx context.Context, t broker.Topic) error {
	name, err := b.name(t)
	if err != nil {
		return err
	}
	return b.unsubscribe(ctx, name)
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
		// Back with no loss recorded: report the gap all the same.
		lost = errDropped
	}
	s.inForce, s.everUp, s.lost = true, true, nil
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
