package embedded

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldpush/herald/internal/store"
)

// escalated reads user's escalation position; st.mu held.
func (s *Store) escalated(user string) (uint64, error) {
	v, err := s.get(nameKey(prefixEscalated, user))
	if err != nil || len(v) < 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(v), nil
}

// Escalated implements store.Escalations.
func (s *Store) Escalated(ctx context.Context, user string, limit int) (uint64, []store.Record, error) {
	if limit <= 0 {
		return 0, nil, store.ErrInvalidLimit
	}
	st, exit, err := s.user(ctx, user)
	if err != nil {
		return 0, nil, err
	}
	defer exit()
	top := st.durable
	pos, err := s.escalated(user)
	st.mu.Unlock()
	if err != nil {
		return 0, nil, fmt.Errorf("escalation position of %s: %w", user, err)
	}
	recs, err := s.readSeq(seqPrefix(prefixInbox, user), store.Range{From: pos + 1, Limit: limit}, top)
	if err != nil {
		return 0, nil, fmt.Errorf("escalations of %s: %w", user, err)
	}
	return pos, recs, nil
}

// SetEscalated implements store.Escalations. The user's lock is held
// while the position is read and written, not while it syncs, as in Push.
func (s *Store) SetEscalated(ctx context.Context, user string, from, seq uint64) (bool, error) {
	st, exit, err := s.user(ctx, user)
	if err != nil {
		return false, err
	}
	defer exit()
	pos, err := s.escalated(user)
	switch {
	case err != nil:
		st.mu.Unlock()
		return false, fmt.Errorf("escalation position of %s: %w", user, err)
	case seq > st.durable:
		st.mu.Unlock()
		return false, fmt.Errorf("%w: %d is above %d", store.ErrAckBeyondEnd, seq, st.durable)
	case pos != from || seq <= pos:
		st.mu.Unlock()
		return false, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	b.Set(nameKey(prefixEscalated, user), binary.BigEndian.AppendUint64(nil, seq), nil)
	err = s.db.ApplyNoSyncWait(b, pebble.Sync)
	st.mu.Unlock()
	if err == nil {
		err = b.SyncWait()
	}
	if err != nil {
		return false, fmt.Errorf("set escalation position of %s: %w", user, err)
	}
	return true, nil
}
