// Package redis is the store of a cluster of nodes, kept in Redis: every
// node reads and writes the same history, inboxes, receipts and
// idempotency keys, so that a client that reconnects to another node
// recovers exactly what it missed.
//
// # Layout
//
// Each channel's and each user's keys share a hash tag (internal/rediskey),
// so that on Redis Cluster they sit in one slot and one Lua script can
// work on all of them atomically (scripts.go). For a channel, under
// prefix:{c:NAME}:
//
//	:meta   hash: epoch, top (last offset given), base (last offset trimmed)
//	:hist   stream: one entry per record, with ID OFFSET-0, fields t (time), d (data)
//
// For a user, under prefix:{u:NAME}:
//
//	:meta    hash: top (last sequence), base (last dropped), count, bytes (of the kept records),
//	         escalated (the escalation position)
//	:inbox   stream: ID SEQ-0, fields t, d
//	:rcpt    stream: ID SEQ-0, fields t (accepted), i (message id); outlives :inbox
//	:devs    hash: device -> "acked:delivered:seen"
//	:ma:DEV, :md:DEV  sorted sets of acknowledgement and delivery marks
//	:marked  set of the devices with marks
//
// Offsets and sequences are assigned by the script that stores the
// record, so concurrent appends from any number of nodes get distinct
// offsets with no gap. A channel's epoch is drawn by the caller and set by
// the script only if the channel has none, so scripts need no randomness.
//
// Three things live outside one channel's or user's slot, and are written
// after the script, not within it: the index of channels (prefix:channels)
// and of users (prefix:users), sorted sets that Channels and Users page
// through, pruned of names that hold nothing; the message id index
// (prefix:{m:ID}, the user and sequence of a direct message, for
// Receipt), checked against the user's :rcpt stream on every read, so a
// stale entry is harmless; and the idempotency keys (prefix:{k:KEY}) with
// their index by time (prefix:idem). A node that dies between the script
// and the index write leaves a name unlisted until its next write.
//
// # Durability
//
// A nil error means Redis executed the write; what survives a crash of
// Redis depends on its persistence settings, not on this package:
//
//   - appendonly yes, appendfsync always: Redis writes and fsyncs the
//     append-only file before it answers, so every write acknowledged to
//     Herald survives a crash of Redis or of its machine. Each write costs
//     an fsync (Redis groups those of one event-loop turn).
//   - appendonly yes, appendfsync everysec (the usual setting): a crash of
//     the Redis process loses nothing; a crash of the machine loses up to
//     about the last second of acknowledged writes, and with them offsets
//     that will be given again to other messages. Clients that recover
//     compare epochs, but only Reset changes an epoch: such a loss is not
//     detected.
//   - no append-only file (RDB snapshots only, or none): a restart loses
//     everything since the last snapshot.
//
// With replicas, a failover loses what the replica had not received
// unless writes wait for it (WAIT, or WAITAOF from Redis 7.2), which this
// package does not do yet. A reader may see a write a few microseconds
// before Redis fsyncs it, even with appendfsync always.
//
// Append and Push never return an offset with an error: a script either
// ran or did not, and an error reading its answer leaves it unknown.
//
// The client is rueidis, as for the Redis broker (see its package doc):
// its auto-pipelining sends the scripts of many concurrent operations in
// few writes on one connection.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/rediskey"
	"github.com/heraldpush/herald/internal/store"
)

// Options configures a Store.
type Options struct {
	// Prefix starts every key ("": rediskey.DefaultPrefix). Stores with
	// different prefixes share a Redis without seeing each other.
	Prefix string
	// Publish is the command AppendLive and PushLive publish with:
	// "SPUBLISH" where the nodes' broker uses sharded pub/sub, "PUBLISH"
	// where it does not, "" to publish nothing.
	Publish string
}

// Store is the Redis store. Its methods are safe for concurrent use.
type Store struct {
	client  rueidis.Client
	prefix  string
	publish string
	closed  atomic.Bool
}

var _ store.Store = (*Store)(nil)

// New returns a store over client. It does not close client.
func New(client rueidis.Client, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = rediskey.DefaultPrefix
	}
	return &Store{client: client, prefix: opts.Prefix, publish: opts.Publish}
}

// Close implements store.Store: later calls give store.ErrClosed.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// enter checks that the store is open and ctx alive.
func (s *Store) enter(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// validName reports store.ErrInvalidName for an empty name or one with a
// NUL byte.
func validName(name string) error {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("%w: %q", store.ErrInvalidName, name)
	}
	return nil
}

// enterName does enter and validName.
func (s *Store) enterName(ctx context.Context, names ...string) error {
	for _, n := range names {
		if err := validName(n); err != nil {
			return err
		}
	}
	return s.enter(ctx)
}

// run executes script on the slot of base, whose meta hash is KEYS[1];
// base is ARGV[1], followed by args.
func (s *Store) run(ctx context.Context, script *rueidis.Lua, base string, args ...string) rueidis.RedisResult {
	return script.Exec(ctx, s.client, []string{base + ":meta"}, append([]string{base}, args...))
}

// encodeTime writes t as 20 decimal digits of nanoseconds since 1970, so
// that times compare as strings; a time before 1970 counts as 1970.
func encodeTime(t time.Time) string {
	return fmt.Sprintf("%020d", max(t.UnixNano(), 0))
}

// optionalTime is encodeTime, or "" for the zero time (no limit).
func optionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return encodeTime(t)
}

func decodeTime(s string) time.Time {
	n, _ := strconv.ParseInt(s, 10, 64)
	return time.Unix(0, n)
}

func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errorf wraps err as the failure of what, unless it is one of the
// store's sentinels or a context error, kept as they are.
func errorf(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("redis store: %s: %w", what, err)
}

// parseEntries reads stream entries {ID, {t, time, d|i, value}} as
// records.
func parseEntries(msgs []rueidis.RedisMessage) ([]store.Record, error) {
	recs := make([]store.Record, 0, len(msgs))
	for _, m := range msgs {
		e, err := m.ToArray()
		if err != nil || len(e) != 2 {
			return nil, fmt.Errorf("malformed stream entry: %v", err)
		}
		sid, err := e[0].ToString()
		if err != nil {
			return nil, err
		}
		off, err := strconv.ParseUint(strings.TrimSuffix(sid, "-0"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("malformed stream id %q", sid)
		}
		fields, err := e[1].AsStrSlice()
		if err != nil || len(fields) != 4 {
			return nil, fmt.Errorf("malformed stream entry %s: %v", sid, err)
		}
		recs = append(recs, store.Record{Offset: off, Time: decodeTime(fields[1]), Data: []byte(fields[3])})
	}
	return recs, nil
}
