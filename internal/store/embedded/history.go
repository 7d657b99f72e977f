package embedded

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldpush/herald/internal/store"
)

func newEpoch() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func encodeChannelMeta(base uint64, epoch string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, base), epoch...)
}

// loadChannel reads the channel's head from disk on first use; st.mu held.
func (s *Store) loadChannel(st *seqState, channel string) error {
	if st.loaded {
		return nil
	}
	meta, err := s.get(nameKey(prefixChannelMeta, channel))
	if err != nil {
		return fmt.Errorf("read channel %s: %w", channel, err)
	}
	switch {
	case meta == nil:
		st.epoch, st.base = newEpoch(), 0
	case len(meta) < 8:
		return fmt.Errorf("read channel %s: damaged metadata", channel)
	default:
		st.base, st.epoch, st.stored = binary.BigEndian.Uint64(meta), string(meta[8:]), true
	}
	last, err := s.lastSeq(seqPrefix(prefixHistory, channel))
	if err != nil {
		return fmt.Errorf("read channel %s: %w", channel, err)
	}
	st.next = max(last, st.base)
	st.durable = st.next
	st.loaded = true
	return nil
}

// channel enters the store and returns the loaded state of channel, locked, with
// the function that leaves the store.
func (s *Store) channel(ctx context.Context, channel string) (*seqState, func(), error) {
	return s.locked(ctx, &s.channels, channel, s.loadChannel, true)
}

// Append implements store.History.
func (s *Store) Append(ctx context.Context, channel string, at time.Time, data []byte) (store.Position, error) {
	return s.appendRecords(ctx, "append to", channel, at, [][]byte{data})
}

// AppendBatch implements store.History.
func (s *Store) AppendBatch(ctx context.Context, channel string, at time.Time, data [][]byte) (store.Position, error) {
	if len(data) == 0 {
		return store.Position{}, store.ErrEmptyBatch
	}
	return s.appendRecords(ctx, "append a batch to", channel, at, data)
}

// appendRecords stores data at the next offsets of channel in one batch,
// and returns the first offset.
func (s *Store) appendRecords(ctx context.Context, what, channel string, at time.Time, data [][]byte) (store.Position, error) {
	st, exit, err := s.channel(ctx, channel)
	if err != nil {
		return store.Position{}, err
	}
	defer exit()
	first := st.next + 1
	last := st.next + uint64(len(data))
	b := s.db.NewBatch()
	defer b.Close()
	if !st.stored {
		b.Set(nameKey(prefixChannelMeta, channel), encodeChannelMeta(st.base, st.epoch), nil)
	}
	for i, d := range data {
		b.Set(seqKey(prefixHistory, channel, first+uint64(i)), encodeRecord(at, d), nil)
	}
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		st.mu.Unlock()
		return store.Position{}, fmt.Errorf("%s %s: %w", what, channel, err)
	}
	st.next, st.stored = last, true
	epoch := st.epoch
	st.mu.Unlock()

	if err := b.SyncWait(); err != nil {
		return store.Position{Offset: first, Epoch: epoch}, fmt.Errorf("%s %s: sync: %w", what, channel, err)
	}
	st.mu.Lock()
	if st.epoch == epoch && last > st.durable {
		st.durable = last
	}
	st.mu.Unlock()
	return store.Position{Offset: first, Epoch: epoch}, nil
}

// storeMeta writes the channel's meta key if it is not on disk yet, so the
// epoch handed out survives a restart; st.mu held.
func (s *Store) storeMeta(st *seqState, channel string) error {
	if st.stored {
		return nil
	}
	if err := s.db.Set(nameKey(prefixChannelMeta, channel), encodeChannelMeta(st.base, st.epoch), pebble.Sync); err != nil {
		return fmt.Errorf("store channel %s: %w", channel, err)
	}
	st.stored = true
	return nil
}

// Top implements store.History.
func (s *Store) Top(ctx context.Context, channel string) (store.Position, error) {
	st, exit, err := s.channel(ctx, channel)
	if err != nil {
		return store.Position{}, err
	}
	defer exit()
	defer st.mu.Unlock()
	if err := s.storeMeta(st, channel); err != nil {
		return store.Position{}, err
	}
	return store.Position{Offset: st.durable, Epoch: st.epoch}, nil
}

