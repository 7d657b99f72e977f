package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// settleTimeout bounds the wait, after churn, for the server's connection
// count to return to where it was.
const settleTimeout = 5 * time.Second

// runChurn runs Cycles connect/subscribe/disconnect cycles, Concurrency at
// a time (and at most ConnectRate new ones a second), while a publisher
// publishes on the channel at Rate. With a server pid it reads the server's
// memory, threads and (if exposed) goroutines before and after, so that
// leaks show.
func (r *runner) runChurn(ctx context.Context) {
	o := r.o
	r.res.StatsBefore = r.serverStats(ctx)
	before, okBefore := r.sampleProc()
	r.fillGoroutines(ctx, true)

	pub, err := r.newPublisher(ctx)
	if err != nil {
		r.res.fail("%v", err)
		return
	}
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		pub.publish(ctx, 0, o.Rate, stop)
	}()

	var completed, failed atomic.Int64
	var elapsed time.Duration
	r.measuredPhase(func() {
		start := time.Now()
		bar := startProgress(r.progress, "churning", int64(o.Cycles), "cycles",
			func() int64 { return completed.Load() + failed.Load() })
		r.cycles(ctx, &completed, &failed)
		elapsed = time.Since(start)
		bar.Stop(completed.Load() + failed.Load())
	})
	close(stop)
	<-pubDone

	sent, pubFailed, calls := pub.counts()
	r.res.Sent, r.res.SendErrors, r.res.APICalls = sent, pubFailed, calls
	r.res.DeliveriesReceived = r.sink.delivered.Load()
	r.res.Churn = &Churn{
		Cycles:    o.Cycles,
		Completed: completed.Load(),
		Failed:    failed.Load(),
		Seconds:   elapsed.Seconds(),
	}
	if elapsed > 0 {
		r.res.Churn.CyclesPerSecond = float64(completed.Load()) / elapsed.Seconds()
	}
	if r.res.Churn.Completed < int64(o.Cycles) {
		r.res.fail("%d of %d churn cycles completed", r.res.Churn.Completed, o.Cycles)
	}

	r.res.StatsAfter = r.settle(ctx, r.res.StatsBefore)
	after, okAfter := r.sampleProc()
	r.fillGoroutines(ctx, false)
	if p := r.res.Process; p != nil && okBefore && okAfter {
		p.recordMemory(before, after)
	}
}

// cycles runs the churn workers until every cycle ran or ctx ended.
func (r *runner) cycles(ctx context.Context, completed, failed *atomic.Int64) {
	o := r.o
	limiter := newLimiter(o.ConnectRate)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(o.Concurrency, o.Cycles) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := int(next.Add(1) - 1)
				if n >= o.Cycles {
					return
				}
				if limiter != nil && limiter.Wait(ctx) != nil {
					return
				}
				c, err := r.op.open(ctx, n, o.user(n), o.Channel, &r.handshakes)
				if err != nil {
					failed.Add(1)
					if ctx.Err() == nil {
						r.sink.errs.add("churn cycle", err)
					}
					continue
				}
				c.close(false)
				completed.Add(1)
			}
		}()
	}
	wg.Wait()
	r.res.Connections = r.handshakes.Load()
	r.res.ConnectErrors = failed.Load()
}

// serverStats reads GET /v1/stats, nil when the API does not answer.
func (r *runner) serverStats(ctx context.Context) *ServerStats {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := r.api.stats(ctx)
	if err != nil {
		return nil
	}
	return &s
}

// settle waits up to settleTimeout for the server to count no more
// connections than before (the churned ones closed), and returns the last
// stats read.
func (r *runner) settle(ctx context.Context, before *ServerStats) *ServerStats {
	if before == nil {
		return nil
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		// The publisher is closed last, so it still counts here.
		s := r.serverStats(ctx)
		if s == nil || s.Connections <= before.Connections+r.publisherConns() || time.Now().After(deadline) || ctx.Err() != nil {
			return s
		}
		select {
		case <-ctx.Done():
			return s
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// publisherConns is the connections the run's publisher holds.
func (r *runner) publisherConns() int { return len(r.aux.snapshot()) }
