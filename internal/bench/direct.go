package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// runDirect connects the clients as distinct users and sends each of them
// Messages direct messages through POST /v1/send: one call per message when
// Batch is 1, else Batch recipients per call. Every user must receive every
// message. The measured phase runs from the first call to the last
// delivery (one phase per round).
func (r *runner) runDirect(ctx context.Context) {
	if l := r.prepareDirect(ctx); l != nil {
		r.rounds(ctx, l)
		r.endLoad(l)
	}
}

// prepareDirect connects the users; it returns nil when none connected.
func (r *runner) prepareDirect(ctx context.Context) *load {
	o := r.o
	r.measureConnect(ctx, "connecting", o.everyClient(only("")))
	clients := r.fleet.snapshot()
	if len(clients) == 0 || ctx.Err() != nil {
		return nil
	}
	r.res.Publisher = ViaAPI
	users := make([]string, len(clients))
	for i, c := range clients {
		users[i] = o.user(c.n)
	}
	s := &directSender{api: r.sendAPI, users: users, batch: o.Batch, size: o.Size, errs: &r.sink.errs}
	return &load{
		send:       func(ctx context.Context, k int) { s.run(ctx, k, o.APIConcurrency, o.Rate) },
		counts:     s.counts,
		perMessage: int64(len(users)),
		sends:      int64(len(users)),
	}
}

// directSender sends messages to every user through the API, in calls of
// batch recipients.
type directSender struct {
	api   *apiClient
	users []string
	batch int
	size  int
	errs  *errorLog

	sent, failed, calls atomic.Int64 // messages (per recipient) accepted and refused; API calls made
}

// counts returns the messages (per recipient) accepted and refused, and
// the API calls made.
func (s *directSender) counts() (sent, failed, calls int64) {
	return s.sent.Load(), s.failed.Load(), s.calls.Load()
}

// run sends rounds messages to every user, concurrency calls at a time and
// at most perSecond calls a second (0: no limit).
func (s *directSender) run(ctx context.Context, rounds, concurrency int, perSecond float64) {
	chunks := (len(s.users) + s.batch - 1) / s.batch
	jobs := int64(chunks) * int64(rounds)
	limiter := newLimiter(perSecond)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(int64(concurrency), jobs) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pl := newPayload(s.size)
			for ctx.Err() == nil {
				j := next.Add(1) - 1
				if j >= jobs {
					return
				}
				if limiter != nil && limiter.Wait(ctx) != nil {
					return
				}
				// Rounds go one after another: every user gets message k
				// before anyone gets message k+1 (up to concurrency).
				k := int(j % int64(chunks))
				users := s.users[k*s.batch : min((k+1)*s.batch, len(s.users))]
				s.calls.Add(1)
				if err := s.api.send(ctx, users, s.batch > 1, pl.stamp(time.Now().UnixNano())); err != nil {
					s.failed.Add(int64(len(users)))
					if ctx.Err() == nil {
						s.errs.add("send", err)
					}
					continue
				}
				s.sent.Add(int64(len(users)))
			}
		}()
	}
	wg.Wait()
}
