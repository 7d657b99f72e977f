package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/store"
)

// idemKey holds the result remembered under key: a hash of t (when
// stored), h (the body hash) and r (the result).
func (s *Store) idemKey(key string) string { return s.prefix + ":{k:" + key + "}" }

// idemIndex lists the keys by the millisecond their result was stored,
// for ForgetBefore.
func (s *Store) idemIndex() string { return s.prefix + ":idem" }

// Remember implements store.Idempotency: one script checks and stores, so
// concurrent calls with one key store once.
func (s *Store) Remember(ctx context.Context, key string, bodyHash, result []byte, now time.Time, window time.Duration) ([]byte, bool, error) {
	if err := s.enterName(ctx, key); err != nil {
		return nil, false, err
	}
	what := fmt.Sprintf("remember %q", key)
	msgs, err := rememberScript.Exec(ctx, s.client, []string{s.idemKey(key)},
		[]string{encodeTime(now), encodeTime(now.Add(-window)), rueidis.BinaryString(bodyHash), rueidis.BinaryString(result)}).ToArray()
	if err != nil || len(msgs) == 0 {
		return nil, false, errorf(what, fmt.Errorf("malformed answer: %v", err))
	}
	switch code, _ := msgs[0].AsInt64(); code {
	case 0:
		prev, err := msgs[1].AsBytes()
		if err != nil {
			return nil, false, errorf(what, err)
		}
		return prev, false, nil
	case 2:
		return nil, false, fmt.Errorf("%w: %q", store.ErrIdempotencyConflict, key)
	}
	ms := float64(now.UnixMilli())
	if err := s.client.Do(ctx, s.client.B().Zadd().Key(s.idemIndex()).ScoreMember().ScoreMember(ms, key).Build()).Error(); err != nil {
		return nil, false, errorf(what, err)
	}
	return append([]byte(nil), result...), true, nil
}

// Forget implements store.Idempotency.
func (s *Store) Forget(ctx context.Context, key string) error {
	if err := s.enterName(ctx, key); err != nil {
		return err
	}
	if err := s.client.Do(ctx, s.client.B().Del().Key(s.idemKey(key)).Build()).Error(); err != nil {
		return errorf(fmt.Sprintf("forget %q", key), err)
	}
	return nil
}

// ForgetBefore implements store.Idempotency. The index gives the keys
// stored up to before's millisecond; each is checked to the nanosecond
// and dropped by a script on its own slot, then leaves the index unless
// it was stored again meanwhile.
func (s *Store) ForgetBefore(ctx context.Context, before time.Time) (int, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	const page = 500
	limit := strconv.FormatInt(before.UnixMilli(), 10)
	dropped := 0
	for {
		kv, err := s.client.Do(ctx, s.client.B().Zrangebyscore().Key(s.idemIndex()).Min("-inf").Max(limit).Withscores().Limit(0, page).Build()).AsZScores()
		if err != nil {
			return dropped, errorf("forget keys", err)
		}
		for _, z := range kv {
			n, err := forgetOldScript.Exec(ctx, s.client, []string{s.idemKey(z.Member)}, []string{encodeTime(before)}).AsInt64()
			if err != nil {
				return dropped, errorf("forget keys", err)
			}
			dropped += int(n)
			exists, err := s.client.Do(ctx, s.client.B().Exists().Key(s.idemKey(z.Member)).Build()).AsInt64()
			if err != nil {
				return dropped, errorf("forget keys", err)
			}
			if exists == 0 {
				score := strconv.FormatFloat(z.Score, 'f', -1, 64)
				if err := unindexScript.Exec(ctx, s.client, []string{s.idemIndex()}, []string{z.Member, score}).Error(); err != nil {
					return dropped, errorf("forget keys", err)
				}
			}
		}
		if len(kv) < page {
			return dropped, nil
		}
		// Keys still held (stored again meanwhile) stay in the index:
		// stop rather than read them again and again.
		if dropped == 0 {
			return 0, nil
		}
	}
}
