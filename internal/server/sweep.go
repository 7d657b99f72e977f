package server

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/rediskey"
)

// sweepInterval is how often every channel's history and every inbox is
// held to its bounds, beyond what publishing and connecting do as they
// go: a channel nobody publishes to and a user who never comes back must
// still lose what is past its age.
const sweepInterval = 10 * time.Minute

// sweepPage is how many names one store listing returns.
const sweepPage = 500

// sweep trims histories and expires inboxes every sweepInterval until ctx
// ends.
func (s *Server) sweep(ctx context.Context) {
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// The claim is held for most of the interval: the next one,
			// by any node, comes with the next tick.
			if s.sweepTurn(ctx, s.sweepEvery*9/10) {
				s.sweepOnce(ctx)
			}
		}
	}
}

// sweepTurn says whether this node sweeps now: always alone; in a
// cluster, the node that first claims the sweep in Redis, for hold, so
// that the nodes do not all go through the same store at once. A node
// that cannot reach Redis does not sweep.
func (s *Server) sweepTurn(ctx context.Context, hold time.Duration) bool {
	if s.cluster == nil {
		return true
	}
	c := s.cluster.client
	key := rediskey.Nodes(s.cfg.RedisPrefix) + ":sweep"
	err := c.Do(ctx, c.B().Set().Key(key).Value(s.nodeID).Nx().Px(hold).Build()).Error()
	switch {
	case err == nil:
		return true
	case rueidis.IsRedisNil(err):
		return false
	}
	s.logSweepError(ctx, "claim the sweep", err)
	return false
}

// sweepOnce goes once through every channel and every user the store
// holds, then drops the idempotency keys past their window. A channel
// whose namespace keeps no history (any more) loses it all.
func (s *Server) sweepOnce(ctx context.Context) {
	start := time.Now()
	channels, trimmed, err := sweepNames(ctx, s.store.Channels, func(ch string) (int, error) {
		size, ttl := s.policy.rule(ch).History()
		return s.store.Trim(ctx, ch, size, time.Now().Add(-ttl))
	})
	if err != nil {
		s.logSweepError(ctx, "trim histories", err)
		return
	}
	users, expired, err := sweepNames(ctx, s.store.Users, func(u string) (int, error) {
		return s.store.Expire(ctx, u, s.inboxLimits())
	})
	if err != nil {
		s.logSweepError(ctx, "expire inboxes", err)
		return
	}
	keys, err := s.store.ForgetBefore(ctx, time.Now().Add(-s.cfg.IdempotencyWindow))
	if err != nil {
		s.logSweepError(ctx, "forget idempotency keys", err)
		return
	}
	s.log.Debug("swept the store", "channels", channels, "users", users, "dropped", trimmed+expired, "idempotency_keys", keys, "took", time.Since(start))
}

// sweepNames calls drop on every name list gives, a page at a time, and
// returns how many names there were and how many records drop dropped.
func sweepNames(ctx context.Context, list func(ctx context.Context, after string, limit int) ([]string, error), drop func(name string) (int, error)) (names, dropped int, err error) {
	for after := ""; ; {
		page, err := list(ctx, after, sweepPage)
		if err != nil {
			return names, dropped, err
		}
		for _, name := range page {
			n, err := drop(name)
			if err != nil {
				return names, dropped, fmt.Errorf("%s: %w", name, err)
			}
			dropped += n
		}
		names += len(page)
		if len(page) < sweepPage {
			return names, dropped, nil
		}
		after = page[len(page)-1]
	}
}

func (s *Server) logSweepError(ctx context.Context, what string, err error) {
	if ctx.Err() == nil {
		s.log.Warn("sweep the store: "+what, "err", err)
	}
}
