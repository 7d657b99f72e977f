package redis

import (
	"context"
	"sync/atomic"
	"time"
)

// The link is checked by a PING to every Redis node each pingPeriod; one
// not answered within pingTimeout fails, so a link that hangs shows down
// within pingPeriod+pingTimeout. A link that breaks shows down at once:
// its subscriptions are lost.
const (
	pingPeriod  = time.Second
	pingTimeout = pingPeriod
)

// Stats is a snapshot of the broker's link to Redis, for the operator.
//
// rueidis does not expose the depth of its pipelines (the commands
// written and not yet answered), so Stats has none.
type Stats struct {
	// Up: the last PING of every node was answered and every wanted
	// subscription is in force. False before Start, after Close, and
	// while a new subscription is being taken up.
	Up bool
	// RTT is the round trip of the last answered PING; on a cluster, of
	// the slowest node.
	RTT time.Duration
	// Reconnects counts the subscriptions taken up again after they were
	// lost (each one reported to Options.OnGap).
	Reconnects uint64
	// Subscriptions are the topics in force, out of SubscriptionsWanted;
	// both count the broadcast channel.
	Subscriptions, SubscriptionsWanted int
	// Published counts the messages Redis accepted, PublishErrors those
	// it did not (or whose answer was lost).
	Published, PublishErrors uint64
	// Received counts the publications received from Redis.
	Received uint64
}

// counters are the broker's side of Stats, updated as it works.
type counters struct {
	published, publishErrors, received, reconnects atomic.Uint64
	pingOK                                         atomic.Bool
	rtt                                            atomic.Int64 // nanoseconds
}

// Stats returns the state of the link and the counts since New.
func (b *Broker) Stats() Stats {
	st := Stats{
		RTT:           time.Duration(b.stats.rtt.Load()),
		Reconnects:    b.stats.reconnects.Load(),
		Published:     b.stats.published.Load(),
		PublishErrors: b.stats.publishErrors.Load(),
		Received:      b.stats.received.Load(),
	}
	b.mu.Lock()
	running := b.runCtx != nil && b.runCtx.Err() == nil
	st.SubscriptionsWanted = len(b.subs)
	for _, s := range b.subs {
		s.mu.Lock()
		if s.inForce {
			st.Subscriptions++
		}
		s.mu.Unlock()
	}
	b.mu.Unlock()
	st.Up = running && b.stats.pingOK.Load() && st.Subscriptions == st.SubscriptionsWanted
	return st
}

// startPinger runs pingLoop until the broker stops.
func (b *Broker) startPinger() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.runCtx == nil {
		return
	}
	b.wg.Add(1)
	go b.pingLoop(b.runCtx)
}

// pingLoop pings at once, then every pingPeriod, until ctx ends.
func (b *Broker) pingLoop(ctx context.Context) {
	defer b.wg.Done()
	defer b.stats.pingOK.Store(false)
	tick := time.NewTicker(pingPeriod)
	defer tick.Stop()
	for {
		b.ping(ctx)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// ping sends PING to every node the client knows, and records whether
// all answered and the slowest round trip.
func (b *Broker) ping(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	var slowest time.Duration
	ok := true
	for _, node := range b.client.Nodes() {
		begin := time.Now()
		if err := node.Do(ctx, node.B().Ping().Build()).Error(); err != nil {
			if ok && ctx.Err() == nil {
				b.log.Debug("redis broker: ping", "err", err)
			}
			ok = false
			continue
		}
		slowest = max(slowest, time.Since(begin))
	}
	if ok {
		b.stats.rtt.Store(int64(slowest))
	}
	b.stats.pingOK.Store(ok)
}
