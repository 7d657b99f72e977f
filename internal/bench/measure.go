package bench

import (
	"context"
	"errors"
	"time"
)

// sampleProc reads the server process, if there is one; a failed read is
// counted as an error and returns ok false.
func (r *runner) sampleProc() (s procSample, ok bool) {
	if r.proc == nil {
		return procSample{}, false
	}
	s, err := r.proc.sample()
	if err != nil {
		r.sink.errs.add("server process", err)
		return procSample{}, false
	}
	return s, true
}

// connect runs a connect phase with a progress bar and records it.
func (r *runner) connect(ctx context.Context, desc string, spec connectSpec) connectPhase {
	spec.rate, spec.concurrency = r.o.ConnectRate, r.o.Concurrency
	base := r.handshakes.Load()
	bar := startProgress(r.progress, r.desc(desc), int64(spec.count), "conns", func() int64 { return r.handshakes.Load() - base })
	phase := connectAll(ctx, r.op, r.fleet, spec, &r.handshakes)
	bar.Stop(phase.established)
	r.res.Connections = phase.established
	r.res.ConnectErrors = phase.failed
	r.res.ConnectSeconds = phase.elapsed.Seconds()
	r.res.ConnectRate = phase.rate()
	return phase
}

// measureConnect connects spec.count clients, reading the server's memory
// and CPU time around the phase.
func (r *runner) measureConnect(ctx context.Context, desc string, spec connectSpec) {
	before, okBefore := r.sampleProc()
	r.fillGoroutines(ctx, true)
	phase := r.connect(ctx, desc, spec)
	after, okAfter := r.sampleProc()
	if p := r.res.Process; p != nil && okBefore && okAfter {
		p.recordMemory(before, after)
		p.record(before, after, func(q *ServerProcess, before, after procSample) {
			q.ConnectCPUSeconds = (after.CPU - before.CPU).Seconds()
		})
		if phase.established > 0 {
			p.RSSPerConnectionBytes = float64(after.RSSBytes-before.RSSBytes) / float64(phase.established)
		}
	}
}

// fillGoroutines records the server's goroutine count, when it tells.
func (r *runner) fillGoroutines(ctx context.Context, before bool) {
	p := r.res.Process
	if p == nil {
		return
	}
	n, ok := r.api.goroutines(ctx)
	if !ok {
		return
	}
	if before {
		p.GoroutinesBefore = &n
	} else {
		p.GoroutinesAfter = &n
	}
}

// measuredPhase runs fn and adds its duration, the server's CPU time over
// it and this process's to the run's measured figures (a run in rounds
// has several measured phases).
func (r *runner) measuredPhase(fn func()) {
	m := r.timed(fn)
	r.res.MeasuredSeconds += m.seconds
	r.res.LoadCPUSeconds += m.loadCPU
	if p := r.res.Process; p != nil && m.serverRead {
		p.record(m.serverBefore, m.serverAfter, func(q *ServerProcess, before, after procSample) {
			q.CPUSeconds += (after.CPU - before.CPU).Seconds()
		})
	}
}

// timing is what timed measured.
type timing struct {
	seconds   float64
	serverCPU float64 // 0 without a server process
	loadCPU   float64
	// The server's processes around the phase, when serverRead.
	serverBefore, serverAfter procSample
	serverRead                bool
}

// timed runs fn and measures its duration, the server's CPU time over it
// and this process's.
func (r *runner) timed(fn func()) timing {
	before, okBefore := r.sampleProc()
	self0, selfErr0 := r.self.sample()
	start := time.Now()
	fn()
	m := timing{seconds: time.Since(start).Seconds()}
	self1, selfErr1 := r.self.sample()
	after, okAfter := r.sampleProc()
	if okBefore && okAfter {
		m.serverCPU = (after.CPU - before.CPU).Seconds()
		m.serverBefore, m.serverAfter, m.serverRead = before, after, true
	}
	if selfErr0 == nil && selfErr1 == nil {
		m.loadCPU = (self1.CPU - self0.CPU).Seconds()
	}
	return m
}

