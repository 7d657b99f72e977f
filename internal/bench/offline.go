package bench

import (
	"context"
	"time"
)

// runOffline connects the clients, each subscribed to its personal
// channel user:<user>, waits until the hook receiver has every user's
// user.online, then closes every connection at once and waits for every
// user.offline. The measured phase runs from the first close to the last
// user.offline (or Drain without one).
func (r *runner) runOffline(ctx context.Context) {
	r.measureConnect(ctx, "connecting", r.o.everyClient(func(user string) string { return "user:" + user }))
	users := int64(len(r.fleet.snapshot()))
	if users == 0 || ctx.Err() != nil {
		return
	}
	h := r.hooks
	before := h.count(eventOnline).events
	if !h.await(ctx, eventOnline, users, r.o.Drain) {
		r.res.fail("%d of %d user.online events arrived", h.count(eventOnline).events-before, users)
		return
	}
	off := &Offline{Users: users}
	r.res.Offline = off
	start := time.Now()
	r.measuredPhase(func() {
		r.fleet.closeAll()
		off.CloseSeconds = time.Since(start).Seconds()
		h.await(ctx, eventOffline, users, r.o.Drain)
	})
	c := h.count(eventOffline)
	off.Events, off.Posts = c.events, c.posts
	if c.events > 0 {
		off.FirstSeconds = c.first.Sub(start).Seconds()
		off.LastSeconds = c.last.Sub(start).Seconds()
	}
	if c.events < users {
		r.res.fail("%d of %d user.offline events arrived", c.events, users)
	}
}
