package bench

import (
	"context"
	"sync/atomic"
	"time"
)

// runFanout subscribes the clients to one channel, then publishes Messages
// messages to it; every subscriber must receive every message. The
// measured phase runs from the first publish to the last delivery.
func (r *runner) runFanout(ctx context.Context) {
	o := r.o
	r.measureConnect(ctx, "subscribing", connectSpec{
		count:   o.Clients,
		user:    o.user,
		channel: func(string) string { return o.Channel },
	})
	subscribers := int64(len(r.fleet.snapshot()))
	if subscribers == 0 || ctx.Err() != nil {
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
	pub, err := r.newPublisher(ctx)
	if err != nil {
		r.res.fail("%v", err)
		return
	}
	expected := subscribers * int64(o.Messages)
	r.sink.expect(expected)
	stopSampling := make(chan struct{})
	peak := r.sampleRSSPeak(stopSampling)
	sendStart := r.deliveryPhase(ctx, expected, func() { pub.publish(ctx, o.Messages, o.Rate, nil) }, func() int64 {
		sent, _, _ := pub.counts()
		return sent
	})
	close(stopSampling)
	if st := r.res.Stalled; st != nil {
		st.RSSPeakBytes = <-peak
		st.Dropped = reapStalled(stalled)
		time.Sleep(memorySettle)
		if s, ok := r.sampleProc(); ok {
			st.RSSAfterBytes = s.RSSBytes
		}
	}
	sent, failed, calls := pub.counts()
	r.res.Sent, r.res.APICalls = sent, calls
	r.res.SendErrors = max(failed, int64(o.Messages)-sent)
	r.res.Dropped = r.fleet.dropped()
	r.recordDeliveries(sendStart, expected, int64(o.Messages))
}

// newPublisher returns the publisher Via asks for. A client publisher
// connects now, as connection number Clients.
func (r *runner) newPublisher(ctx context.Context) (publisher, error) {
	o := r.o
	if o.Via == ViaAPI {
		r.res.Publisher = ViaAPI
		return &apiPublisher{api: r.api, channel: o.Channel, size: o.Size, concurrency: o.APIConcurrency, errs: &r.sink.errs}, nil
	}
	r.res.Publisher = ViaClient
	var handshakes atomic.Int64 // the publisher is not among the clients counted
	return newClientPublisher(ctx, r.op, r.aux, o.Clients, o.Channel, o.Size, o.Window, &handshakes)
}
