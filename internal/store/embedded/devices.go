package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldpush/herald/internal/store"
)

// deviceRecord is what the store keeps of one device of a user.
type deviceRecord struct {
	known     bool
	acked     uint64 // every message up to it acknowledged
	delivered uint64 // every message up to it handed to the device
	seen      time.Time
}

func (d deviceRecord) encode() []byte {
	v := binary.BigEndian.AppendUint64(nil, d.acked)
	v = binary.BigEndian.AppendUint64(v, d.delivered)
	return binary.BigEndian.AppendUint64(v, uint64(d.seen.UnixNano()))
}

func decodeDevice(v []byte) (deviceRecord, bool) {
	if len(v) < 24 {
		return deviceRecord{}, false
	}
	return deviceRecord{
		known:     true,
		acked:     binary.BigEndian.Uint64(v),
		delivered: binary.BigEndian.Uint64(v[8:]),
		seen:      decodeTime(v[16:]),
	}, true
}

// device returns the record of device; the user's st.mu held. A device
// never seen starts just before the oldest message kept.
func (s *Store) device(st *seqState, user, device string) (deviceRecord, error) {
	v, err := s.get(deviceKey(user, device))
	if err != nil {
		return deviceRecord{}, err
	}
	if d, ok := decodeDevice(v); ok {
		return d, nil
	}
	first, err := s.firstSeq(seqPrefix(prefixInbox, user), st.durable)
	if err != nil {
		return deviceRecord{}, err
	}
	start := st.durable
	if first != 0 {
		start = first - 1
	}
	return deviceRecord{acked: start, delivered: start}, nil
}

// deviceOp runs op on the record of user's device under the user's lock,
// then commits what op added to the batch, synced when op says so.
func (s *Store) deviceOp(ctx context.Context, what, user, device string, op func(st *seqState, d *deviceRecord, b *pebble.Batch) (sync bool, err error)) error {
	if err := validName(device); err != nil {
		return err
	}
	st, exit, err := s.user(ctx, user)
	if err != nil {
		return err
	}
	defer exit()
	defer st.mu.Unlock()
	d, err := s.device(st, user, device)
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", what, user, device, err)
	}
	// Whatever op changes, Expire reads the devices again.
	st.devicesKnown = false
	b := s.db.NewBatch()
	defer b.Close()
	sync, err := op(st, &d, b)
	if err != nil || b.Empty() {
		return err
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("%s %s/%s: %w", what, user, device, err)
	}
	return nil
}

// advance records in b that device d reached seq (acknowledged or was
// handed up to it, as prefix says) at the time at, writing a mark for the
// messages this covers that are still kept (above base), and moves d. A
// device not known yet becomes known: marks above its start, left from a
// device of the same name forgotten earlier, would claim messages it never
// had, so they go.
func (s *Store) advance(b *pebble.Batch, prefix, user, device string, d *deviceRecord, base, seq uint64, at time.Time) error {
	if !d.known {
		for _, p := range []string{prefixAckMark, prefixDeliverMark} {
			if err := s.deleteKeys(b, markKey(p, user, device, d.acked+1), upperBound(markPrefix(p, user, device))); err != nil {
				return err
			}
		}
		d.known = true
	}
	from := d.delivered
	if prefix == prefixAckMark {
		from = d.acked
	}
	from = max(from, base) + 1
	if seq >= from {
		b.Set(markKey(prefix, user, device, seq), encodeMark(at, from), nil)
	}
	if prefix == prefixAckMark {
		d.acked = max(d.acked, seq)
	}
	d.delivered = max(d.delivered, seq)
	if at.After(d.seen) {
		d.seen = at
	}
	b.Set(deviceKey(user, device), d.encode(), nil)
	return nil
}

// Devices implements store.Inbox.
func (s *Store) Devices(ctx context.Context, user string) ([]store.Device, error) {
	st, exit, err := s.user(ctx, user)
	if err != nil {
		return nil, err
	}
	defer exit()
	defer st.mu.Unlock()
	prefix := seqPrefix(prefixDevice, user)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
	if err != nil {
		return nil, fmt.Errorf("devices of %s: %w", user, err)
	}
	var out []store.Device
	for ok := it.First(); ok; ok = it.Next() {
		if d, ok := decodeDevice(it.Value()); ok {
			out = append(out, store.Device{Name: string(it.Key()[len(prefix):]), Acked: d.acked, Delivered: d.delivered, Seen: d.seen})
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("devices of %s: %w", user, err)
	}
	return out, nil
}
