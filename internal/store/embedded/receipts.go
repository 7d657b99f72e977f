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

// Delivered implements store.Receipts.
func (s *Store) Delivered(ctx context.Context, user, device string, seq uint64, at time.Time) error {
	return s.deviceOp(ctx, "delivered to", user, device, func(st *seqState, d *deviceRecord, b *pebble.Batch) (bool, error) {
		if seq > st.durable {
			return false, fmt.Errorf("%w: delivered %d is above %d", store.ErrAckBeyondEnd, seq, st.durable)
		}
		if !d.known || seq > d.delivered {
			return false, s.advance(b, prefixDeliverMark, user, device, d, st.base, seq, at)
		}
		return false, nil
	})
}

// Seen implements store.Inbox.
func (s *Store) Seen(ctx context.Context, user, device string, at time.Time) error {
	return s.deviceOp(ctx, "seen", user, device, func(st *seqState, d *deviceRecord, b *pebble.Batch) (bool, error) {
		return false, s.advance(b, prefixDeliverMark, user, device, d, st.base, d.delivered, at)
	})
}

// Receipt implements store.Receipts.
func (s *Store) Receipt(ctx context.Context, id string) (store.Receipt, error) {
	if err := validName(id); err != nil {
		return store.Receipt{}, err
	}
	r, err := s.lookupID(ctx, id)
	if err != nil {
		return store.Receipt{}, err
	}
	// Under the user's lock, so that no Expire drops half of it meanwhile.
	st, exit, err := s.user(ctx, r.User)
	if err != nil {
		return store.Receipt{}, err
	}
	defer exit()
	defer st.mu.Unlock()
	v, err := s.get(nameKey(prefixMessageID, id))
	if err != nil {
		return store.Receipt{}, fmt.Errorf("receipt of %s: %w", id, err)
	}
	if v == nil || r.Seq > st.durable {
		return store.Receipt{}, fmt.Errorf("%w: message %s", store.ErrNotFound, id)
	}
	var devices []string
	for _, p := range [][]byte{seqPrefix(prefixDevice, r.User), seqPrefix(prefixAckMark, r.User), seqPrefix(prefixDeliverMark, r.User)} {
		names, err := s.names(p, "", 0)
		if err != nil {
			return store.Receipt{}, fmt.Errorf("receipt of %s: %w", id, err)
		}
		devices = append(devices, names...)
	}
	slices.Sort(devices)
	for _, device := range slices.Compact(devices) {
		dr, known, err := s.deviceReceipt(r.User, device, r.Seq)
		if err != nil {
			return store.Receipt{}, fmt.Errorf("receipt of %s: %w", id, err)
		}
		if known || !dr.Delivered.IsZero() {
			r.Devices = append(r.Devices, dr)
		}
	}
	return r, nil
}

// lookupID reads the index entry of message id.
func (s *Store) lookupID(ctx context.Context, id string) (store.Receipt, error) {
	exit, err := s.enter(ctx)
	if err != nil {
		return store.Receipt{}, err
	}
	defer exit()
	v, err := s.get(nameKey(prefixMessageID, id))
	if err != nil {
		return store.Receipt{}, fmt.Errorf("receipt of %s: %w", id, err)
	}
	if v == nil {
		return store.Receipt{}, fmt.Errorf("%w: message %s", store.ErrNotFound, id)
	}
	if len(v) < 16 {
		return store.Receipt{}, fmt.Errorf("receipt of %s: damaged index entry", id)
	}
	return store.Receipt{ID: id, User: string(v[16:]), Seq: binary.BigEndian.Uint64(v[8:]), Accepted: decodeTime(v)}, nil
}

// deviceReceipt returns when device got message seq, and whether the device
// is known; the user's st.mu held.
func (s *Store) deviceReceipt(user, device string, seq uint64) (store.DeviceReceipt, bool, error) {
	dr := store.DeviceReceipt{Device: device}
	v, err := s.get(deviceKey(user, device))
	if err != nil {
		return dr, false, err
	}
	if dr.Acked, err = s.covering(prefixAckMark, user, device, seq); err != nil {
		return dr, false, err
	}
	if dr.Delivered, err = s.covering(prefixDeliverMark, user, device, seq); err != nil {
		return dr, false, err
	}
	if dr.Delivered.IsZero() {
		dr.Delivered = dr.Acked
	}
	return dr, v != nil, nil
}

// covering returns the time of the mark of device that covers seq, or the
// zero time.
func (s *Store) covering(prefix, user, device string, seq uint64) (time.Time, error) {
	marks := markPrefix(prefix, user, device)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: markKey(prefix, user, device, seq), UpperBound: upperBound(marks)})
	if err != nil {
		return time.Time{}, err
	}
	var at time.Time
	if it.First() {
		if v := it.Value(); len(v) >= 16 && binary.BigEndian.Uint64(v[8:]) <= seq {
			at = decodeTime(v)
		}
	}
	return at, it.Close()
}

// expireReceipts adds to b the removal of the receipts of user's messages
// up to base accepted before before, and returns the lowest sequence whose
// receipt is kept (or the one after the last assigned); st.mu held.
func (s *Store) expireReceipts(b *pebble.Batch, st *seqState, user string, base uint64, before time.Time) (uint64, error) {
	if st.rcptFloor > base || (st.rcptFloor != 0 && !st.rcptFloorAt.before(before)) {
		// The oldest receipt is of a message still in the inbox, or
		// younger than the retention: none can go.
		return st.rcptFloor, nil
	}
	prefix := seqPrefix(prefixReceipt, user)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
	if err != nil {
		return 0, err
	}
	keep, first := st.next+1, uint64(0)
	for ok := it.First(); ok; ok = it.Next() {
		seq, v := seqOf(it.Key()), it.Value()
		if first == 0 {
			first = seq
		}
		if seq > base || len(v) < 8 || !decodeTime(v).Before(before) {
			keep = seq
			if len(v) >= 8 {
				st.rcptKeepAt = instantOf(decodeTime(v))
			}
			break
		}
		b.Delete(nameKey(prefixMessageID, string(v[8:])), nil)
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	if first != 0 && first < keep {
		if err := s.deleteKeys(b, seqKey(prefixReceipt, user, first), seqKey(prefixReceipt, user, keep)); err != nil {
			return 0, err
		}
	}
	return keep, nil
}

// pruneMarks adds to b the removal of user's marks below keep: a receipt
// at or above keep needs only marks at or above it.
func (s *Store) pruneMarks(b *pebble.Batch, user string, keep uint64) error {
	for _, p := range []string{prefixAckMark, prefixDeliverMark} {
		devices, err := s.names(seqPrefix(p, user), "", 0)
		if err != nil {
			return err
		}
		for _, device := range devices {
			if err := s.deleteKeys(b, markPrefix(p, user, device), markKey(p, user, device, keep)); err != nil {
				return err
			}
		}
	}
	return nil
}
