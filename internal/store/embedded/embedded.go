// Package embedded is the store kept in the data directory, on Pebble.
//
// Pebble (github.com/cockroachdb/pebble/v2, the maintained line; v1 receives
// only fixes) commits concurrent synced writes with one WAL fsync, so durable
// throughput comes from concurrency. Each channel and each user has its own
// lock under which its next offset is assigned and its write enters the
// commit pipeline (ApplyNoSyncWait); the fsync is awaited after the lock is
// released, so appends to one channel share a sync too, and appends to
// different channels never wait for each other's locks.
//
// Pebble makes a write readable before its fsync ends. So that no reader
// sees a record a crash could still lose (and its offset given to another
// message after restart), each channel and user keeps a durable watermark,
// raised once a write's sync returned, and reads stop at it. The WAL is
// written in commit order, so a synced record implies every lower offset is
// synced as well.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/heraldpush/herald/internal/fsutil"
	"github.com/heraldpush/herald/internal/store"
)

// FormatVersion is the version of the on-disk layout this code writes. A
// directory whose FORMAT file names a higher version is refused.
const FormatVersion = 1

// formatFile holds the format version, in the data directory.
const formatFile = "FORMAT"

const shards = 64

// DefaultIdleState is how long a channel's or user's in-memory head is kept
// after its last use, unless Options say otherwise.
const DefaultIdleState = time.Minute

// Store is the embedded store. Its methods are safe for concurrent use.
type Store struct {
	db   *pebble.DB
	lock *pebble.Lock

	// closeMu is held for reading by every operation and for writing by
	// Close, so that no operation reaches a closed database.
	closeMu sync.RWMutex
	closed  bool
	// damaged is set once the engine reports a damaged file; every
	// operation then fails with it.
	damaged atomic.Pointer[error]

	seed     maphash.Seed
	idle     time.Duration
	channels [shards]stateShard
	users    [shards]stateShard
	keys     [256]sync.Mutex // idempotency keys, striped
}

var _ store.Store = (*Store)(nil)

// Options configures Open.
type Options struct {
	// Logger receives the engine's messages; nil discards them.
	Logger *slog.Logger

	// IdleState is how long the in-memory head of a channel or a user is
	// kept after its last operation (0: DefaultIdleState).
	IdleState time.Duration

	// fs replaces the engine's file system in tests that inject faults.
	fs vfs.FS
}

// Open opens (or creates) the store in dir. It refuses a directory written
// by a newer version (store.ErrNewerFormat), one held by another process
// (store.ErrLocked), and one it cannot write.
func Open(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	probe, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return nil, fmt.Errorf("store directory %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())

	lock, err := pebble.LockDirectory(dir, vfs.Default)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", store.ErrLocked, dir, err)
	}
	fresh, err := checkFormat(dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{lock: lock, seed: maphash.MakeSeed(), idle: opts.IdleState}
	if s.idle <= 0 {
		s.idle = DefaultIdleState
	}
	db, err := pebble.Open(dir, &pebble.Options{
		FS:   opts.fs,
		Lock: lock,
		// A directory with a format file holds a store: one the engine
		// cannot find (its manifest marker lost) is damage, not a new
		// store to create over what is left of the old one.
		ErrorIfNotExists: !fresh,
		Logger:           pebbleLogger{logger},
		EventListener: &pebble.EventListener{
			// The engine found a damaged file: log it and refuse all further
			// operations, rather than its default of exiting the process.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				logger.Error("store: damaged file", "path", info.Path, "err", info.Details)
				err := fmt.Errorf("%w: %s: %v", store.ErrDamaged, info.Path, info.Details)
				s.damaged.CompareAndSwap(nil, &err)
			},
		},
	})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open store in %s (damaged or unreadable; restore it from a backup or move it away): %w", dir, err)
	}
	if fresh {
		if err := writeFormat(dir); err != nil {
			db.Close()
			lock.Close()
			return nil, err
		}
	}
	s.db = db
	for i := range shards {
		s.channels[i].m = make(map[string]*seqState)
		s.users[i].m = make(map[string]*seqState)
	}
	return s, nil
}

