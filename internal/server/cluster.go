package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/xid"

	"github.com/heraldpush/herald/internal/broker"
	redisbroker "github.com/heraldpush/herald/internal/broker/redis"
	"github.com/heraldpush/herald/internal/cluster"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/rediskey"
	"github.com/heraldpush/herald/internal/session"
	"github.com/heraldpush/herald/internal/store"
	redisstore "github.com/heraldpush/herald/internal/store/redis"
)

// clusterNode is what a node of a cluster holds beyond a server alone:
// the link to the Redis every node shares, the broker and the store over
// it, presence across nodes, and the topics this node receives.
//
// How a stored message travels: the node that accepts it stores it with
// a script that also publishes it (AppendLive, PushLive), so that Redis
// hands out offsets and publications in one order; every node with an
// interest receives it, positioned, and its lane delivers it in offset
// order (arrive). The node that stored it does not deliver it until it
// comes back from Redis, like any other node.
type clusterNode struct {
	client   rueidis.Client
	broker   *redisbroker.Broker
	store    *redisstore.Store
	presence *cluster.Registry
	interest *interest
}

// subscribeTimeout bounds the wait for Redis to confirm a subscription a
// client's connect or subscribe needs.
const subscribeTimeout = 5 * time.Second

// redactURL is the Redis URL without its password, for logs and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// redisAdvice says what to change when Redis at opt would not do.
func redisAdvice(opt rueidis.ClientOption, err error) string {
	var op *net.OpError
	switch {
	case len(opt.InitAddress) > 1 && strings.Contains(err.Error(), "cluster support disabled"):
		return "addr= names more nodes of a Redis Cluster: leave it out for a single Redis"
	case opt.TLSConfig != nil && errors.Is(err, context.DeadlineExceeded):
		return "rediss:// needs a Redis that speaks TLS; use redis:// for one that does not"
	case errors.As(err, &op) && op.Op == "dial":
		return "start Redis, or point --redis (or HERALD_REDIS) at it"
	}
	return "check the host, port, database number and password of --redis (or HERALD_REDIS)"
}

// startCluster connects to Redis and starts the broker, which hands what
// this node receives to deliverLocal, and opens the store over the same
// link. ctx is the server's run context.
func (s *Server) startCluster(ctx context.Context) error {
	opt, err := rueidis.ParseURL(s.cfg.Redis)
	if err != nil {
		return fmt.Errorf("--redis: %w", err)
	}
	if s.cfg.RedisTLSCA != "" {
		pem, err := os.ReadFile(s.cfg.RedisTLSCA)
		if err != nil {
			return fmt.Errorf("--redis-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--redis-tls-ca %s: no PEM certificate in it", s.cfg.RedisTLSCA)
		}
		opt.TLSConfig.RootCAs = pool
	}
	opt.DisableCache = true
	// A command fails as soon as the link does: rueidis would otherwise
	// retry a read until its context ends, and an API call waiting on
	// it would hang rather than answer 503.
	opt.DisableRetry = true
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return fmt.Errorf("--redis %s (%s): cannot use Redis: %w; %s", redactURL(s.cfg.Redis), strings.Join(opt.InitAddress, ", "), err, redisAdvice(opt, err))
	}
	// The node's id is new at each start, so that the entries a killed
	// node left in Redis are never taken for the restarted one's.
	s.nodeID += "-" + xid.New().String()
	c := &clusterNode{client: client}
	c.broker = redisbroker.New(client, redisbroker.Options{Prefix: s.cfg.RedisPrefix, OnGap: s.onGap, Logger: s.log})
	if err := c.broker.Start(ctx, s.deliverLocal); err != nil {
		client.Close()
		return fmt.Errorf("--redis %s: %w", redactURL(s.cfg.Redis), err)
	}
	c.store = redisstore.New(client, redisstore.Options{Prefix: s.cfg.RedisPrefix, Publish: c.broker.PublishCommand()})
	c.presence = cluster.New(client, cluster.Options{Prefix: s.cfg.RedisPrefix, Node: s.nodeID, TTL: s.cfg.NodeTimeout, Logger: s.log})
	if err := c.presence.Start(ctx, func() cluster.Stats { return cluster.Stats(s.hub.Stats()) }); err != nil {
		c.broker.Close()
		client.Close()
		return fmt.Errorf("--redis %s: register this node: %w", redactURL(s.cfg.Redis), err)
	}
	// Client ids are unique across the cluster: each start of a node
	// takes a number of its own, the high bits of its ids.
	start, err := client.Do(ctx, client.B().Incr().Key(rediskey.Nodes(s.cfg.RedisPrefix)+":starts").Build()).AsInt64()
	if err != nil {
		c.presence.Close()
		c.broker.Close()
		client.Close()
		return fmt.Errorf("--redis %s: register this node: %w", redactURL(s.cfg.Redis), err)
	}
	s.mgr.SetIDBase(uint64(start%(1<<23)+1) << 40)
	c.interest = newInterest(c.broker)
	if h := s.presenceHook; h != nil {
		h.elsewhere = c.presence.Elsewhere
	}
	s.cluster, s.broker = c, c.broker
	return nil
}

