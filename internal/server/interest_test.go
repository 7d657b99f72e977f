package server

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/broker"
	"github.com/heraldpush/herald/internal/protocol"
)

// fakeBus records the subscribes and unsubscribes a node asks of its
// broker, each taking a while, and fails the subscribes it is told to.
type fakeBus struct {
	mu    sync.Mutex
	calls []string
	fail  int // subscribes still to fail
	delay time.Duration
	// gate, when set, holds every subscribe until it is closed.
	gate chan struct{}
}

func (b *fakeBus) Publish(context.Context, *protocol.Message) error    { return nil }
func (b *fakeBus) Start(context.Context, broker.Handler) error         { return nil }
func (b *fakeBus) Close() error                                        { return nil }
func (b *fakeBus) Unsubscribe(_ context.Context, t broker.Topic) error { return b.record("-" + t.Name) }

func (b *fakeBus) Subscribe(_ context.Context, t broker.Topic) error {
	b.mu.Lock()
	failing := b.fail > 0
	if failing {
		b.fail--
	}
	gate := b.gate
	b.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err := b.record("+" + t.Name); err != nil || failing {
		return errors.New("redis is down")
	}
	return nil
}

func (b *fakeBus) record(call string) error {
	time.Sleep(b.delay)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, call)
	return nil
}

func (b *fakeBus) log() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// A topic is subscribed once for any number of concurrent interests, and
// unsubscribed when the last is released; an interest taken while the
// unsubscribe runs waits for it and subscribes again, so that the topic
// ends subscribed; a failed subscribe fails every waiter and the next
// interest tries again.
func TestInterest(t *testing.T) {
	t.Parallel()
	bus := &fakeBus{delay: 20 * time.Millisecond}
	in := newInterest(bus)
	ctx := context.Background()
	room := broker.ChannelTopic("room")
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if err := in.acquire(ctx, room); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := bus.log(); !slices.Equal(got, []string{"+room"}) {
		t.Fatalf("five interests: %q", got)
	}
	for range 5 {
		in.release(room)
	}
	// The last release unsubscribes in the background; the next acquire
	// waits for it.
	if err := in.acquire(ctx, room); err != nil {
		t.Fatal(err)
	}
	in.wait()
	if got := bus.log(); !slices.Equal(got, []string{"+room", "-room", "+room"}) {
		t.Fatalf("released, then wanted again: %q", got)
	}
	in.release(room)
	in.release(room) // one too many: nothing happens
	in.wait()

	bob := broker.UserTopic("bob")
	bus.mu.Lock()
	bus.fail, bus.gate = 1, make(chan struct{})
	bus.mu.Unlock()
	for range 3 {
		wg.Go(func() {
			if err := in.acquire(ctx, bob); err == nil {
				t.Error("a subscribe that failed gave no error")
			}
		})
	}
	// The three wait on the one subscribe, which then fails.
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		in.mu.Lock()
		defer in.mu.Unlock()
		if ti := in.m[bob]; ti == nil || ti.refs != 3 {
			return errors.New("not every interest waits yet")
		}
		return nil
	})
	close(bus.gate)
	wg.Wait()
	bus.mu.Lock()
	bus.gate = nil
	bus.mu.Unlock()
	if err := in.acquire(ctx, bob); err != nil {
		t.Fatalf("after a failure: %v", err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if err := in.acquire(ctx2, broker.ChannelTopic("late")); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	in.wait()
	// One failed subscribe for the three, one that worked for the next,
	// none for a canceled interest.
	if got := bus.log(); !slices.Equal(got[3:], []string{"-room", "+bob", "+bob"}) {
		t.Fatalf("calls: %q", got)
	}
}