// checkFormat reads the format version; fresh reports a directory with no
// store in it yet.
func checkFormat(dir string) (fresh bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, formatFile))
	if errors.Is(err, os.ErrNotExist) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false, fmt.Errorf("read store directory: %w", err)
		}
		for _, e := range entries {
			if n := e.Name(); n == "CURRENT" || strings.HasPrefix(n, "MANIFEST-") || strings.HasPrefix(n, "marker.") {
				return false, fmt.Errorf("store directory %s holds data without a %s file: not a Herald store", dir, formatFile)
			}
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read store format: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return false, fmt.Errorf("store directory %s: unreadable %s file %q", dir, formatFile, b)
	}
	if v > FormatVersion {
		return false, fmt.Errorf("%w: %s has format %d, this version reads up to %d; run a newer Herald", store.ErrNewerFormat, dir, v, FormatVersion)
	}
	return false, nil
}

func writeFormat(dir string) error {
	tmp := filepath.Join(dir, formatFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write store format: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d\n", FormatVersion)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, formatFile))
	}
	if err == nil {
		err = fsutil.SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("write store format: %w", err)
	}
	return nil
}

// Close closes the database and releases the directory lock.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	err := s.db.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// enter starts an operation; the returned function ends it.
func (s *Store) enter(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return nil, store.ErrClosed
	}
	if err := s.damaged.Load(); err != nil {
		s.closeMu.RUnlock()
		return nil, *err
	}
	return s.closeMu.RUnlock, nil
}

