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
// delivery.
func (r *runner) runDirect(ctx context.Context) {
	o := r.o
	r.measureConnect(ctx, "connecting", connectSpec{
		count:   o.Clients,
		user:    o.user,
		channel: func(string) string { return "" },
	})
	clients := r.fleet.snapshot()
	if len(clients) == 0 || ctx.Err() != nil {
		return
	}
	r.res.Publisher = ViaAPI
	users := make([]string, len(clients))
	for i, c := range clients {
		users[i] = o.user(c.n)
	}
	expected := int64(len(users)) * int64(o.Messages)
	r.sink.expect(expected)
	s := &directSender{api: r.api, users: users, batch: o.Batch, rounds: o.Messages, size: o.Size, errs: &r.sink.errs}
	sendStart := r.deliveryPhase(ctx, expected, func() { s.run(ctx, o.APIConcurrency, o.Rate) }, s.sent.Load)
	r.res.Sent, r.res.APICalls = s.sent.Load(), s.calls.Load()
	r.res.SendErrors = expected - r.res.Sent
	r.res.Dropped = r.fleet.dropped()
	r.recordDeliveries(sendStart, expected, int64(o.Messages))
}

// directSender sends rounds messages to every user through the API, in
// calls of batch recipients.
type directSender struct {
	api    *apiClient
	users  []string
	batch  int
	rounds int
	size   int
	errs   *errorLog

	sent, calls atomic.Int64 // messages (per recipient) accepted; API calls made
}

// run makes every call, concurrency at a time and at most perSecond calls a
// second (0: no limit).
func (s *directSender) run(ctx context.Context, concurrency int, perSecond float64) {
	chunks := (len(s.users) + s.batch - 1) / s.batch
	jobs := int64(chunks) * int64(s.rounds)
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
