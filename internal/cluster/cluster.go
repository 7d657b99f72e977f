// Package cluster keeps the presence and the totals of a cluster of nodes
// in one Redis: which users are connected, and how many times, across
// every node; who is in a channel; and the sum of every node's stats.
//
// # Layout
//
// Under the user's and the channel's hash tags (internal/rediskey), so
// that on Redis Cluster every command touches one slot:
//
//	prefix:{u:USER}:pres     hash: NODE -> "GEN COUNT AT INFO"
//	                         (connections on NODE, Unix ms of the last connect there, its info)
//	prefix:{c:CHANNEL}:pres  hash: NODE "\x00" USER -> "GEN COUNT"
//	                         (USER's connections on NODE subscribed to CHANNEL)
//
// and, in a slot of their own (rediskey.Nodes):
//
//	prefix:{n}:live   sorted set: NODE scored by its last heartbeat (Redis's clock, ms)
//	prefix:{n}:info   hash: NODE -> "GEN STATS" (the generation in force, the node's last totals as JSON)
//
// A node is live while its last heartbeat is less than Options.TTL old.
// Readers count only the entries of live nodes that carry the node's
// generation in force; the rest is ignored, and deleted on the way where
// it is surely stale (see below). A node killed without Close drops out
// of every read once TTL has passed, with no one cleaning up for it.
//
// # Writes
//
// Connected, Disconnected, Joined and Left update a copy of the node's
// presence kept by the Registry and queue the new count of the one entry
// they change. They never wait for Redis: one writer goroutine takes
// everything queued, keeps the last value of each entry, and writes the
// lot with one pipelined DoMulti. Each queued write carries a count, not a
// difference, so a write applied twice is harmless. With idle
// connections, a node sends one command per heartbeat (every TTL/3).
//
// # Resync
//
// The node's entries in Redis can fall behind its own copy: the queue
// overflowed, a write failed, Redis restarted without its data, or the
// node was too slow to heartbeat and readers deleted its entries. Then
// the node resyncs: under the lock of its copy it takes a snapshot, drops
// the queue (every queued write is in the snapshot) and counts the
// generation up; it writes the whole snapshot with the new generation,
// then the heartbeat that puts the new generation in force. Writes queued
// after the snapshot follow, in order, with the new generation.
//
// The generation is what makes stale entries harmless without a list of
// them: a user who disconnected while the writes failed keeps an entry
// with the old generation, which readers ignore from the moment the new
// generation is in force, and delete. Until then they go on reading the
// old generation, so a resync never shows a half-written state. A reader
// deletes an entry only when it is sure it is stale, with a
// compare-and-delete (the entry must be unchanged): a generation older
// than the one in force, or not newer than that of a dead node's record.
// A node that resyncs after it was counted dead writes a newer generation,
// which no reader deletes.
//
// The heartbeat checks that the node is on record, live, with the
// generation it believes in force; if not, it is refused and the node
// resyncs at once. That is how a node learns that Redis lost its data.
//
// # Limits
//
// Stats sums what each node reports: a user connected to two nodes counts
// twice in Users, and a channel with subscribers on two nodes twice in
// Channels. Entries left by a node that died are deleted only when a
// reader comes across them, within an hour of its death (the record
// that tells readers they may is then forgotten); after that they are
// ignored for good but stay in Redis.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/rediskey"
)

// Defaults and bounds.
const (
	// DefaultTTL is how long a node may stay silent before it counts as
	// dead.
	DefaultTTL = 30 * time.Second
	// defaultQueueLimit bounds the writes waiting for the writer; beyond
	// it they are dropped and the node resyncs.
	defaultQueueLimit = 100_000
	// batchSize bounds the commands of one DoMulti.
	batchSize = 1000
	// closeTimeout bounds the clean-up of Close.
	closeTimeout = time.Second
	// forgetAfter is how long the record of a dead node is kept, so that
	// readers know its leftover entries may be deleted.
	forgetAfter = time.Hour
)

