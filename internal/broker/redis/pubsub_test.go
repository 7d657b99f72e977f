package redis

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/broker"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/redistest"
)

// recorder keeps the ids of the messages a broker delivered and counts
// the gaps it reported.
type recorder struct {
	mu   sync.Mutex
	got  map[string]bool
	gaps atomic.Int64
}

func (r *recorder) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id]
}

// startRecorded starts a broker on the redis-server (or cluster) of
// addrs, delivering to a new recorder.
func startRecorded(ctx context.Context, t *testing.T, addrs ...string) (*Broker, *recorder) {
	t.Helper()
	r := &recorder{got: map[string]bool{}}
	b := New(newClient(t, addrs...), Options{OnGap: func(broker.Topic, error) { r.gaps.Add(1) }})
	if err := b.Start(ctx, func(m *protocol.Message) {
		r.mu.Lock()
		r.got[m.ID] = true
		r.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, r
}

// startPair starts, for a test of at most timeout, a broker delivering to
// a new recorder and another to publish, on the redis-server (or
// cluster) of addrs.
func startPair(t *testing.T, timeout time.Duration, addrs ...string) (context.Context, *Broker, *recorder, *Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	b, rec := startRecorded(ctx, t, addrs...)
	return ctx, b, rec, startNode(ctx, t, addrs...)
}

// flows publishes id to channel through pub until r received it.
func (r *recorder) flows(ctx context.Context, t *testing.T, pub *Broker, channel, id string) {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		if err := publishTo(ctx, pub, channel, id); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
		if !r.has(id) {
			return fmt.Errorf("message %s to %s not received", id, channel)
		}
		return nil
	})
}

