package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// fleet is the connected clients of a run and the goroutines reading them.
// closeAll stops them all.
type fleet struct {
	mu      sync.Mutex
	clients []*client
	wg      sync.WaitGroup
}

// add starts c's reader and keeps c until closeAll.
func (f *fleet) add(c *client) {
	f.mu.Lock()
	f.clients = append(f.clients, c)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		c.readLoop()
	}()
}

// snapshot returns the clients added so far.
func (f *fleet) snapshot() []*client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*client(nil), f.clients...)
}

// dropped counts clients whose connection ended before closeAll.
func (f *fleet) dropped() int64 {
	var n int64
	for _, c := range f.snapshot() {
		if c.dropped.Load() {
			n++
		}
	}
	return n
}

// closeAll closes every connection and waits for every reader to return.
func (f *fleet) closeAll() {
	clients := f.snapshot()
	for _, c := range clients {
		c.closing.Store(true)
		_ = c.conn.Close()
	}
	f.wg.Wait()
}

// connectPhase is the outcome of connecting many clients.
type connectPhase struct {
	established int64
	failed      int64
	elapsed     time.Duration // from the first dial to the last handshake
}

// rate is handshakes per second.
func (p connectPhase) rate() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(p.established) / p.elapsed.Seconds()
}

// giveUpAfter is how many failed connections, with none succeeding, end a
// connect phase early: the server is not there or refuses everyone.
const giveUpAfter = 100

// connectSpec says what the clients of a connect phase are.
type connectSpec struct {
	count       int
	rate        float64 // new connections per second; 0: no limit
	concurrency int     // dials in flight
	user        func(n int) string
	channel     func(user string) string // "" subscribes to nothing
	device      string                   // every client's device; "": none
	from        func(n int) *position    // nil, or where client n recovers from
	ackAfter    int64                    // each acknowledges its inbox after this many deliveries; 0: never
}

// everyClient is the spec of the run's Clients clients, each subscribed
// to what channel names for its user.
func (o Options) everyClient(channel func(user string) string) connectSpec {
	return connectSpec{count: o.Clients, user: o.user, channel: channel}
}

// only names the same channel for every user ("": none).
func only(channel string) func(string) string {
	return func(string) string { return channel }
}

// connectAll opens spec.count clients into fl, spec.concurrency at a time
// and at most spec.rate per second, counting handshakes into handshakes
// (which a progress bar may watch). It returns when every client is
// connected or has failed, or ctx ends.
func connectAll(ctx context.Context, op *opener, fl *fleet, spec connectSpec, handshakes *atomic.Int64) connectPhase {
	var (
		next, failed atomic.Int64
		lastAt       atomic.Int64
		wg           sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var limiter *rate.Limiter
	if spec.rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(spec.rate), 1)
	}
	start := time.Now()
	base := handshakes.Load()
	workers := min(spec.concurrency, spec.count)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := int(next.Add(1) - 1)
				if n >= spec.count {
					return
				}
				if limiter != nil && limiter.Wait(ctx) != nil {
					return
				}
				user := spec.user(n)
				h := hello{user: user, device: spec.device, channel: spec.channel(user)}
				if spec.from != nil {
					h.from = spec.from(n)
				}
				c, err := op.openHello(ctx, n, h, handshakes)
				if err != nil {
					if ctx.Err() == nil {
						op.sink.errs.add("connect", err)
					}
					if failed.Add(1) >= giveUpAfter && handshakes.Load() == base {
						cancel()
					}
					continue
				}
				lastAt.Store(time.Now().UnixNano())
				c.ackAfter = spec.ackAfter
				fl.add(c)
			}
		}()
	}
	wg.Wait()
	p := connectPhase{established: handshakes.Load() - base, failed: failed.Load()}
	if t := lastAt.Load(); t > 0 {
		p.elapsed = time.Duration(t - start.UnixNano())
	}
	return p
}
