package bench

import (
	"context"
	"time"
)

// runIdle connects the clients, each subscribed to its personal channel
// user:<user>, and holds them for Hold, answering the server's pings. The
// measured phase is the hold.
func (r *runner) runIdle(ctx context.Context) {
	r.measureConnect(ctx, "connecting", r.o.everyClient(func(user string) string { return "user:" + user }))
	r.measuredPhase(func() { r.hold(ctx) })
	r.res.Dropped = r.fleet.dropped()
	r.fillGoroutines(ctx, false)
}

// hold waits for Hold or until ctx ends, showing the seconds held.
func (r *runner) hold(ctx context.Context) {
	start := time.Now()
	secs := int64(r.o.Hold / time.Second)
	bar := startProgress(r.progress, "holding", secs, "", func() int64 { return int64(time.Since(start) / time.Second) })
	t := time.NewTimer(r.o.Hold)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	bar.Stop(int64(time.Since(start) / time.Second))
}
