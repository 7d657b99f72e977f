package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldpush/herald/internal/store"
)

// loadUser reads the user's inbox head from disk on first use; st.mu held.
func (s *Store) loadUser(st *seqState, user string) error {
	if st.loaded {
		return nil
	}
	meta, err := s.get(nameKey(prefixInboxMeta, user))
	if err != nil {
		return fmt.Errorf("read inbox of %s: %w", user, err)
	}
	if len(meta) >= 8 {
		st.base = binary.BigEndian.Uint64(meta)
	}
	last, err := s.lastSeq(seqPrefix(prefixInbox, user))
	if err != nil {
		return fmt.Errorf("read inbox of %s: %w", user, err)
	}
	st.next = max(last, st.base)
	st.durable = st.next
	st.loaded = true
	if last <= st.base {
		// Empty: nothing to count, and no oldest record, for Expire.
		st.sized, st.sizedTop, st.count, st.bytes = true, st.durable, 0, 0
		st.headKnown, st.headSeq, st.headAt = true, 0, instantOf(time.Time{})
	}
	return nil
}

// user enters the store and returns the loaded state of user, locked, with
// the function that leaves the store.
func (s *Store) user(ctx context.Context, user string) (*seqState, func(), error) {
	return s.locked(ctx, &s.users, user, s.loadUser, true)
}

// Push implements store.Inbox.
func (s *Store) Push(ctx context.Context, user, id string, at time.Time, data []byte) (uint64, error) {
	if err := validName(id); err != nil {
		return 0, err
	}
	st, exit, err := s.user(ctx, user)
	if err != nil {
		return 0, err
	}
	defer exit()
	seq := st.next + 1
	b := s.db.NewBatch()
	defer b.Close()
	b.Set(seqKey(prefixInbox, user, seq), encodeRecord(at, data), nil)
	b.Set(seqKey(prefixReceipt, user, seq), encodeRecord(at, []byte(id)), nil)
	b.Set(nameKey(prefixMessageID, id), encodeMessageID(at, seq, user), nil)
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		st.mu.Unlock()
		return 0, fmt.Errorf("push to %s: %w", user, err)
	}
	st.next = seq
	st.mu.Unlock()

	if err := b.SyncWait(); err != nil {
		return seq, fmt.Errorf("push to %s: sync: %w", user, err)
	}
	st.mu.Lock()
	st.durable = max(st.durable, seq)
	if st.sized && seq > st.sizedTop {
		st.count++
		st.bytes += int64(len(data))
	}
	if st.headKnown && st.headSeq == 0 {
		st.headKnown = false
	}
	st.mu.Unlock()
	return seq, nil
}

// PushMany implements store.Inbox: every message in one batch, committed
// and synced once, whoever it is for. The users' states are locked in
// byte order, so that calls naming the same users never wait for each
// other in a circle.
func (s *Store) PushMany(ctx context.Context, at time.Time, ps []store.Push) ([]uint64, error) {
	if err := store.CheckPushes(ps, validName); err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, nil
	}
	exit, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer exit()
	type inbox struct {
		st   *seqState
		last uint64 // the last sequence this call gives
		msgs []int  // indexes into ps
	}
	names, msgs := store.ByUser(ps, store.PushUser)
	inboxes := make(map[string]*inbox, len(names))
	for _, name := range names {
		inboxes[name] = &inbox{msgs: msgs[name]}
	}
	// Each head is read from disk, when it must be, under its own lock
	// alone; then all are locked at once, in byte order. A held state is
	// not dropped, so it stays loaded.
	slices.Sort(names)
	for _, name := range names {
		st, release := s.state(&s.users, name, true)
		defer release()
		st.mu.Lock()
		err := s.loadUser(st, name)
		st.mu.Unlock()
		if err != nil {
			return nil, err
		}
		inboxes[name].st = st
	}
	for _, name := range names {
		inboxes[name].st.mu.Lock()
	}
	unlock := func() {
		for _, name := range names {
			inboxes[name].st.mu.Unlock()
		}
	}
	seqs := make([]uint64, len(ps))
	b := s.db.NewBatch()
	defer b.Close()
	for _, name := range names {
		in := inboxes[name]
		in.last = in.st.next
		for _, i := range in.msgs {
			in.last++
			seqs[i] = in.last
			p := ps[i]
			b.Set(seqKey(prefixInbox, name, in.last), encodeRecord(at, p.Data), nil)
			b.Set(seqKey(prefixReceipt, name, in.last), encodeRecord(at, []byte(p.ID)), nil)
			b.Set(nameKey(prefixMessageID, p.ID), encodeMessageID(at, in.last, name), nil)
		}
	}
	what := fmt.Sprintf("push to %d users", len(names))
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		unlock()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	for _, in := range inboxes {
		in.st.next = in.last
	}
	unlock()

	if err := b.SyncWait(); err != nil {
		return seqs, fmt.Errorf("%s: sync: %w", what, err)
	}
	for _, in := range inboxes {
		st := in.st
		st.mu.Lock()
		st.durable = max(st.durable, in.last)
		if st.sized {
			for _, i := range in.msgs {
				if seqs[i] > st.sizedTop {
					st.count++
					st.bytes += int64(len(ps[i].Data))
				}
			}
		}
		if st.headKnown && st.headSeq == 0 {
			st.headKnown = false
		}
		st.mu.Unlock()
	}
	return seqs, nil
}