// Options configures a Registry.
type Options struct {
	// Prefix starts every key ("": rediskey.DefaultPrefix).
	Prefix string
	// Node names this node. It must be unique per process start (a node
	// that restarts is a new node) and hold no NUL byte.
	Node string
	// TTL is how long a node may stay silent before it counts as dead
	// (0: DefaultTTL). Every node of a cluster should use the same TTL.
	// A node heartbeats every TTL/3.
	TTL time.Duration
	// Logger receives resyncs and failures; nil discards them.
	Logger *slog.Logger
}

// Stats are one node's totals, as GET /v1/stats gives them (hub.Stats).
type Stats struct {
	Connections int `json:"connections"`
	Users       int `json:"users"`
	Channels    int `json:"channels"`
}

// Totals are the sums of the Stats of every live node. A user connected
// to two nodes counts twice in Users, a channel with subscribers on two
// nodes twice in Channels.
type Totals struct {
	Stats
	// Nodes is how many nodes are live.
	Nodes int `json:"nodes"`
}

// Node is a live node.
type Node struct {
	ID        string    `json:"id"`
	Heartbeat time.Time `json:"heartbeat"`
	Stats     Stats     `json:"stats"`
}

// Member is a user subscribed to a channel.
type Member struct {
	User string `json:"user"`
	// Connections is how many of the user's connections, summed over the
	// nodes, are subscribed to the channel.
	Connections int `json:"connections"`
	// Info is the info of the user's latest connection, on any node.
	Info json.RawMessage `json:"info,omitempty"`
}

// Registry is one node's view of the cluster's presence. Its methods are
// safe for concurrent use.
type Registry struct {
	client rueidis.Client
	prefix string
	node   string
	ttl    time.Duration
	log    *slog.Logger
	nodes  [2]string // the sorted set of heartbeats, the hash of records

	// Tests shorten these before Start.
	beatEvery  time.Duration
	queueLimit int

	// stats gives the totals each heartbeat reports; set by Start.
	stats func() Stats
	// gen is the generation of the entries being written; only the
	// writer touches it once Start has returned.
	gen uint64

	mu       sync.Mutex
	users    map[string]*userState
	channels map[string]map[string]int // channel -> user -> connections
	pending  []write
	resync   error // why the next heartbeat must resync; nil: it need not
	started  bool
	closed   bool
	wake     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
}

// userState is a user's presence on this node.
type userState struct {
	count int
	at    int64 // Unix ms of the latest connect
	info  json.RawMessage
}

// write is the new state of one entry: a user's (channel "") or a
// channel member's. A count of 0 deletes the entry.
type write struct {
	channel, user string
	count         int
	at            int64
	info          json.RawMessage
}

// New returns a registry of opts.Node over client. It does nothing with
// Redis before Start, and does not close client.
func New(client rueidis.Client, opts Options) *Registry {
	if opts.Prefix == "" {
		opts.Prefix = rediskey.DefaultPrefix
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	base := rediskey.Nodes(opts.Prefix)
	return &Registry{
		client:     client,
		prefix:     opts.Prefix,
		node:       opts.Node,
		ttl:        opts.TTL,
		log:        opts.Logger,
		nodes:      [2]string{base + ":live", base + ":info"},
		beatEvery:  opts.TTL / 3,
		queueLimit: defaultQueueLimit,
		users:      make(map[string]*userState),
		channels:   make(map[string]map[string]int),
		wake:       make(chan struct{}, 1),
	}
}

// Start writes the node's whole presence (whatever Connected and Joined
// recorded so far) with its first heartbeat, then heartbeats and writes
// changes in the background until Close. stats gives the totals each
// heartbeat reports, typically the hub's; nil reports the registry's own
// count of what it was told. Start returns once the first heartbeat is
// written, or with the error that prevented it; it may then be tried
// again.
func (r *Registry) Start(ctx context.Context, stats func() Stats) error {
	if r.node == "" || strings.IndexByte(r.node, 0) >= 0 {
		return fmt.Errorf("%w: %q", ErrInvalidNode, r.node)
	}
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return ErrClosed
	case r.started:
		r.mu.Unlock()
		return ErrStarted
	}
	r.started = true
	r.mu.Unlock()
	if stats == nil {
		stats = r.ownStats
	}
	r.stats = stats
	if err := r.rewrite(ctx); err != nil {
		r.mu.Lock()
		r.started = false
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	wctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(wctx)
	return nil
}

// Close stops the heartbeat and removes the node: it is dead for readers
// at once, and its entries are deleted. The clean-up is best effort,
// bounded by about a second; what it leaves, readers ignore. Later
// changes are ignored.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	started, cancel, done := r.started, r.cancel, r.done
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	if !started {
		return nil
	}
	ctx, stop := context.WithTimeout(context.Background(), closeTimeout)
	defer stop()
	err := leaveScript.Exec(ctx, r.client, r.nodes[:], []string{r.node, ms(r.ttl)}).Error()
	if err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	r.mu.Lock()
	ws := r.snapshot()
	r.mu.Unlock()
	for i := range ws {
		ws[i].count = 0
	}
	if err := r.apply(ctx, ws, 0); err != nil {
		return fmt.Errorf("cluster: delete entries: %w", err)
	}
	return nil
}

