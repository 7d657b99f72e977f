package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/heraldpush/herald/internal/store"
)

// Escalated implements store.Escalations.
func (s *Store) Escalated(ctx context.Context, user string, limit int) (uint64, []store.Record, error) {
	if limit <= 0 {
		return 0, nil, store.ErrInvalidLimit
	}
	if err := s.enterName(ctx, user); err != nil {
		return 0, nil, err
	}
	what := "escalations of " + user
	msgs, err := s.run(ctx, escalatedScript, s.userBase(user), strconv.Itoa(limit)).ToArray()
	if err != nil || len(msgs) != 2 {
		return 0, nil, errorf(what, fmt.Errorf("malformed answer: %v", err))
	}
	pos, _ := msgs[0].AsUint64()
	entries, err := msgs[1].ToArray()
	if err != nil {
		return 0, nil, errorf(what, err)
	}
	recs, err := parseEntries(entries)
	if err != nil {
		return 0, nil, errorf(what, err)
	}
	return pos, recs, nil
}

// SetEscalated implements store.Escalations; how durable the position is
// depends on Redis's persistence settings, as for every write.
func (s *Store) SetEscalated(ctx context.Context, user string, from, seq uint64) (bool, error) {
	if err := s.enterName(ctx, user); err != nil {
		return false, err
	}
	text := strconv.FormatUint(seq, 10)
	msgs, err := s.run(ctx, setEscalatedScript, s.userBase(user), strconv.FormatUint(from, 10), text).AsIntSlice()
	if err != nil || len(msgs) != 2 {
		return false, errorf("set escalation position of "+user, fmt.Errorf("malformed answer: %v", err))
	}
	if msgs[0] == codeBeyond {
		return false, fmt.Errorf("%w: %s is above %d", store.ErrAckBeyondEnd, text, msgs[1])
	}
	return msgs[1] == 1, nil
}