// Read implements store.History.
func (s *Store) Read(ctx context.Context, channel string, r store.Range) ([]store.Record, store.Position, error) {
	if r.Limit <= 0 {
		return nil, store.Position{}, store.ErrInvalidLimit
	}
	st, exit, err := s.channel(ctx, channel)
	if err != nil {
		return nil, store.Position{}, err
	}
	defer exit()
	if err := s.storeMeta(st, channel); err != nil {
		st.mu.Unlock()
		return nil, store.Position{}, err
	}
	pos := store.Position{Offset: st.durable, Epoch: st.epoch}
	st.mu.Unlock()

	recs, err := s.readSeq(seqPrefix(prefixHistory, channel), r, pos.Offset)
	if err != nil {
		return nil, store.Position{}, fmt.Errorf("read %s: %w", channel, err)
	}
	return recs, pos, nil
}

// readSeq reads the records under prefix that r selects, up to top.
func (s *Store) readSeq(prefix []byte, r store.Range, top uint64) ([]store.Record, error) {
	lo, hi := uint64(1), top
	if r.Backwards {
		if r.From != 0 && r.From < hi {
			hi = r.From
		}
	} else {
		lo = max(lo, r.From)
	}
	if lo > hi {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: binary.BigEndian.AppendUint64(slices.Clip(prefix), lo),
		UpperBound: binary.BigEndian.AppendUint64(slices.Clip(prefix), hi+1),
	})
	if err != nil {
		return nil, err
	}
	var recs []store.Record
	valid, step := it.First, it.Next
	if r.Backwards {
		valid, step = it.Last, it.Prev
	}
	for ok := valid(); ok && len(recs) < r.Limit; ok = step() {
		rec, good := decodeRecord(it.Key(), it.Value())
		if !good {
			it.Close()
			return nil, fmt.Errorf("damaged record at %d", seqOf(it.Key()))
		}
		recs = append(recs, rec)
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return recs, nil
}

// Trim implements store.History. It keeps the channel's head in memory
// only if it was there already.
func (s *Store) Trim(ctx context.Context, channel string, keep int, before time.Time) (int, error) {
	st, exit, err := s.locked(ctx, &s.channels, channel, s.loadChannel, false)
	if err != nil {
		return 0, err
	}
	defer exit()
	defer st.mu.Unlock()
	prefix := seqPrefix(prefixHistory, channel)
	first, err := s.firstSeq(prefix, st.durable)
	if err != nil || first == 0 {
		return 0, err
	}
	remaining := st.durable - first + 1
	last := first - 1
	if keep < 0 {
		keep = 0
	}
	if remaining > uint64(keep) {
		last = st.durable - uint64(keep)
	}
	if !before.IsZero() {
		recs, err := s.readSeq(prefix, store.Range{From: last + 1, Limit: int(st.durable - last)}, st.durable)
		if err != nil {
			return 0, fmt.Errorf("trim %s: %w", channel, err)
		}
		for _, r := range recs {
			if !r.Time.Before(before) {
				break
			}
			last = r.Offset
		}
	}
	if last < first {
		return 0, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.DeleteRange(seqKey(prefixHistory, channel, first), seqKey(prefixHistory, channel, last+1), nil)
	base := max(st.base, last)
	b.Set(nameKey(prefixChannelMeta, channel), encodeChannelMeta(base, st.epoch), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("trim %s: %w", channel, err)
	}
	st.base, st.stored = base, true
	return int(last - first + 1), nil
}

// Reset implements store.History.
func (s *Store) Reset(ctx context.Context, channel string) (store.Position, error) {
	st, exit, err := s.channel(ctx, channel)
	if err != nil {
		return store.Position{}, err
	}
	defer exit()
	defer st.mu.Unlock()
	prefix := seqPrefix(prefixHistory, channel)
	epoch := newEpoch()
	b := s.db.NewBatch()
	defer b.Close()
	b.DeleteRange(prefix, upperBound(prefix), nil)
	b.Set(nameKey(prefixChannelMeta, channel), encodeChannelMeta(0, epoch), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return store.Position{}, fmt.Errorf("reset %s: %w", channel, err)
	}
	st.epoch, st.base, st.next, st.durable, st.stored = epoch, 0, 0, 0, true
	return store.Position{Epoch: epoch}, nil
}