// Connected records a new connection of user on this node; info (kept
// as is, not copied) becomes the user's info.
func (r *Registry) Connected(user string, info json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	u := r.users[user]
	if u == nil {
		u = &userState{}
		r.users[user] = u
	}
	u.count++
	u.at = time.Now().UnixMilli()
	u.info = info
	r.queue(write{user: user, count: u.count, at: u.at, info: info})
}

// Disconnected records the end of one of user's connections on this node.
func (r *Registry) Disconnected(user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.users[user]
	if r.closed || u == nil {
		return
	}
	u.count--
	if u.count <= 0 {
		delete(r.users, user)
		u = &userState{}
	}
	r.queue(write{user: user, count: u.count, at: u.at, info: u.info})
}

// Joined records that one connection of user subscribed to channel.
func (r *Registry) Joined(channel, user string) { r.member(channel, user, 1) }

// Left records that one connection of user left channel (by
// unsubscribing or disconnecting).
func (r *Registry) Left(channel, user string) { r.member(channel, user, -1) }

func (r *Registry) member(channel, user string, delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	m := r.channels[channel]
	if m == nil {
		if delta < 0 {
			return
		}
		m = make(map[string]int)
		r.channels[channel] = m
	}
	n := m[user] + delta
	switch {
	case n > 0:
		m[user] = n
	case m[user] == 0:
		return // a Left without a Joined
	default:
		n = 0
		delete(m, user)
		if len(m) == 0 {
			delete(r.channels, channel)
		}
	}
	r.queue(write{channel: channel, user: user, count: n})
}

// queue hands w to the writer; r.mu is held. While a resync is due,
// nothing is queued: the resync writes everything.
func (r *Registry) queue(w write) {
	if r.resync != nil {
		return
	}
	if len(r.pending) >= r.queueLimit {
		r.needResync(errOverflow)
		return
	}
	r.pending = append(r.pending, w)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// needResync drops the queue and has the next heartbeat resync, because
// of why; r.mu is held.
func (r *Registry) needResync(why error) {
	if r.resync == nil {
		r.resync = why
	}
	r.pending = nil
}

// snapshot returns a write of every entry of the node; r.mu is held.
func (r *Registry) snapshot() []write {
	ws := make([]write, 0, len(r.users)+len(r.channels))
	for name, u := range r.users {
		ws = append(ws, write{user: name, count: u.count, at: u.at, info: u.info})
	}
	for ch, m := range r.channels {
		for user, n := range m {
			ws = append(ws, write{channel: ch, user: user, count: n})
		}
	}
	return ws
}

// ownStats counts what the registry was told.
func (r *Registry) ownStats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Stats{Users: len(r.users), Channels: len(r.channels)}
	for _, u := range r.users {
		st.Connections += u.count
	}
	return st
}

// errorf wraps err as the failure of what, keeping context errors as they
// are.
func errorf(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("cluster: %s: %w", what, err)
}
