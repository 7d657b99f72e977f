package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldpush/herald/internal/store"
)

// Remember implements store.Idempotency. Keys are locked in stripes so
// that the check and the write are one step for each key.
func (s *Store) Remember(ctx context.Context, key string, bodyHash, result []byte, now time.Time, window time.Duration) ([]byte, bool, error) {
	if err := validName(key); err != nil {
		return nil, false, err
	}
	if len(bodyHash) > 255 {
		return nil, false, fmt.Errorf("remember %q: body hash longer than 255 bytes", key)
	}
	exit, err := s.enter(ctx)
	if err != nil {
		return nil, false, err
	}
	defer exit()
	mu := &s.keys[maphash.String(s.seed, key)%uint64(len(s.keys))]
	mu.Lock()
	defer mu.Unlock()

	k := nameKey(prefixIdempotency, key)
	v, err := s.get(k)
	if err != nil {
		return nil, false, fmt.Errorf("remember %q: %w", key, err)
	}
	if len(v) >= 9 && len(v) >= 9+int(v[8]) {
		at := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		if now.Sub(at) < window {
			hash, prev := v[9:9+int(v[8])], v[9+int(v[8]):]
			if !bytes.Equal(hash, bodyHash) {
				return nil, false, fmt.Errorf("%w: %q", store.ErrIdempotencyConflict, key)
			}
			return prev, false, nil
		}
	}
	nv := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
	nv = append(nv, byte(len(bodyHash)))
	nv = append(nv, bodyHash...)
	nv = append(nv, result...)
	if err := s.db.Set(k, nv, pebble.Sync); err != nil {
		return nil, false, fmt.Errorf("remember %q: %w", key, err)
	}
	return append([]byte(nil), result...), true, nil
}

// Forget implements store.Idempotency.
func (s *Store) Forget(ctx context.Context, key string) error {
	if err := validName(key); err != nil {
		return err
	}
	exit, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer exit()
	mu := &s.keys[maphash.String(s.seed, key)%uint64(len(s.keys))]
	mu.Lock()
	defer mu.Unlock()
	if err := s.db.Delete(nameKey(prefixIdempotency, key), pebble.Sync); err != nil {
		return fmt.Errorf("forget %q: %w", key, err)
	}
	return nil
}

// ForgetBefore implements store.Idempotency. Each key is checked again
// under its stripe's lock, so that a key remembered anew meanwhile stays.
// The deletes are not synced: one lost in a crash is done again by the
// next call.
func (s *Store) ForgetBefore(ctx context.Context, before time.Time) (int, error) {
	exit, err := s.enter(ctx)
	if err != nil {
		return 0, err
	}
	defer exit()
	prefix := []byte(prefixIdempotency)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
	if err != nil {
		return 0, fmt.Errorf("forget keys: %w", err)
	}
	var old []string
	for ok := it.First(); ok; ok = it.Next() {
		if v := it.Value(); len(v) >= 8 && decodeTime(v).Before(before) {
			old = append(old, string(it.Key()[len(prefix):]))
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("forget keys: %w", err)
	}
	dropped := 0
	for _, key := range old {
		if ctx.Err() != nil {
			return dropped, ctx.Err()
		}
		mu := &s.keys[maphash.String(s.seed, key)%uint64(len(s.keys))]
		mu.Lock()
		k := nameKey(prefixIdempotency, key)
		v, err := s.get(k)
		if err == nil && len(v) >= 8 && decodeTime(v).Before(before) {
			err = s.db.Delete(k, pebble.NoSync)
			dropped++
		}
		mu.Unlock()
		if err != nil {
			return dropped, fmt.Errorf("forget key %q: %w", key, err)
		}
	}
	return dropped, nil
}