// forEach calls op for topics 0 to n-1 (user and channel topics in turn)
// from workers goroutines at once, and fails t on the first error.
func forEach(ctx context.Context, t *testing.T, n, workers int, op func(context.Context, broker.Topic) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				tp := broker.ChannelTopic(fmt.Sprint("c", i))
				if i%2 == 0 {
					tp = broker.UserTopic(fmt.Sprint("u", i))
				}
				if err := op(ctx, tp); err != nil {
					errs <- fmt.Errorf("%+v: %w", tp, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// rueidis's own goroutines come and go with its connections (a restart
// in between, say): goroutineSlack allows for them, not for one per
// topic.
const goroutineSlack = 5

// TestManyTopicsFewGoroutines: on a single Redis, 10,000 topics are held
// by the broker's few shared connections, not by a goroutine each; a
// restart of Redis takes them all up again, each reported as a gap; and
// unsubscribing them all leaves no goroutine behind. Messages reach a
// topic among them throughout.
func TestManyTopicsFewGoroutines(t *testing.T) {
	srv := redistest.Start(t)
	ctx, b, rec, pub := startPair(t, 60*time.Second, srv.Addr)
	before := runtime.NumGoroutine()

	const n = 10000
	forEach(ctx, t, n, 50, b.Subscribe)
	during := runtime.NumGoroutine()
	t.Logf("goroutines: %d before, %d with %d topics", before, during, n)
	if during > before+goroutineSlack {
		t.Fatalf("%d goroutines with %d topics subscribed, %d before", during, n, before)
	}
	if st := b.Stats(); st.Subscriptions != n+1 || st.SubscriptionsWanted != n+1 {
		t.Fatalf("stats %+v, want %d subscriptions in force", st, n+1)
	}
	rec.flows(ctx, t, pub, "c4999", "m1")

	srv.Kill()
	srv.Restart()
	checkFor(t, 10*time.Second, func() error {
		if st := b.Stats(); !st.Up || st.Subscriptions != n+1 || st.Reconnects != n+1 || rec.gaps.Load() != n+1 {
			return fmt.Errorf("after a restart: %+v and %d gaps, want up with %d subscriptions back, each a gap", st, rec.gaps.Load(), n+1)
		}
		return nil
	})
	if now := runtime.NumGoroutine(); now > before+goroutineSlack {
		t.Fatalf("%d goroutines after the restart, %d before", now, before)
	}
	rec.flows(ctx, t, pub, "c4999", "m2")

	forEach(ctx, t, n, 50, b.Unsubscribe)
	if st := b.Stats(); st.Subscriptions != 1 || st.SubscriptionsWanted != 1 {
		t.Fatalf("stats %+v after unsubscribing all, want the broadcast subscription alone", st)
	}
	checkFor(t, 5*time.Second, func() error {
		if after := runtime.NumGoroutine(); after > before+goroutineSlack {
			return fmt.Errorf("%d goroutines after unsubscribing all, %d before", after, before)
		}
		return nil
	})
	t.Logf("goroutines: %d after unsubscribing all", runtime.NumGoroutine())
	// The publisher's link may still hold a connection the restart broke:
	// a publish can meet it once and fail (nothing is retried for a
	// write), as it would for any client.
	checkFor(t, 5*time.Second, func() error { return publishTo(ctx, pub, "c4999", "m3") })
	checkFor(t, 5*time.Second, func() error {
		return pub.Publish(ctx, &protocol.Message{ID: "m4", Kind: protocol.KindBroadcast})
	})
	checkFor(t, 5*time.Second, func() error {
		if !rec.has("m4") {
			return errors.New("broadcast not received")
		}
		return nil
	})
	if rec.has("m3") {
		t.Fatal("a message of an unsubscribed topic arrived")
	}
}

// TestSubscribeChurn: topics subscribed and unsubscribed at random from
// many goroutines at once; no call hangs, and afterwards each topic
// subscribed carries its messages and those unsubscribed leave nothing
// behind.
func TestSubscribeChurn(t *testing.T) {
	srv := redistest.Start(t)
	ctx, b, rec, pub := startPair(t, 30*time.Second, srv.Addr)

	const topics = 20
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 300 {
				tp := broker.ChannelTopic(fmt.Sprint("c", (w*7+i*13)%topics))
				var err error
				if (w+i)%3 == 0 {
					err = b.Unsubscribe(ctx, tp)
				} else if err = b.Subscribe(ctx, tp); errors.Is(err, errWithdrawn) {
					err = nil
				}
				if err != nil {
					t.Errorf("%+v: %v", tp, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range topics {
		if err := b.Subscribe(ctx, broker.ChannelTopic(fmt.Sprint("c", i))); err != nil {
			t.Fatal(err)
		}
	}
	if st := b.Stats(); st.Subscriptions != topics+1 || st.SubscriptionsWanted != topics+1 || st.Reconnects != 0 {
		t.Fatalf("stats %+v, want %d subscriptions in force and no reconnects", st, topics+1)
	}
	for i := range topics {
		rec.flows(ctx, t, pub, fmt.Sprint("c", i), fmt.Sprint("m", i))
	}
	for i := range topics {
		if err := b.Unsubscribe(ctx, broker.ChannelTopic(fmt.Sprint("c", i))); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, func() error {
		b.mu.Lock()
		shards := b.shards
		b.mu.Unlock()
		n := 0
		for _, sh := range shards {
			sh.mu.Lock()
			n += len(sh.names)
			sh.mu.Unlock()
		}
		if n != 1 {
			return fmt.Errorf("the shards hold %d channels, want the broadcast channel alone", n)
		}
		return nil
	})
}

// TestClusterManyTopics: on Redis Cluster, topics spread over every node
// are held by one connection and one goroutine per node; a node
// restarted, its topics come back, each reported as a gap, and messages
// flow again to topics on every node.
func TestClusterManyTopics(t *testing.T) {
	c := redistest.StartCluster(t)
	ctx, b, rec, pub := startPair(t, 60*time.Second, c.Addrs()...)
	before := runtime.NumGoroutine()

	const n = 3000
	forEach(ctx, t, n, 30, b.Subscribe)
	during := runtime.NumGoroutine()
	t.Logf("goroutines: %d before, %d with %d topics", before, during, n)
	// A goroutine per node for its shard, and rueidis's two for each
	// dedicated connection.
	if during > before+3*len(c.Nodes)+goroutineSlack {
		t.Fatalf("%d goroutines with %d topics subscribed, %d before", during, n, before)
	}
	b.mu.Lock()
	shards := len(b.shards)
	b.mu.Unlock()
	if shards != len(c.Nodes) {
		t.Fatalf("%d shards, want one per node (%d)", shards, len(c.Nodes))
	}

	c.Nodes[1].Kill()
	c.Nodes[1].Restart()
	checkFor(t, 20*time.Second, func() error {
		gaps := rec.gaps.Load()
		if st := b.Stats(); !st.Up || st.Subscriptions != n+1 || gaps == 0 || st.Reconnects != uint64(gaps) {
			return fmt.Errorf("after a node restart: %+v and %d gaps, want up with %d subscriptions, some back after a gap", st, gaps, n+1)
		}
		return nil
	})
	t.Logf("%d of %d topics came back after a gap", rec.gaps.Load(), n+1)
	for i := 1; i < 60; i += 2 {
		rec.flows(ctx, t, pub, fmt.Sprint("c", i), fmt.Sprint("m", i))
	}
}

// TestClusterSlotMoved: the slot of a subscribed topic is handed to
// another node; Redis ends the subscription, the broker takes it up on
// the new owner, reports the gap, and messages flow again.
func TestClusterSlotMoved(t *testing.T) {
	c := redistest.StartCluster(t)
	ctx, b, rec, pub := startPair(t, 30*time.Second, c.Addrs()...)
	room := broker.ChannelTopic("room")
	if err := b.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	name, _ := b.name(room)
	slot := b.slotOf(name)
	b.mu.Lock()
	from := b.owner(slot)
	b.mu.Unlock()

	nodes := map[string]rueidis.Client{}
	ids := map[string]string{}
	for _, addr := range c.Addrs() {
		nc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if ids[addr], err = nc.Do(ctx, nc.B().ClusterMyid().Build()).ToString(); err != nil {
			t.Fatal(err)
		}
		nodes[addr] = nc
	}
	to := c.Addrs()[0]
	if to == from {
		to = c.Addrs()[1]
	}
	// The new owner first, then the others (an empty slot needs no
	// migration of keys).
	for _, addr := range append([]string{to}, c.Addrs()...) {
		nc := nodes[addr]
		if err := nc.Do(ctx, nc.B().ClusterSetslot().Slot(int64(slot)).Node().NodeId(ids[to]).Build()).Error(); err != nil {
			t.Fatalf("setslot on %s: %v", addr, err)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		b.mu.Lock()
		at := b.subs[name].shard.addr
		b.mu.Unlock()
		if st := b.Stats(); !st.Up || st.Subscriptions != 2 || rec.gaps.Load() != 1 || at != to {
			return fmt.Errorf("after the slot moved from %s to %s: %+v, %d gaps, held on %s", from, to, st, rec.gaps.Load(), at)
		}
		return nil
	})
	rec.flows(ctx, t, pub, "room", "after")
}
