package session

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/heraldpush/herald/internal/protocol"
)

// Limits bound what one connection may do and how long the server waits for
// it. Every limit has a name in the config and an error code or disconnect
// reason that a client sees when it hits it.
type Limits struct {
	PingInterval     time.Duration // server ping period
	PongTimeout      time.Duration // silence tolerated past a ping period
	HandshakeTimeout time.Duration // time allowed from open to a successful connect
	MaxFrameBytes    int           // largest inbound frame or line
	MaxOutboundBytes int           // bound on bytes queued for one connection
	OpsPerSecond     float64       // sustained operations per connection
	OpsBurst         int           // operations allowed in a burst
	MaxSubscriptions int           // channels per connection
	MaxStrikes       int           // consecutive failed operations before disconnect
	PublishPerSecond float64       // sustained publish, send and broadcast per connection
	PublishBurst     int           // publish, send and broadcast allowed in a burst
}

// Metrics are counters the manager keeps; the server exports them.
type Metrics struct {
	Opened        atomic.Int64 // connections opened
	Closed        atomic.Int64 // connections closed
	SlowConsumers atomic.Int64 // disconnected for falling behind
	FramesIn      atomic.Int64 // inbound frames handled
	Errors        atomic.Int64 // error replies sent
	// Disconnects counts ended connections by the reason they ended.
	Disconnects DisconnectCounts
}

// Manager owns every session of a server: it creates them, runs the writers
// that flush their queues and the sweeper that runs their timers, and closes
// them all on shutdown.
type Manager struct {
	limits  Limits
	node    Node
	log     *slog.Logger
	metrics *Metrics
	flusher *flusher
	ctx     context.Context // ends when Run returns; passed to Node calls
	cancel  context.CancelFunc

	nextID atomic.Uint64
	shards [32]registryShard
	count  atomic.Int64
	byKind [4]atomic.Int64 // open sessions of each of Kinds
	// emptied receives a token when the last open session is removed,
	// for CloseAll to wait on.
	emptied chan struct{}
}

type registryShard struct {
	mu       sync.Mutex
	sessions map[uint64]*Session
}

// NewManager returns a manager; call Run to start its writers.
func NewManager(limits Limits, node Node, log *slog.Logger, writers int) *Manager {
	m := &Manager{
		limits:  limits,
		node:    node,
		log:     log,
		metrics: &Metrics{Disconnects: newDisconnectCounts()},
		flusher: newFlusher(writers),
		emptied: make(chan struct{}, 1),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	for i := range m.shards {
		m.shards[i].sessions = make(map[uint64]*Session)
	}
	return m
}

// Metrics returns the manager's counters.
func (m *Manager) Metrics() *Metrics { return m.metrics }

// Limits returns the limits sessions run under.
func (m *Manager) Limits() Limits { return m.limits }

// Open creates the session for a new connection.
func (m *Manager) Open(t Transport) *Session {
	now := time.Now().UnixNano()
	s := &Session{
		id:     m.nextID.Add(1),
		t:      t,
		wire:   t.Wire(),
		kind:   kindOf(t),
		mgr:    m,
		opened: now,
	}
	s.lastSeen.Store(now)
	// Counted before it can be found and removed, so that the count
	// never passes zero on its way down while sessions remain.
	m.count.Add(1)
	m.byKind[kindIndex(s.kind)].Add(1)
	sh := &m.shards[s.id%uint64(len(m.shards))]
	sh.mu.Lock()
	sh.sessions[s.id] = s
	sh.mu.Unlock()
	m.metrics.Opened.Add(1)
	return s
}

// remove forgets a closed session, counting it under the reason it ended.
func (m *Manager) remove(s *Session, reason string) {
	sh := &m.shards[s.id%uint64(len(m.shards))]
	sh.mu.Lock()
	if _, ok := sh.sessions[s.id]; ok {
		delete(sh.sessions, s.id)
		m.metrics.Closed.Add(1)
		m.metrics.Disconnects.add(reason)
		m.byKind[kindIndex(s.kind)].Add(-1)
		if m.count.Add(-1) == 0 {
			select {
			case m.emptied <- struct{}{}:
			default: // a token is already waiting
			}
		}
	}
	sh.mu.Unlock()
}

// SetIDBase makes the client ids given from now on count up from base:
// the nodes of a cluster each take a base of their own, so that a client
// id names one connection across the cluster. Call it before the first
// session opens.
func (m *Manager) SetIDBase(base uint64) { m.nextID.Store(base) }

// Lookup returns the open session whose ClientID is id, or nil.
func (m *Manager) Lookup(id string) *Session {
	n, err := strconv.ParseUint(id, 36, 64)
	if err != nil {
		return nil
	}
	sh := &m.shards[n%uint64(len(m.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.sessions[n]
}

// Len returns the number of open sessions, including ones not yet
// authenticated.
func (m *Manager) Len() int { return int(m.count.Load()) }

// each calls fn for every session; fn must not block.
func (m *Manager) each(fn func(*Session)) {
	var batch []*Session
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		batch = batch[:0]
		for _, s := range sh.sessions {
			batch = append(batch, s)
		}
		sh.mu.Unlock()
		for _, s := range batch {
			fn(s)
		}
	}
}

// sweepPeriod is how often session timers are checked; it bounds how late
// a ping or a timeout can be: at most a second, and at most a quarter of
// the pong timeout, so a ping is never so late that a client waiting
// ping_interval + pong_timeout for it gives up.
func (l Limits) sweepPeriod() time.Duration {
	return min(time.Second, l.PongTimeout/4, l.PingInterval/4)
}

// Run starts the writers and the sweeper and blocks until ctx ends. The
// writers keep running until Run returns, so queued frames (such as the
// disconnects of CloseAll) are flushed first.
func (m *Manager) Run(ctx context.Context) error {
	defer m.cancel()
	g, gctx := errgroup.WithContext(ctx)
	m.flusher.start(g)
	g.Go(func() error {
		t := time.NewTicker(m.limits.sweepPeriod())
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				m.flusher.stop()
				return nil
			case now := <-t.C:
				n := now.UnixNano()
				m.each(func(s *Session) { s.tick(n) })
			}
		}
	})
	return g.Wait()
}

// CloseAll disconnects every session with reason d and waits until they are
// gone or ctx ends.
func (m *Manager) CloseAll(ctx context.Context, d protocol.Disconnect) error {
	m.each(func(s *Session) { s.Close(d) })
	// A token may be left from an earlier time the count reached zero, so
	// the count is read again after each.
	for m.Len() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.emptied:
		}
	}
	return nil
}
