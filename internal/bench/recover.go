package bench

import (
	"context"
	"time"
)

// runRecover subscribes the clients to a channel with history and notes
// the position each is given; they leave, Messages messages are published
// (the fill, every one on disk when answered), and the clients subscribe
// again from their positions. Each must recover every message it missed,
// in one subscribe. The measured phase runs from the first dial of the
// clients coming back to the last message recovered.
func (r *runner) runRecover(ctx context.Context) {
	o := r.o
	r.measureConnect(ctx, "subscribing", o.everyClient(only(o.Channel)))
	clients := r.fleet.snapshot()
	if len(clients) == 0 || ctx.Err() != nil {
		return
	}
	from := make([]*position, o.Clients)
	for _, c := range clients {
		if c.pos.Epoch == "" {
			r.res.fail("channel %s keeps no history: give its namespace a history-size", o.Channel)
			return
		}
		from[c.n] = &position{Offset: c.pos.Offset, Epoch: c.pos.Epoch}
	}
	firstErrors := r.res.ConnectErrors
	r.fleet.closeAll()
	r.fleet = &fleet{}

	pub, err := r.newPublisher(ctx)
	if err != nil {
		r.res.fail("%v", err)
		return
	}
	r.fill("publishing", int64(o.Messages), func() { pub.publish(ctx, o.Messages, o.Rate, nil) }, pub.counts)
	missed := r.res.Sent
	if missed == 0 || ctx.Err() != nil {
		return
	}

	spec := o.everyClient(only(o.Channel))
	spec.from = func(n int) *position { return from[n] }
	r.awaitComeback(ctx, "recovering", missed, spec, func(c *client) (time.Time, bool) {
		ok := c.pos.Recovered != nil && *c.pos.Recovered && c.pos.Missed == missed
		return c.subscribedAt, ok
	})
	r.res.ConnectErrors += firstErrors
	r.res.Dropped = r.fleet.dropped()
	r.recordDeliveries(int64(o.Clients)*missed, missed)
}

// fill runs send, which stores want messages, as the fill phase of
// recover and inbox: timed, with the server's CPU time, not part of the
// measured phase.
func (r *runner) fill(desc string, want int64, send func(), counts func() (sent, failed, calls int64)) {
	bar := startProgress(r.progress, r.desc(desc), want, "msgs", func() int64 {
		sent, _, _ := counts()
		return sent
	})
	m := r.timed(send)
	sent, failed, calls := counts()
	bar.Stop(sent)
	f := &Fill{Messages: sent, Failed: max(failed, want-sent), Seconds: m.seconds}
	if m.seconds > 0 {
		f.MessagesPerSecond = float64(sent) / m.seconds
	}
	if r.proc != nil {
		f.CPUSeconds = m.serverCPU
		if sent > 0 {
			f.CPUSecondsPerMillionMessages = m.serverCPU / (float64(sent) / 1e6)
		}
	}
	r.res.Fill = f
	r.res.Sent, r.res.SendErrors, r.res.APICalls = sent, f.Failed, calls
}

// awaitComeback is the measured phase of recover and inbox: the clients
// spec describes connect again, and it waits until each has want
// deliveries, or none came for Drain. since gives a client's start (its
// subscribe, its connect) and whether its handshake told what was
// expected; the phase records the clients' times from their start to
// their last message.
func (r *runner) awaitComeback(ctx context.Context, desc string, want int64, spec connectSpec, since func(*client) (time.Time, bool)) {
	expected := want * int64(spec.count)
	r.sink.expect(expected)
	before, okBefore := r.sampleProc()
	defer func() {
		after, okAfter := r.sampleProc()
		if p := r.res.Process; p != nil && okBefore && okAfter {
			p.recordMemory(before, after)
		}
	}()
	var start time.Time
	r.measuredPhase(func() {
		start = time.Now()
		r.connect(ctx, desc, spec)
		sent := make(chan struct{})
		close(sent) // everything was sent before
		r.awaitDeliveries(ctx, sent, func() int64 { return expected })
	})
	rec := &Recovery{}
	times := NewHistogram()
	for _, c := range r.fleet.snapshot() {
		rec.Clients++
		from, told := since(c)
		if !told {
			rec.Refused++
		}
		if c.received.Load() == want {
			rec.Complete++
			times.Record(c.n, time.Duration(c.lastAt.Load()-from.UnixNano()))
		}
	}
	if last := r.sink.lastAt.Load(); last > start.UnixNano() {
		rec.Seconds = time.Duration(last - start.UnixNano()).Seconds()
		rec.MessagesPerSecond = float64(r.sink.delivered.Load()) / rec.Seconds
		r.res.DeliverySeconds = rec.Seconds
	}
	rec.Time = summarize(times.Snapshot())
	r.res.Recovery = rec
	if rec.Refused > 0 {
		r.res.fail("%d of %d clients were not told they had missed what was sent", rec.Refused, rec.Clients)
	}
}
