package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// load is the measured part of fanout and direct, which runs in rounds:
// send sends k messages (to the channel, or to each user) and returns once
// each is answered.
type load struct {
	send   func(ctx context.Context, k int)
	counts func() (sent, failed, calls int64)
	// perMessage is the deliveries one message makes (subscribers, or
	// users), sends the messages accepted for it (1, or users).
	perMessage, sends int64
	messages          int // sent so far, per round's k
}

// roundSize is the number of messages of round i of rounds, messages in
// all.
func roundSize(messages, rounds, i int) int {
	return messages*(i+1)/rounds - messages*i/rounds
}

// round sends k more messages of l and waits for their deliveries: one
// measured phase.
func (r *runner) round(ctx context.Context, l *load, k int) {
	if ctx.Err() != nil || k == 0 {
		return
	}
	l.messages += k
	r.deliveryPhase(ctx, l.perMessage*int64(l.messages), func() { l.send(ctx, k) }, func() int64 {
		sent, _, _ := l.counts()
		return sent
	})
}

// rounds runs every round of l.
func (r *runner) rounds(ctx context.Context, l *load) {
	for i := range r.o.Rounds {
		r.round(ctx, l, roundSize(r.o.Messages, r.o.Rounds, i))
	}
}

// endLoad records the sends and deliveries of l.
func (r *runner) endLoad(l *load) {
	o := r.o
	sent, failed, calls := l.counts()
	r.res.Sent, r.res.APICalls = sent, calls
	r.res.SendErrors = max(failed, l.sends*int64(o.Messages)-sent)
	r.res.Dropped = r.fleet.dropped()
	r.recordDeliveries(l.perMessage*int64(o.Messages), int64(o.Messages))
}

// runCompared runs fanout or direct against the target and against the
// baseline the options name, in alternating rounds (ABBA: A B, B A, A B,
// ...), so that both see the same machine, warmed the same way, at the
// same time of the run. The result is the target's, with the baseline's
// inside it.
func runCompared(ctx context.Context, o Options, hooks *hookReceiver, progress io.Writer) (Result, error) {
	b := o.baseline()
	if err := checkFileLimit(o.peakConnections() + b.peakConnections() + 2*o.APIConcurrency + fdMargin); err != nil {
		return Result{}, err
	}
	ra, err := newRunner(ctx, o, progress)
	if err != nil {
		return Result{}, err
	}
	defer ra.close()
	ra.hooks = hooks // the target's: the baseline server has no webhook, or another
	rb, err := newRunner(ctx, b, progress)
	if err != nil {
		return Result{}, fmt.Errorf("baseline: %w", err)
	}
	defer rb.close()
	rb.label = "baseline"
	if b.API == o.API {
		// One server: one pool of API connections, so that the run holds
		// no more of them than --api-concurrency asks (the server bounds
		// the connections per address).
		rb.api, rb.sendAPI = ra.api, ra.sendAPI
	}

	start := time.Now()
	ra.res.StartedAt, rb.res.StartedAt = start.UTC(), start.UTC()
	runCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	prepare := (*runner).prepareDirect
	if o.Scenario == ScenarioFanout {
		prepare = (*runner).prepareFanout
	}
	la := prepare(ra, runCtx)
	var lb *load
	if la != nil {
		lb = prepare(rb, runCtx)
	}
	if la != nil && lb != nil {
		for i := range o.Rounds {
			k := roundSize(o.Messages, o.Rounds, i)
			if i%2 == 0 {
				ra.round(runCtx, la, k)
				rb.round(runCtx, lb, k)
			} else {
				rb.round(runCtx, lb, k)
				ra.round(runCtx, la, k)
			}
		}
		ra.endLoad(la)
		rb.endLoad(lb)
	}
	rb.finish(runCtx, start)
	if !rb.res.OK {
		ra.res.fail("baseline: %s", strings.Join(rb.res.Failures, "; "))
	}
	ra.finish(runCtx, start)
	ra.res.Baseline = &rb.res
	if b := rb.res.DeliveriesPerSecond; b > 0 {
		ra.res.VsBaseline = ra.res.DeliveriesPerSecond / b
	}
	return ra.res, nil
}
