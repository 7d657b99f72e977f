package bench

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"
)

// runFanout subscribes the clients to one channel, then publishes Messages
// messages to it; every subscriber must receive every message. The
// measured phase runs from the first publish to the last delivery (one
// phase per round).
func (r *runner) runFanout(ctx context.Context) {
	o := r.o
	l := r.prepareFanout(ctx)
	if l == nil {
		return
	}
	var stalled []*client
	if o.Stalled > 0 {
		stalled = r.openStalled(ctx, o.Stalled)
		r.res.Stalled = &Stalled{Connections: int64(len(stalled))}
		if s, ok := r.sampleProc(); ok {
			r.res.Stalled.RSSBeforeBytes = s.RSSBytes
		}
	}
	stopSampling := make(chan struct{})
	peak := r.sampleRSSPeak(stopSampling)
	r.rounds(ctx, l)
	close(stopSampling)
	if st := r.res.Stalled; st != nil {
		st.RSSPeakBytes = <-peak
		st.Dropped = reapStalled(stalled)
		time.Sleep(memorySettle)
		if s, ok := r.sampleProc(); ok {
			st.RSSAfterBytes = s.RSSBytes
		}
	}
	r.endLoad(l)
}

// prepareFanout subscribes the clients and connects the publisher; it
// returns nil when there is nothing to publish to.
func (r *runner) prepareFanout(ctx context.Context) *load {
	o := r.o
	r.measureConnect(ctx, "subscribing", o.everyClient(only(o.Channel)))
	subscribers := int64(len(r.fleet.snapshot()))
	if subscribers == 0 || ctx.Err() != nil {
		return nil
	}
	pub, err := r.newPublisher(ctx)
	if err != nil {
		r.res.fail("%v", err)
		return nil
	}
	return &load{
		send:       func(ctx context.Context, k int) { pub.publish(ctx, k, o.Rate, nil) },
		counts:     pub.counts,
		perMessage: subscribers,
		sends:      1,
	}
}

// newPublisher returns the publisher Via asks for. Client publishers
// connect now, as connections number Clients and up, each as its own user
// (a user's connections are bounded).
func (r *runner) newPublisher(ctx context.Context) (publisher, error) {
	o := r.o
	if o.Via == ViaAPI {
		r.res.Publisher = ViaAPI
		return &apiPublisher{api: r.sendAPI, channel: o.Channel, size: o.Size, concurrency: o.APIConcurrency, batch: o.PublishBatch, errs: &r.sink.errs}, nil
	}
	r.res.Publisher = ViaClient
	var handshakes atomic.Int64 // the publishers are not among the clients counted
	op := r.publisherOpener()
	ps := make(publishers, o.Publishers)
	for i := range ps {
		user := publisherUser
		if i > 0 {
			user += "-" + strconv.Itoa(i+1)
		}
		p, err := newClientPublisher(ctx, op, r.aux, o.Clients+i, user, o.Channel, o.Size, o.Window, &handshakes)
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	if len(ps) == 1 {
		return ps[0], nil
	}
	return ps, nil
}
