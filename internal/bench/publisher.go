package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// publisher sends stamped messages to a channel.
type publisher interface {
	// publish sends count messages, or until stop is closed when count is
	// 0, at most perSecond a second (0: as fast as it can), and returns
	// when every message it sent is acknowledged or failed, or ctx ends.
	publish(ctx context.Context, count int, perSecond float64, stop <-chan struct{})
	// counts returns the messages acknowledged, the ones that failed, and
	// the server API calls made.
	counts() (sent, failed, calls int64)
}

// newLimiter returns a limiter for perSecond events a second, or nil for no
// limit.
func newLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond), 1)
}

// waitN waits for n tokens of l, whose burst is one.
func waitN(ctx context.Context, l *rate.Limiter, n int64) error {
	for range n {
		if err := l.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// stopped reports whether stop is closed (a nil stop never is).
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// clientPublisher publishes with the publish op on its own connection,
// keeping at most window publishes awaiting their reply.
type clientPublisher struct {
	c       *client
	channel string
	size    int
	errs    *errorLog
	window  chan struct{} // one token per publish awaiting its reply

	sent, failed atomic.Int64
}

// newClientPublisher connects a publisher as user and starts its reader in
// fl.
func newClientPublisher(ctx context.Context, op *opener, fl *fleet, n int, user, channel string, size, window int, handshakes *atomic.Int64) (*clientPublisher, error) {
	c, err := op.open(ctx, n, user, "", handshakes)
	if err != nil {
		return nil, fmt.Errorf("connect publisher: %w", err)
	}
	p := &clientPublisher{c: c, channel: channel, size: size, errs: &op.sink.errs, window: make(chan struct{}, window)}
	c.onReply = p.onReply
	fl.add(c)
	return p, nil
}

// onReply settles one publish; it runs on the publisher's reader.
func (p *clientPublisher) onReply(f serverFrame) {
	if f.replyID < firstPublishID {
		if f.errCode != "" {
			p.errs.add("publisher", &replyError{Code: f.errCode, Message: f.errMsg})
		}
		return
	}
	// Count before releasing the token: publish returns once it holds
	// every token, and its caller reads the counts then.
	if f.errCode != "" {
		p.failed.Add(1)
		p.errs.add("publish", &replyError{Code: f.errCode, Message: f.errMsg})
	} else {
		p.sent.Add(1)
	}
	select {
	case <-p.window:
	default:
	}
}

func (p *clientPublisher) publish(ctx context.Context, count int, perSecond float64, stop <-chan struct{}) {
	limiter := newLimiter(perSecond)
	pl := newPayload(p.size)
	var frame []byte
	id := uint64(firstPublishID)
	for i := 0; (count == 0 || i < count) && !stopped(stop); i++ {
		if limiter != nil && limiter.Wait(ctx) != nil {
			return
		}
		select {
		case p.window <- struct{}{}:
		case <-ctx.Done():
			return
		case <-p.c.done:
			return
		}
		frame = appendPublish(frame[:0], id, p.channel, pl.stamp(time.Now().UnixNano()))
		if err := p.c.conn.WriteFrame(frame); err != nil {
			p.errs.add("publish", err)
			return
		}
		id++
	}
	// Wait for the outstanding replies: take every token back.
	for range cap(p.window) {
		select {
		case p.window <- struct{}{}:
		case <-ctx.Done():
			return
		case <-p.c.done:
			return
		}
	}
	// Every reply is in: give the tokens up for the next call (round).
	for range cap(p.window) {
		<-p.window
	}
}

func (p *clientPublisher) counts() (sent, failed, calls int64) {
	return p.sent.Load(), p.failed.Load(), 0
}

// apiPublisher publishes with POST /v1/publish, concurrency calls in
// flight, each with one message or, with batch above 1, a batch of batch
// messages.
type apiPublisher struct {
	api         *apiClient
	channel     string
	size        int
	concurrency int
	batch       int
	errs        *errorLog

	sent, failed, calls atomic.Int64
}

func (p *apiPublisher) publish(ctx context.Context, count int, perSecond float64, stop <-chan struct{}) {
	limiter := newLimiter(perSecond)
	var next atomic.Int64
	var wg sync.WaitGroup
	per := int64(max(p.batch, 1))
	workers := p.concurrency
	if count > 0 {
		workers = min(workers, (count+int(per)-1)/int(per))
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pl := newPayload(p.size)
			for ctx.Err() == nil && !stopped(stop) {
				n := per
				if count > 0 {
					end := next.Add(per)
					n = min(per, int64(count)-(end-per))
					if n <= 0 {
						return
					}
				}
				if limiter != nil && waitN(ctx, limiter, n) != nil {
					return
				}
				p.calls.Add(1)
				var err error
				if p.batch > 1 {
					data := make([][]byte, n)
					for i := range data {
						data[i] = slices.Clone(pl.stamp(time.Now().UnixNano()))
					}
					err = p.api.publishBatch(ctx, p.channel, data)
				} else {
					err = p.api.publish(ctx, p.channel, pl.stamp(time.Now().UnixNano()))
				}
				if err != nil {
					p.failed.Add(n)
					if ctx.Err() == nil {
						p.errs.add("publish", err)
					}
					continue
				}
				p.sent.Add(n)
			}
		}()
	}
	wg.Wait()
}

func (p *apiPublisher) counts() (sent, failed, calls int64) {
	return p.sent.Load(), p.failed.Load(), p.calls.Load()
}

// publishers runs several publishers at once, each with its share of the
// messages and of the rate.
type publishers []publisher

func (ps publishers) publish(ctx context.Context, count int, perSecond float64, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for i, p := range ps {
		share := roundSize(count, len(ps), i)
		if count > 0 && share == 0 {
			continue
		}
		wg.Go(func() { p.publish(ctx, share, perSecond/float64(len(ps)), stop) })
	}
	wg.Wait()
}

func (ps publishers) counts() (sent, failed, calls int64) {
	for _, p := range ps {
		s, f, c := p.counts()
		sent, failed, calls = sent+s, failed+f, calls+c
	}
	return sent, failed, calls
}
