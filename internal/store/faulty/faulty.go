// Package faulty wraps a store.Store so that a test can make its writes
// fail from a point on, as a full disk or a failing sync does, and heal
// them again. Reads keep working throughout.
package faulty

import (
	"context"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/heraldpush/herald/internal/store"
)

// ErrNoSpace is the error a write gets on a full disk.
var ErrNoSpace error = &os.PathError{Op: "write", Path: "store", Err: syscall.ENOSPC}

// Mode says what a failing write does.
type Mode int

const (
	// Refuse: the write is not done and returns the error with a zero
	// result, as when the disk is full.
	Refuse Mode = iota
	// AfterWrite: the write is done and then returns the error together
	// with its result (the offset it was given), as when its sync fails.
	AfterWrite
)

// Store is a store.Store whose writes can be made to fail. Every method
// not listed among the writes below passes straight through.
type Store struct {
	store.Store

	mu   sync.Mutex
	err  error
	mode Mode
}

var _ store.Store = (*Store)(nil)

// Wrap returns s with no fault set.
func Wrap(s store.Store) *Store { return &Store{Store: s} }

// Fail makes every write from now on fail with err, as mode says: Append,
// AppendBatch, Push, PushMany, Ack, Delivered, Seen, Trim, Reset, Expire, Remember,
// Forget and ForgetBefore.
func (s *Store) Fail(err error, mode Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err, s.mode = err, mode
}

// Heal makes writes succeed again.
func (s *Store) Heal() { s.Fail(nil, Refuse) }

// write runs do unless a fault is set, and applies the fault to it.
func write[T any](s *Store, do func() (T, error)) (T, error) {
	s.mu.Lock()
	err, mode := s.err, s.mode
	s.mu.Unlock()
	if err == nil {
		return do()
	}
	if mode == Refuse {
		var zero T
		return zero, err
	}
	v, werr := do()
	if werr != nil {
		return v, werr
	}
	return v, err
}

// writeErr is write for a write that returns only an error.
func writeErr(s *Store, do func() error) error {
	_, err := write(s, func() (struct{}, error) { return struct{}{}, do() })
	return err
}

// Append implements store.History.
func (s *Store) Append(ctx context.Context, channel string, at time.Time, data []byte) (store.Position, error) {
	return write(s, func() (store.Position, error) { return s.Store.Append(ctx, channel, at, data) })
}

// AppendBatch implements store.History.
func (s *Store) AppendBatch(ctx context.Context, channel string, at time.Time, data [][]byte) (store.Position, error) {
	return write(s, func() (store.Position, error) { return s.Store.AppendBatch(ctx, channel, at, data) })
}

// Trim implements store.History.
func (s *Store) Trim(ctx context.Context, channel string, keep int, before time.Time) (int, error) {
	return write(s, func() (int, error) { return s.Store.Trim(ctx, channel, keep, before) })
}

// Reset implements store.History.
func (s *Store) Reset(ctx context.Context, channel string) (store.Position, error) {
	return write(s, func() (store.Position, error) { return s.Store.Reset(ctx, channel) })
}

// Push implements store.Inbox.
func (s *Store) Push(ctx context.Context, user, id string, at time.Time, data []byte) (uint64, error) {
	return write(s, func() (uint64, error) { return s.Store.Push(ctx, user, id, at, data) })
}

// PushMany implements store.Inbox.
func (s *Store) PushMany(ctx context.Context, at time.Time, ps []store.Push) ([]uint64, error) {
	return write(s, func() ([]uint64, error) { return s.Store.PushMany(ctx, at, ps) })
}

// Ack implements store.Inbox.
func (s *Store) Ack(ctx context.Context, user, device string, seq uint64) error {
	return writeErr(s, func() error { return s.Store.Ack(ctx, user, device, seq) })
}

// Seen implements store.Inbox.
func (s *Store) Seen(ctx context.Context, user, device string, at time.Time) error {
	return writeErr(s, func() error { return s.Store.Seen(ctx, user, device, at) })
}

// Expire implements store.Inbox.
func (s *Store) Expire(ctx context.Context, user string, lim store.InboxLimits) (int, error) {
	return write(s, func() (int, error) { return s.Store.Expire(ctx, user, lim) })
}

// Delivered implements store.Receipts.
func (s *Store) Delivered(ctx context.Context, user, device string, seq uint64, at time.Time) error {
	return writeErr(s, func() error { return s.Store.Delivered(ctx, user, device, seq, at) })
}

// Remember implements store.Idempotency.
func (s *Store) Remember(ctx context.Context, key string, bodyHash, result []byte, now time.Time, window time.Duration) ([]byte, bool, error) {
	type remembered struct {
		stored []byte
		fresh  bool
	}
	r, err := write(s, func() (remembered, error) {
		stored, fresh, err := s.Store.Remember(ctx, key, bodyHash, result, now, window)
		return remembered{stored, fresh}, err
	})
	return r.stored, r.fresh, err
}

// Forget implements store.Idempotency.
func (s *Store) Forget(ctx context.Context, key string) error {
	return writeErr(s, func() error { return s.Store.Forget(ctx, key) })
}

// ForgetBefore implements store.Idempotency.
func (s *Store) ForgetBefore(ctx context.Context, before time.Time) (int, error) {
	return write(s, func() (int, error) { return s.Store.ForgetBefore(ctx, before) })
}