// Ack implements store.Inbox.
func (s *Store) Ack(ctx context.Context, user, device string, seq uint64) error {
	return s.deviceOp(ctx, "ack for", user, device, func(st *seqState, d *deviceRecord, b *pebble.Batch) (bool, error) {
		switch {
		case seq < d.acked:
			return false, fmt.Errorf("%w: %d is below %d", store.ErrAckBackwards, seq, d.acked)
		case seq > st.durable:
			return false, fmt.Errorf("%w: %d is above %d", store.ErrAckBeyondEnd, seq, st.durable)
		}
		// Acknowledging the position again only records that the device
		// was active, which need not be synced.
		sync := seq > d.acked || !d.known
		return sync, s.advance(b, prefixAckMark, user, device, d, st.base, seq, time.Now())
	})
}

// Head implements store.Inbox.
func (s *Store) Head(ctx context.Context, user string) (uint64, error) {
	st, exit, err := s.user(ctx, user)
	if err != nil {
		return 0, err
	}
	defer exit()
	defer st.mu.Unlock()
	return st.durable, nil
}

// Pending implements store.Inbox.
func (s *Store) Pending(ctx context.Context, user, device string, limit int) (store.Pending, error) {
	if limit <= 0 {
		return store.Pending{}, store.ErrInvalidLimit
	}
	if err := validName(device); err != nil {
		return store.Pending{}, err
	}
	st, exit, err := s.user(ctx, user)
	if err != nil {
		return store.Pending{}, err
	}
	defer exit()
	d, err := s.device(st, user, device)
	pos, top := d.acked, st.durable
	st.mu.Unlock()
	if err != nil {
		return store.Pending{}, fmt.Errorf("pending for %s/%s: %w", user, device, err)
	}
	recs, err := s.readSeq(seqPrefix(prefixInbox, user), store.Range{From: pos + 1, Limit: limit}, top)
	if err != nil {
		return store.Pending{}, fmt.Errorf("pending for %s/%s: %w", user, device, err)
	}
	p := store.Pending{Acked: pos, Records: recs, Known: d.known}
	if len(recs) > 0 {
		p.Missed = recs[0].Offset - pos - 1
	} else {
		p.Missed = top - pos
	}
	return p, nil
}

// Expire implements store.Inbox. It keeps the user's head in memory only
// if it was there already.
func (s *Store) Expire(ctx context.Context, user string, lim store.InboxLimits) (int, error) {
	st, exit, err := s.locked(ctx, &s.users, user, s.loadUser, false)
	if err != nil {
		return 0, err
	}
	defer exit()
	defer st.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	n, base, err := s.expireInbox(b, st, user, lim)
	if err != nil {
		return 0, fmt.Errorf("expire inbox of %s: %w", user, err)
	}
	keep, err := s.expireReceipts(b, st, user, base, lim.ReceiptsBefore)
	if err != nil {
		return 0, fmt.Errorf("expire receipts of %s: %w", user, err)
	}
	if keep != st.pruned {
		if err := s.pruneMarks(b, user, keep); err != nil {
			return 0, fmt.Errorf("expire receipts of %s: %w", user, err)
		}
	}
	if b.Empty() {
		st.rcptFloor, st.rcptFloorAt, st.pruned = keep, st.rcptKeepAt, keep
		return 0, nil
	}
	// Not synced: a drop lost in a crash leaves messages that every
	// device has acknowledged or that the next Expire drops again; the
	// next synced write makes it durable anyway.
	if err := b.Commit(pebble.NoSync); err != nil {
		// What the caches say was counted against a drop that did not
		// happen: read it all again next time.
		st.devicesKnown, st.headKnown, st.sized = false, false, false
		return 0, fmt.Errorf("expire inbox of %s: %w", user, err)
	}
	st.base = base
	st.rcptFloor, st.rcptFloorAt, st.pruned = keep, st.rcptKeepAt, keep
	return n, nil
}