// locked enters the store and returns the state of name in shards, loaded
// by load and locked, with the function that leaves the store. The caller
// unlocks the state. stay says whether a state this call loads is kept
// for the next (see state).
func (s *Store) locked(ctx context.Context, shards *[shards]stateShard, name string, load func(*seqState, string) error, stay bool) (*seqState, func(), error) {
	exit, err := s.enter(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := validName(name); err != nil {
		exit()
		return nil, nil, err
	}
	st, release := s.state(shards, name, stay)
	leave := func() {
		release()
		exit()
	}
	st.mu.Lock()
	if err := load(st, name); err != nil {
		st.mu.Unlock()
		leave()
		return nil, nil, err
	}
	return st, leave, nil
}

// seqState is the in-memory head of one channel's or user's records,
// loaded from disk on first use and dropped again once idle. Its mutex
// orders offset assignment. A store holds one for every name used in the
// last minute (a batch send to 100,000 users makes 100,000), so it is
// kept small: times are instants, flags are packed.
type seqState struct {
	// refs (operations in flight) and used (when the last one ended) are
	// guarded by the shard's mutex.
	refs int
	used instant

	mu      sync.Mutex
	loaded  bool
	stored  bool   // meta key written
	epoch   string // channels only
	base    uint64 // highest offset dropped
	next    uint64 // highest offset assigned
	durable uint64 // highest offset synced: reads stop here

	// Inboxes only: how many records are kept, and their bytes of data,
	// counted once when first needed (sized), then kept up to date by
	// Push and Expire, so that holding an inbox to its caps reads only
	// what it drops.
	sized    bool
	sizedTop uint64 // the records up to it were counted; Push counts the rest
	count    int
	bytes    int64
	// rcptFloor: every receipt of the user is at or above it (0: not
	// known yet), so that Expire reads receipts only when one may go;
	// pruned is the floor the marks were last pruned to.
	rcptFloor   uint64
	rcptFloorAt instant // when the receipt at rcptFloor was accepted
	rcptKeepAt  instant // the same, found by the Expire in progress
	pruned      uint64

	// Inboxes only: what the last Expire read, so that the next one reads
	// nothing when nothing can go. devices (valid while devicesKnown,
	// which every device write clears): whether any device is known, the
	// lowest position among them and the earliest time one was last seen.
	// head (valid while headKnown, which a push into an inbox known to be
	// empty clears): the oldest record kept and when it was accepted, or
	// 0 when none is.
	devicesKnown bool
	anyDevice    bool
	headKnown    bool
	minAcked     uint64
	minSeen      instant
	headSeq      uint64
	headAt       instant
}

// instant is a time kept in a seqState: Unix nanoseconds, a third of the
// size of a time.Time. The zero time is the earliest instant.
type instant int64

func instantOf(t time.Time) instant {
	if t.IsZero() {
		return math.MinInt64
	}
	return instant(t.UnixNano())
}

// before reports whether i is before t, as time.Time's Before does; the
// zero time has nothing before it.
func (i instant) before(t time.Time) bool {
	return !t.IsZero() && int64(i) < t.UnixNano()
}

type stateShard struct {
	mu    sync.Mutex
	m     map[string]*seqState
	swept time.Time // when idle states were last dropped
}

// sweep drops the states idle for idle; sh.mu held.
func (sh *stateShard) sweep(now time.Time, idle time.Duration) {
	for n, st := range sh.m {
		if st.refs == 0 && int64(st.used) <= now.Add(-idle).UnixNano() {
			delete(sh.m, n)
		}
	}
	sh.swept = now
}

// state returns the state of name, held until the returned function is
// called: a held state is never dropped. Now and then it drops the states
// of the shard idle for longer than s.idle, so that memory is bounded by
// the names in use rather than every name ever used; a dropped state is
// loaded from disk again on its next use.
//
// Without stay, a state this call creates is dropped when it is let go,
// unless another holds it by then: Expire and Trim, which the periodic
// sweep calls for every user and channel the store holds, would otherwise
// load the head of every one of them into memory for a minute.
func (s *Store) state(shards *[shards]stateShard, name string, stay bool) (*seqState, func()) {
	sh := &shards[maphash.String(s.seed, name)%uint64(len(shards))]
	now := time.Now()
	sh.mu.Lock()
	if now.Sub(sh.swept) >= s.idle {
		sh.sweep(now, s.idle)
	}
	st, found := sh.m[name]
	if !found {
		st = &seqState{}
		sh.m[name] = st
	}
	st.refs++
	sh.mu.Unlock()
	return st, func() {
		sh.mu.Lock()
		st.refs--
		st.used = instantOf(time.Now())
		if !stay && !found && st.refs == 0 {
			delete(sh.m, name)
		}
		sh.mu.Unlock()
	}
}

// lastSeq returns the highest sequence stored under prefix, or 0.
func (s *Store) lastSeq(prefix []byte) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
	if err != nil {
		return 0, err
	}
	var last uint64
	if it.Last() {
		last = seqOf(it.Key())
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	return last, nil
}

// firstSeq returns the lowest sequence stored under prefix up to max, or 0.
func (s *Store) firstSeq(prefix []byte, max uint64) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
	if err != nil {
		return 0, err
	}
	var first uint64
	if it.First() {
		if q := seqOf(it.Key()); q <= max {
			first = q
		}
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	return first, nil
}

// upperBound is the first key after every key that starts with prefix
// (prefix ends in the NUL separator, so incrementing it is enough).
func upperBound(prefix []byte) []byte {
	u := append([]byte(nil), prefix...)
	u[len(u)-1]++
	return u
}

// deleteKeys adds to b the deletion of every key in [lower, upper), one by
// one. The deletions that follow a user's acks, devices and receipts use it
// rather than a range deletion: Pebble fragments all the range deletions
// in its memtable again for the next iterator or Get after one is added,
// so a range deletion written on every ack made every read cost as much
// as all of them (10,000 devices coming online took 4 ms of CPU each). A
// key is deleted once after it was written once, so the point deletions
// cost no more than the writes did.
func (s *Store) deleteKeys(b *pebble.Batch, lower, upper []byte) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		b.Delete(it.Key(), nil)
	}
	return it.Close()
}

// get returns a copy of the value at key, or nil when there is none.
func (s *Store) get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

// pebbleLogger hands the engine's messages to slog.
type pebbleLogger struct{ l *slog.Logger }

// Infof logs the engine's routine notes (WAL replay, compactions) at debug
// level: they are for whoever debugs the store, not for the operator.
func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("store: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("store: " + fmt.Sprintf(format, args...))
}

// Fatalf must not return: the engine found its state unusable.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := "store: fatal: " + fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic(msg)
}