// close lets go of Redis once the node has stopped: its presence
// first, so that the other nodes stop counting its connections at once.
func (c *clusterNode) close() error {
	err := c.presence.Close()
	if cerr := c.broker.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	c.client.Close()
	return err
}

// unavailable is the error of an operation this node could not carry out
// because it lost Redis.
func unavailable(what string) *protocol.Error {
	return protocol.Errorf(protocol.CodeUnavailable, "%s: this node has lost its link to Redis; retry later", what)
}

// want makes this node receive t before a connection is registered for it
// (a user's direct messages) or subscribed to it (a channel's messages),
// until the matching unwant. A channel with history, or a user's inbox,
// also keeps its lane while wanted: its position is the last message this
// node received of it. Nothing to do on a server alone.
func (s *Server) want(t broker.Topic, what string) *protocol.Error {
	if s.cluster == nil {
		return nil
	}
	if l := s.laneOf(t); l != nil {
		l.acquire(t.Name)
	}
	ctx, cancel := context.WithTimeout(s.runCtx, subscribeTimeout)
	defer cancel()
	if err := s.cluster.interest.acquire(ctx, t); err != nil {
		if l := s.laneOf(t); l != nil {
			l.releaseName(t.Name)
		}
		s.failures.log(s.log, slog.LevelWarn, "subscribe in redis", "topic", t.Name, "err", err)
		return unavailable(what)
	}
	return nil
}

// unwant ends what want began.
func (s *Server) unwant(t broker.Topic) {
	if s.cluster == nil {
		return
	}
	if l := s.laneOf(t); l != nil {
		l.releaseName(t.Name)
	}
	s.cluster.interest.release(t)
}

// laneOf returns the lanes that order t's stored messages, nil when t has
// none: a channel without history, or users when inboxes are off.
func (s *Server) laneOf(t broker.Topic) *lanes {
	switch t.Kind {
	case broker.TopicChannel:
		if size, _ := s.policy.rule(t.Name).History(); size > 0 {
			return s.chanLanes
		}
	case broker.TopicUser:
		if s.cfg.InboxTTL > 0 {
			return s.userLanes
		}
	}
	return nil
}