// expireInbox adds to b the removal of the messages of user that lim and
// the known devices' positions drop, and returns how many it drops and the
// base after it.
func (s *Store) expireInbox(b *pebble.Batch, st *seqState, user string, lim store.InboxLimits) (int, uint64, error) {
	// Everything every known device acknowledged can go, once devices
	// inactive for too long are forgotten.
	if !st.devicesKnown || (st.anyDevice && !lim.Before.IsZero() && st.minSeen.before(lim.Before)) {
		if err := s.readDevices(b, st, user, lim.Before); err != nil {
			return 0, st.base, err
		}
	}
	known, acked := st.anyDevice, st.minAcked

	if err := s.sizeInbox(st, user); err != nil {
		return 0, st.base, err
	}
	// The oldest record decides whether any goes: the walk below stops
	// at the first that stays.
	if st.headKnown {
		h := st.headSeq
		if h == 0 || !((known && h <= acked) ||
			(!lim.Before.IsZero() && st.headAt.before(lim.Before)) ||
			(lim.MaxCount > 0 && st.count > lim.MaxCount) ||
			(lim.MaxBytes > 0 && st.bytes > lim.MaxBytes)) {
			return 0, st.base, nil
		}
	}
	prefix := seqPrefix(prefixInbox, user)
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: prefix,
		UpperBound: binary.BigEndian.AppendUint64(slices.Clip(prefix), st.durable+1),
	})
	if err != nil {
		return 0, st.base, err
	}
	// Walk from the oldest record while it must go: only what is dropped
	// is read.
	var first, last, head uint64
	var headAt time.Time
	count, bytes := st.count, st.bytes
	for ok := it.First(); ok; ok = it.Next() {
		r, good := decodeRecord(it.Key(), it.Value())
		if !good {
			it.Close()
			return 0, st.base, fmt.Errorf("damaged record at %d", seqOf(it.Key()))
		}
		drop := (known && r.Offset <= acked) ||
			(!lim.Before.IsZero() && r.Time.Before(lim.Before)) ||
			(lim.MaxCount > 0 && count > lim.MaxCount) ||
			(lim.MaxBytes > 0 && bytes > lim.MaxBytes)
		if !drop {
			head, headAt = r.Offset, r.Time
			break
		}
		if first == 0 {
			first = r.Offset
		}
		last = r.Offset
		count--
		bytes -= int64(len(r.Data))
	}
	if err := it.Close(); err != nil {
		return 0, st.base, err
	}
	st.headKnown, st.headSeq, st.headAt = true, head, instantOf(headAt)
	if first == 0 {
		return 0, st.base, nil
	}
	st.count, st.bytes = count, bytes
	if err := s.deleteKeys(b, seqKey(prefixInbox, user, first), seqKey(prefixInbox, user, last+1)); err != nil {
		return 0, st.base, err
	}
	base := max(st.base, last)
	b.Set(nameKey(prefixInboxMeta, user), binary.BigEndian.AppendUint64(nil, base), nil)
	return int(last - first + 1), base, nil
}

// readDevices adds to b the removal of user's devices last seen before
// before (unless it is zero) and notes what the others say in st; st.mu
// held.
func (s *Store) readDevices(b *pebble.Batch, st *seqState, user string, before time.Time) error {
	var acked uint64
	var seen time.Time
	known := false
	devices := seqPrefix(prefixDevice, user)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: devices, UpperBound: upperBound(devices)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if d, ok := decodeDevice(it.Value()); ok {
			if !before.IsZero() && d.seen.Before(before) {
				b.Delete(it.Key(), nil)
				continue
			}
			if !known || d.acked < acked {
				acked = d.acked
			}
			if !known || d.seen.Before(seen) {
				seen = d.seen
			}
			known = true
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	st.devicesKnown, st.anyDevice, st.minAcked, st.minSeen = true, known, acked, instantOf(seen)
	return nil
}

// sizeInbox counts user's kept records and their bytes once, for Expire,
// and notes the oldest; st.mu held.
func (s *Store) sizeInbox(st *seqState, user string) error {
	if st.sized {
		return nil
	}
	prefix := seqPrefix(prefixInbox, user)
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: prefix,
		UpperBound: binary.BigEndian.AppendUint64(slices.Clip(prefix), st.durable+1),
	})
	if err != nil {
		return err
	}
	count, bytes := 0, int64(0)
	var head uint64
	var headAt time.Time
	for ok := it.First(); ok; ok = it.Next() {
		if count == 0 {
			if len(it.Value()) < 8 {
				it.Close()
				return fmt.Errorf("damaged record at %d", seqOf(it.Key()))
			}
			head, headAt = seqOf(it.Key()), decodeTime(it.Value())
		}
		count++
		bytes += int64(max(len(it.Value())-8, 0))
	}
	if err := it.Close(); err != nil {
		return err
	}
	st.sized, st.sizedTop, st.count, st.bytes = true, st.durable, count, bytes
	st.headKnown, st.headSeq, st.headAt = true, head, instantOf(headAt)
	return nil
}
