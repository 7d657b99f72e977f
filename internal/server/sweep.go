package server

import (
	"context"
	"time"
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
			s.sweepOnce(ctx)
		}
	}
}

// sweepOnce goes once through every channel and every user the store
// holds, then drops the idempotency keys past their window. A channel
// whose namespace keeps no history (any more) loses it all.
func (s *Server) sweepOnce(ctx context.Context) {
	start := time.Now()
	var channels, users, dropped int
	for after := ""; ; {
		names, err := s.store.Channels(ctx, after, sweepPage)
		if err != nil {
			s.logSweepError(ctx, "list channels", err)
			return
		}
		for _, ch := range names {
			size, ttl := s.policy.rule(ch).History()
			n, err := s.store.Trim(ctx, ch, size, time.Now().Add(-ttl))
			if err != nil {
				s.logSweepError(ctx, "trim history of "+ch, err)
				return
			}
			dropped += n
		}
		channels += len(names)
		if len(names) < sweepPage {
			break
		}
		after = names[len(names)-1]
	}
	for after := ""; ; {
		names, err := s.store.Users(ctx, after, sweepPage)
		if err != nil {
			s.logSweepError(ctx, "list users", err)
			return
		}
		for _, u := range names {
			n, err := s.store.Expire(ctx, u, s.inboxLimits())
			if err != nil {
				s.logSweepError(ctx, "expire inbox of "+u, err)
				return
			}
			dropped += n
		}
		users += len(names)
		if len(names) < sweepPage {
			break
		}
		after = names[len(names)-1]
	}
	keys, err := s.store.ForgetBefore(ctx, time.Now().Add(-s.cfg.IdempotencyWindow))
	if err != nil {
		s.logSweepError(ctx, "forget idempotency keys", err)
		return
	}
	s.log.Debug("swept the store", "channels", channels, "users", users, "dropped", dropped, "idempotency_keys", keys, "took", time.Since(start))
}

func (s *Server) logSweepError(ctx context.Context, what string, err error) {
	if ctx.Err() == nil {
		s.log.Warn("sweep the store: "+what, "err", err)
	}
}