// arrive delivers a stored message that came from Redis, in order: its
// lane delivers the next offset at once, skips one delivered already, and
// holds one that comes early until the ones before it are fetched from
// the store (a message lost while the link to Redis was down).
func (s *Server) arrive(m *protocol.Message) {
	ls, name, pos, epoch := s.chanLanes, m.Channel, m.Offset, m.Epoch
	if m.Kind == protocol.KindDirect {
		ls, name, pos, epoch = s.userLanes, m.To, m.Seq, ""
	}
	l := ls.peek(name)
	if l == nil {
		// Not wanted here (any more): no connection of this node waits.
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded {
		// The first connection that wants it is reading the position from
		// the store, which has this message: it is delivered from there.
		return
	}
	from, to, gap := l.arrived(m, pos, epoch, s.deliverInOrder)
	if !gap {
		return
	}
	s.counters.gaps.Add(1)
	if m.Kind == protocol.KindDirect {
		// Inboxes are not read by range: the user's devices reconnect and
		// are sent what they have not acknowledged, the missed messages
		// among them.
		s.log.Warn("direct messages missed from redis; the user's devices reconnect for them", "user", name, "from", from, "to", to)
		l.giveUp(s.deliverInOrder)
		s.reconnectDevices(name)
		return
	}
	s.log.Warn("channel messages missed from redis; reading them from the store", "channel", name, "from", from, "to", to)
	s.startFill(name, l)
}

// registerClustered registers a connection without a device on a node of
// a cluster: under its user's lane, which it loads first, so that the
// lane delivers the user's stored messages from now on.
func (s *Server) registerClustered(ctx context.Context, sess *session.Session, reply func(*protocol.InboxState)) *protocol.Error {
	user := sess.User()
	l := s.userLanes.acquire(user)
	defer s.userLanes.release(user, l)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.loadLocked(func() (uint64, string, error) {
		seq, err := s.store.Head(ctx, user)
		return seq, "", err
	}); err != nil {
		s.log.Error("read inbox position", "user", user, "err", err)
		return unavailable("the connection could not be registered")
	}
	if perr := s.register(sess); perr != nil {
		return perr
	}
	reply(nil)
	return nil
}

// deliverInOrder delivers a message its lane put in order.
func (s *Server) deliverInOrder(m *protocol.Message) { s.deliver(m) }

// fillBatch bounds the messages one read of a fill brings back.
const fillBatch = 1000

// startFill has the missing messages of channel read for its lane l, in
// the background; the fill holds the lane until it is over. l.mu held.
func (s *Server) startFill(channel string, l *lane) {
	if s.chanLanes.acquire(channel) != l {
		// Nobody wants the channel here any more.
		s.chanLanes.releaseName(channel)
		l.giveUp(s.deliverInOrder)
		return
	}
	s.background.Go(func() {
		defer s.chanLanes.releaseName(channel)
		s.fill(channel, l)
	})
}

// fill reads from the store the messages of channel its lane is missing,
// and delivers them and then what waited behind them, retrying while the
// store cannot be read.
func (s *Server) fill(channel string, l *lane) {
	backoff := 50 * time.Millisecond
	for {
		l.mu.Lock()
		from, to, ok := l.hole(s.deliverInOrder)
		l.mu.Unlock()
		if !ok {
			return
		}
		to = min(to, from+fillBatch-1)
		recs, _, err := s.cluster.store.Read(s.runCtx, channel, store.Range{From: from, Limit: int(to - from + 1)})
		if err != nil {
			if s.runCtx.Err() != nil {
				return
			}
			s.log.Warn("read missed channel messages", "channel", channel, "err", err)
			select {
			case <-time.After(backoff):
			case <-s.runCtx.Done():
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		l.mu.Lock()
		for _, r := range recs {
			if r.Offset > to {
				break
			}
			m, err := restore(r)
			if err != nil {
				s.log.Error("read missed channel messages", "channel", channel, "offset", r.Offset, "err", err)
				continue
			}
			m.Offset, m.Epoch = r.Offset, l.epoch
			l.fetched(m, r.Offset)
		}
		// What the store no longer has is gone for good.
		l.skipTo(to+1, s.deliverInOrder)
		l.mu.Unlock()
	}
}

// onGap is told by the broker that a topic's subscription is back after
// the link to Redis broke: what was published meanwhile did not come. A
// channel with history catches up from the store; a user's devices
// reconnect for their inbox; elsewhere the messages are lost, as
// messages without storage are when a connection drops.
func (s *Server) onGap(t broker.Topic, err error) {
	s.counters.gaps.Add(1)
	switch l := s.laneOf(t); {
	case l == s.chanLanes && l != nil:
		s.background.Go(func() { s.catchUp(t.Name) })
	case l == s.userLanes && l != nil:
		s.reconnectDevices(t.Name)
	default:
		name := t.Name
		if name == "" {
			name = "(broadcasts)"
		}
		s.log.Warn("messages may have been lost while the link to redis was down", "topic", name, "err", err)
	}
}

// catchUp delivers the messages of channel stored after the last one its
// lane delivered: those published while this node was not subscribed.
func (s *Server) catchUp(channel string) {
	l := s.chanLanes.peek(channel)
	if l == nil {
		return
	}
	pos, err := s.cluster.store.Top(s.runCtx, channel)
	if err != nil {
		s.log.Warn("catch up channel", "channel", channel, "err", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded && l.expect(pos.Offset, pos.Epoch) {
		s.startFill(channel, l)
	}
}

// reconnectDevices asks the user's connections that named a device to
// reconnect: they missed direct messages, which their inbox gives back.
func (s *Server) reconnectDevices(user string) {
	for _, sub := range s.hub.UserConnections(user) {
		if sess := sub.(*session.Session); sess.Identity().Device != "" {
			sess.Close(protocol.DisconnectMissed)
		}
	}
}

// control carries out an order of the server API sent by another node (or
// this one) to the nodes that hold m.To.
func (s *Server) control(m *protocol.Message) {
	op, arg, _ := strings.Cut(string(m.Data), "\x00")
	switch op {
	case "disconnect":
		d, err := decodeDisconnect(arg)
		if err != nil {
			s.log.Warn("bad control message", "id", m.ID, "err", err)
			return
		}
		s.disconnectLocal(m.To, d)
	case "unsubscribe":
		s.unsubscribeLocal(m.To, arg)
	default:
		s.log.Warn("unknown control message", "id", m.ID, "op", op)
	}
}

// clusterMetrics exports the state of the link to Redis, read at scrape
// time.
func (s *Server) clusterMetrics(reg *prometheus.Registry, gauge func(string, string, func() float64), counter func(string, string, *atomic.Int64)) {
	stats := func() redisbroker.Stats {
		if s.cluster == nil {
			return redisbroker.Stats{}
		}
		return s.cluster.broker.Stats()
	}
	stat := func(name, help string, v func(redisbroker.Stats) float64, kind prometheus.ValueType) {
		opts := prometheus.Opts{Namespace: "herald", Name: name, Help: help}
		f := func() float64 { return v(stats()) }
		if kind == prometheus.CounterValue {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts(opts), f))
		} else {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts), f))
		}
	}
	stat("redis_up", "1 while the link to Redis works: every Redis node answers PING and no subscription is lost.", func(st redisbroker.Stats) float64 {
		if st.Up {
			return 1
		}
		return 0
	}, prometheus.GaugeValue)
	stat("redis_rtt_seconds", "Round trip of the last PING to Redis (of the slowest node of a Redis Cluster).", func(st redisbroker.Stats) float64 { return st.RTT.Seconds() }, prometheus.GaugeValue)
	stat("redis_subscriptions", "Topics this node receives from Redis (channels and users with local connections, and broadcasts).", func(st redisbroker.Stats) float64 { return float64(st.Subscriptions) }, prometheus.GaugeValue)
	stat("redis_subscriptions_lost", "Subscriptions lost with the link to Redis and not yet taken up again.", func(st redisbroker.Stats) float64 { return float64(st.Lost) }, prometheus.GaugeValue)
	stat("redis_reconnects_total", "Subscriptions taken up again after the link to Redis broke.", func(st redisbroker.Stats) float64 { return float64(st.Reconnects) }, prometheus.CounterValue)
	stat("redis_published_total", "Messages published to Redis by the broker (stored messages are published by the store's scripts and count in history_appends_total and inbox_pushes_total).", func(st redisbroker.Stats) float64 { return float64(st.Published) }, prometheus.CounterValue)
	stat("redis_publish_errors_total", "Publications to Redis that failed: the caller got an error.", func(st redisbroker.Stats) float64 { return float64(st.PublishErrors) }, prometheus.CounterValue)
	stat("redis_received_total", "Messages received from Redis.", func(st redisbroker.Stats) float64 { return float64(st.Received) }, prometheus.CounterValue)
	counter("redis_gaps_total", "Times this node found it had missed messages from Redis (the link broke): channels with history catch up from the store, devices reconnect for their inbox.", &s.counters.gaps)
	gauge("cluster_presence_queued", "Presence changes waiting to be written to Redis.", func() float64 {
		if s.cluster == nil {
			return 0
		}
		return float64(s.cluster.presence.Queued())
	})
}

// linkUp reports whether the node works with Redis: every Redis node
// answers and no subscription is lost. Always true for a server alone.
func (s *Server) linkUp() bool {
	return s.cluster == nil || s.cluster.broker.Stats().Up
}