// deliveryPhase is a measured phase of fanout and direct: send runs on its
// own goroutine while deliveries are awaited until the sink has expected
// of them, with a progress bar. It adds the time from its start to the
// last delivery to the run's delivery time.
func (r *runner) deliveryPhase(ctx context.Context, expected int64, send func(), sent func() int64) {
	r.sink.expect(expected)
	var start time.Time
	r.measuredPhase(func() {
		start = time.Now()
		bar := startProgress(r.progress, r.desc("delivering"), expected, "msgs", r.sink.delivered.Load)
		sendDone := make(chan struct{})
		go func() {
			defer close(sendDone)
			send()
		}()
		r.awaitDeliveries(ctx, sendDone, sent)
		<-sendDone
		bar.Stop(r.sink.delivered.Load())
	})
	if last := r.sink.lastAt.Load(); last > start.UnixNano() {
		r.res.DeliverySeconds += time.Duration(last - start.UnixNano()).Seconds()
	}
}

// awaitDeliveries waits until every expected delivery arrived, or sending
// ended (sendDone closed) and none arrived for Drain, or ctx ended. sent
// reports the messages sent successfully: when sending ends with none,
// nothing can arrive and there is nothing to wait for.
func (r *runner) awaitDeliveries(ctx context.Context, sendDone <-chan struct{}, sent func() int64) {
	const tick = 20 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	last, lastChange := r.sink.delivered.Load(), time.Now()
	sending := true
	complete := r.sink.done()
	for {
		select {
		case <-complete:
			return
		case <-ctx.Done():
			return
		case <-sendDone:
			if sent() == 0 {
				return
			}
			sending, sendDone = false, nil
			lastChange = time.Now()
		case now := <-t.C:
			if n := r.sink.delivered.Load(); n != last {
				last, lastChange = n, now
			} else if !sending && now.Sub(lastChange) > r.o.Drain {
				return
			}
		}
	}
}

// countPerClient sums, over the clients under test, deliveries missing
// from and beyond want each.
func (r *runner) countPerClient(want int64) (missing, duplicates int64) {
	for _, c := range r.fleet.snapshot() {
		got := c.received.Load()
		switch {
		case got < want:
			missing += want - got
		case got > want:
			duplicates += got - want
		}
	}
	return missing, duplicates
}

// recordDeliveries fills the delivery figures of a run that expected
// expected deliveries, want per client, over its delivery phases.
func (r *runner) recordDeliveries(expected, want int64) {
	res := &r.res
	res.DeliveriesExpected = expected
	res.DeliveriesReceived = r.sink.delivered.Load()
	res.Missing, res.Duplicates = r.countPerClient(want)
	if res.DeliverySeconds > 0 {
		res.DeliveriesPerSecond = float64(res.DeliveriesReceived) / res.DeliverySeconds
	}
	if p := res.Process; p != nil {
		p.recordDeliveries(res.DeliveriesReceived)
	}
}

// finish fills what every scenario reports and decides the verdict.
func (r *runner) finish(ctx context.Context, start time.Time) {
	res := &r.res
	res.Seconds = time.Since(start).Seconds()
	r.recordEndpoints()
	res.Latency = summarize(r.sink.hist.Snapshot())
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.TimedOut = true
		res.fail("timed out after %s", r.o.Timeout)
	case errors.Is(ctx.Err(), context.Canceled):
		res.fail("interrupted")
	}
	if res.Scenario.hasClients() {
		if res.Connections < int64(res.Clients) {
			res.fail("%d of %d clients connected", res.Connections, res.Clients)
		}
		if res.Dropped > 0 {
			res.fail("%d connections dropped during the run", res.Dropped)
		}
	}
	if res.ConnectErrors > 0 {
		res.fail("%d connections failed", res.ConnectErrors)
	}
	if res.SendErrors > 0 {
		res.fail("%d messages not sent", res.SendErrors)
	}
	if res.DeliveriesReceived != res.DeliveriesExpected || res.Missing > 0 || res.Duplicates > 0 {
		if res.Scenario.hasClients() {
			res.fail("deliveries: expected %d, received %d (missing %d, duplicates %d)",
				res.DeliveriesExpected, res.DeliveriesReceived, res.Missing, res.Duplicates)
		}
	}
	if r.hooks != nil {
		res.Hooks = r.hooks.report()
	}
	res.Errors, res.ErrorSamples = r.sink.errs.snapshot()
	if len(res.Failures) > 0 && rateLimited(res.Errors) {
		res.fail(limitHint)
	}
	res.OK = len(res.Failures) == 0
}
