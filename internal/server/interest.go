package server

import (
	"context"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/broker"
)

// unsubscribeTimeout bounds an unsubscribe in Redis, which runs in the
// background.
const unsubscribeTimeout = 5 * time.Second

// interest counts, per topic, what this node's connections want of the
// broker, so that the broker is subscribed to a topic from its first
// local interest to its last.
//
// A topic goes through: subscribing (the first acquirer asks the broker;
// later ones wait for the answer), held, then unsubscribing once its
// count falls to zero. An acquire during the unsubscribe waits for it to
// end before it subscribes again, so that an unsubscribe never undoes a
// later subscribe.
type interest struct {
	b  broker.Broker
	mu sync.Mutex
	m  map[broker.Topic]*topicInterest
	// leaving holds the topics being unsubscribed, each closed when done.
	leaving map[broker.Topic]chan struct{}
	wg      sync.WaitGroup
}

type topicInterest struct {
	refs  int
	ready chan struct{} // closed once the subscribe is answered
	err   error         // its answer, set before ready is closed
}

func newInterest(b broker.Broker) *interest {
	return &interest{b: b, m: make(map[broker.Topic]*topicInterest), leaving: make(map[broker.Topic]chan struct{})}
}

// acquire counts one interest in t and returns once the broker delivers
// t's messages. On error the interest is not counted.
func (in *interest) acquire(ctx context.Context, t broker.Topic) error {
	in.mu.Lock()
	ti := in.m[t]
	first := ti == nil
	if first {
		ti = &topicInterest{ready: make(chan struct{})}
		in.m[t] = ti
	}
	ti.refs++
	leaving := in.leaving[t]
	in.mu.Unlock()
	if first {
		err := ctx.Err()
		if leaving != nil {
			select {
			case <-leaving:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		if err == nil {
			err = in.b.Subscribe(ctx, t)
		}
		in.mu.Lock()
		ti.err = err
		if err != nil && in.m[t] == ti {
			// Every waiter fails with the first: the next acquire tries
			// anew.
			delete(in.m, t)
		}
		in.mu.Unlock()
		close(ti.ready)
	}
	select {
	case <-ti.ready:
	case <-ctx.Done():
		in.releaseOf(t, ti)
		return ctx.Err()
	}
	return ti.err
}

// release ends one interest in t; the last one unsubscribes the broker,
// in the background.
func (in *interest) release(t broker.Topic) { in.releaseOf(t, nil) }

// releaseOf is release of the interest counted in ti (nil: whichever
// is current): one counted in an entry since replaced (its subscribe
// failed) is gone with it.
func (in *interest) releaseOf(t broker.Topic, ti *topicInterest) {
	in.mu.Lock()
	defer in.mu.Unlock()
	cur := in.m[t]
	if cur == nil || ti != nil && cur != ti {
		return
	}
	ti = cur
	if ti.refs--; ti.refs > 0 {
		return
	}
	delete(in.m, t)
	done := make(chan struct{})
	prev := in.leaving[t]
	in.leaving[t] = done
	in.wg.Go(func() {
		<-ti.ready
		if prev != nil {
			<-prev
		}
		if ti.err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), unsubscribeTimeout)
			_ = in.b.Unsubscribe(ctx, t)
			cancel()
		}
		in.mu.Lock()
		if in.leaving[t] == done {
			delete(in.leaving, t)
		}
		in.mu.Unlock()
		close(done)
	})
}

// wait waits for the unsubscribes under way, for tests and shutdown.
func (in *interest) wait() { in.wg.Wait() }
