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
	"github.com/heraldpush/herald/internal/broker/brokertest"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/redistest"
)

// newClient connects to a redis-server, or to the Redis Cluster of
// addrs; the client is closed when t ends. Each node has a client of its
// own, as each node of a cluster would.
func newClient(t *testing.T, addrs ...string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		t.Fatalf("connect to %v: %v", addrs, err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name    string
		classic bool
	}{{"Sharded", false}, {"Classic", true}} {
		t.Run(tc.name, func(t *testing.T) {
			newNode := func(t *testing.T) broker.Broker {
				return New(newClient(t, srv.Addr), Options{Prefix: "t" + tc.name, Classic: tc.classic})
			}
			t.Run("Delivery", func(t *testing.T) { brokertest.Run(t, 3, newNode) })
			t.Run("Interest", func(t *testing.T) { brokertest.RunInterest(t, 2, true, newNode) })
		})
	}
}

// TestClusterConformance runs the contract over Redis Cluster: sharded
// pub/sub, each topic on the shard of its slot.
func TestClusterConformance(t *testing.T) {
	c := redistest.StartCluster(t)
	newNode := func(t *testing.T) broker.Broker {
		return New(newClient(t, c.Addrs()...), Options{Prefix: "tc"})
	}
	t.Run("Delivery", func(t *testing.T) { brokertest.Run(t, 3, newNode) })
	t.Run("Interest", func(t *testing.T) { brokertest.RunInterest(t, 2, true, newNode) })
}

func TestCodecRoundTrip(t *testing.T) {
	m := &protocol.Message{ID: "m1", Kind: protocol.KindDirect, Channel: "c", To: "bob", From: "alice",
		Offset: 1 << 40, Epoch: "e", Seq: 300, Time: -5, Data: []byte(`{"a":"é"}`), ExceptClient: "c1", ExceptUser: "carol"}
	got, err := decode(encode(nil, m))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || got.Kind != m.Kind || got.Channel != m.Channel || got.To != m.To || got.From != m.From ||
		got.Offset != m.Offset || got.Epoch != m.Epoch || got.Seq != m.Seq || got.Time != m.Time || string(got.Data) != string(m.Data) ||
		got.ExceptClient != m.ExceptClient || got.ExceptUser != m.ExceptUser {
		t.Fatalf("decoded %+v from %+v", got, m)
	}
	enc := encode(nil, m)
	for n := range len(enc) - len(m.Data) - 1 {
		if _, err := decode(enc[:n]); err == nil {
			t.Fatalf("a message cut at %d bytes decoded", n)
		}
	}
}

// TestPositionedDecode: the form a store script publishes, "MARK POS
// EPOCH MESSAGE", gives a channel message its offset and epoch and a
// direct one its sequence; anything malformed is refused.
func TestPositionedDecode(t *testing.T) {
	ch := Encode(&protocol.Message{ID: "m1", Kind: protocol.KindChannel, Channel: "news", Time: 7, Data: []byte(`1`)})
	got, err := decode(append([]byte("\x0342 ep "), ch...))
	if err != nil || got.Offset != 42 || got.Epoch != "ep" || got.Channel != "news" || string(got.Data) != "1" {
		t.Fatalf("channel: %+v, %v", got, err)
	}
	dm := Encode(&protocol.Message{ID: "m2", Kind: protocol.KindDirect, To: "bob", Data: []byte(`2`)})
	got, err = decode(append([]byte("\x037  "), dm...))
	if err != nil || got.Seq != 7 || got.To != "bob" {
		t.Fatalf("direct: %+v, %v", got, err)
	}
	positioned := Encode(&protocol.Message{ID: "m3", Kind: protocol.KindChannel, Channel: "c", Offset: 3})
	broadcast := Encode(&protocol.Message{ID: "m4", Kind: protocol.KindBroadcast})
	for _, bad := range [][]byte{
		[]byte("\x03"), []byte("\x03 ep "), append([]byte("\x030 ep "), ch...), append([]byte("\x03x ep "), ch...),
		append([]byte("\x0342 ep"), ch...), append([]byte("\x031 e "), positioned...), append([]byte("\x031 e "), broadcast...),
		append([]byte("\x031 e \x03"), ch...),
	} {
		if m, err := decode(bad); err == nil {
			t.Errorf("decoded %q as %+v", bad, m)
		}
	}
}

// TestReconnect: redis-server killed and started again on its port; the
// subscriptions come back by themselves, the node is told of the gap for
// each, and messages flow again.
func TestReconnect(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	gaps := map[broker.Topic]int{}
	got := map[string]bool{}
	sub := New(newClient(t, srv.Addr), Options{OnGap: func(tp broker.Topic, err error) {
		if err == nil {
			t.Errorf("gap in %+v reported with no cause", tp)
		}
		mu.Lock()
		gaps[tp]++
		mu.Unlock()
	}})
	if err := sub.Start(ctx, func(m *protocol.Message) {
		mu.Lock()
		got[m.ID] = true
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub := New(newClient(t, srv.Addr), Options{})
	if err := pub.Start(ctx, func(*protocol.Message) {}); err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	room := broker.ChannelTopic("room")
	if err := sub.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	publish := func(id string) error {
		return pub.Publish(ctx, &protocol.Message{ID: id, Kind: protocol.KindChannel, Channel: "room", Data: []byte(`1`)})
	}
	if err := publish("before"); err != nil {
		t.Fatal(err)
	}
	waitFor("message before the restart", func() bool { return got["before"] })
	mu.Lock()
	if len(gaps) != 0 {
		t.Fatalf("gaps reported with the link up: %v", gaps)
	}
	mu.Unlock()

	srv.Kill()
	if err := publish("while-down"); err == nil {
		t.Fatal("publish with redis-server down succeeded")
	}
	srv.Restart()
	waitFor("gaps reported for the channel and broadcasts", func() bool { return gaps[room] == 1 && gaps[broker.Topic{}] == 1 })
	// The publisher's link comes back on its next command.
	waitFor("message after the restart", func() bool {
		mu.Unlock()
		err := publish("after")
		mu.Lock()
		return err == nil && got["after"]
	})
}

// TestManyTopicsFewGoroutines: on a single Redis, 10,000 topics are held
// by the broker's few shared connections, not by a goroutine each; a
// restart of Redis takes them all up again, each reported as a gap; and
// unsubscribing them all leaves no goroutine behind. Messages reach a
// topic among them throughout.
func TestManyTopicsFewGoroutines(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[string]bool{}
	var gaps atomic.Int64
	b := New(newClient(t, srv.Addr), Options{OnGap: func(broker.Topic, error) { gaps.Add(1) }})
	if err := b.Start(ctx, func(m *protocol.Message) {
		mu.Lock()
		got[m.ID] = true
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub := startNode(ctx, t, srv.Addr)
	// rueidis's own goroutines come and go with its connections (a
	// restart in between, say): slack allows for them, not for one per
	// topic.
	const slack = 5
	before := runtime.NumGoroutine()

	const n, workers = 10000, 50
	topic := func(i int) broker.Topic {
		if i%2 == 0 {
			return broker.UserTopic(fmt.Sprint("u", i))
		}
		return broker.ChannelTopic(fmt.Sprint("c", i))
	}
	each := func(op func(context.Context, broker.Topic) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					if err := op(ctx, topic(i)); err != nil {
						errs <- err
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
	each(b.Subscribe)
	during := runtime.NumGoroutine()
	t.Logf("goroutines: %d before, %d with %d topics", before, during, n)
	if during > before+slack {
		t.Fatalf("%d goroutines with %d topics subscribed, %d before", during, n, before)
	}
	if st := b.Stats(); st.Subscriptions != n+1 || st.SubscriptionsWanted != n+1 {
		t.Fatalf("stats %+v, want %d subscriptions in force", st, n+1)
	}
	if err := publishTo(ctx, pub, "c4999", "m1"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !got["m1"] {
			return fmt.Errorf("message to one of %d topics not received", n)
		}
		return nil
	})

	srv.Kill()
	srv.Restart()
	checkFor(t, 10*time.Second, func() error {
		if st := b.Stats(); !st.Up || st.Subscriptions != n+1 || st.Reconnects != n+1 || gaps.Load() != n+1 {
			return fmt.Errorf("after a restart: %+v and %d gaps, want up with %d subscriptions back, each a gap", st, gaps.Load(), n+1)
		}
		return nil
	})
	if now := runtime.NumGoroutine(); now > before+slack {
		t.Fatalf("%d goroutines after the restart, %d before", now, before)
	}
	checkFor(t, 5*time.Second, func() error {
		err := publishTo(ctx, pub, "c4999", "m1b")
		mu.Lock()
		defer mu.Unlock()
		if err != nil || !got["m1b"] {
			return fmt.Errorf("message after the restart not received (publish: %v)", err)
		}
		return nil
	})

	each(b.Unsubscribe)
	if st := b.Stats(); st.Subscriptions != 1 || st.SubscriptionsWanted != 1 {
		t.Fatalf("stats %+v after unsubscribing all, want the broadcast subscription alone", st)
	}
	checkFor(t, 5*time.Second, func() error {
		if after := runtime.NumGoroutine(); after > before+slack {
			return fmt.Errorf("%d goroutines after unsubscribing all, %d before", after, before)
		}
		return nil
	})
	t.Logf("goroutines: %d after unsubscribing all", runtime.NumGoroutine())
	if err := publishTo(ctx, pub, "c4999", "m2"); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, &protocol.Message{ID: "m3", Kind: protocol.KindBroadcast}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !got["m3"] {
			return fmt.Errorf("broadcast not received")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if got["m2"] {
		t.Fatal("a message of an unsubscribed topic arrived")
	}
}

// TestSubscribeChurn: topics subscribed and unsubscribed at random from
// many goroutines at once; no call hangs, and afterwards each topic
// subscribed carries its messages and those unsubscribed leave nothing
// behind.
func TestSubscribeChurn(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[string]bool{}
	b := New(newClient(t, srv.Addr), Options{})
	if err := b.Start(ctx, func(m *protocol.Message) {
		mu.Lock()
		got[m.ID] = true
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub := startNode(ctx, t, srv.Addr)

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
		if err := publishTo(ctx, pub, fmt.Sprint("c", i), fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for i := range topics {
			if !got[fmt.Sprint("m", i)] {
				return fmt.Errorf("message to c%d not received", i)
			}
		}
		return nil
	})
	for i := range topics {
		if err := b.Unsubscribe(ctx, broker.ChannelTopic(fmt.Sprint("c", i))); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, func() error {
		n := 0
		for _, sh := range b.shards {
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[string]bool{}
	var gaps atomic.Int64
	b := New(newClient(t, c.Addrs()...), Options{OnGap: func(broker.Topic, error) { gaps.Add(1) }})
	if err := b.Start(ctx, func(m *protocol.Message) {
		mu.Lock()
		got[m.ID] = true
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub := startNode(ctx, t, c.Addrs()...)
	before := runtime.NumGoroutine()

	const n = 3000
	var wg sync.WaitGroup
	for w := range 30 {
		wg.Go(func() {
			for i := w; i < n; i += 30 {
				if err := b.Subscribe(ctx, broker.ChannelTopic(fmt.Sprint("c", i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	during := runtime.NumGoroutine()
	t.Logf("goroutines: %d before, %d with %d topics", before, during, n)
	// A goroutine per node for its shard, and rueidis's two for each
	// dedicated connection.
	if during > before+3*len(c.Nodes)+5 {
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
		if st := b.Stats(); !st.Up || st.Subscriptions != n+1 || gaps.Load() == 0 || st.Reconnects != uint64(gaps.Load()) {
			return fmt.Errorf("after a node restart: %+v and %d gaps, want up with %d subscriptions, some back after a gap", st, gaps.Load(), n+1)
		}
		return nil
	})
	t.Logf("%d of %d topics came back after a gap", gaps.Load(), n+1)
	checkFor(t, 10*time.Second, func() error {
		for i := range 30 {
			id := fmt.Sprint("m", i)
			mu.Lock()
			ok := got[id]
			mu.Unlock()
			if ok {
				continue
			}
			if err := publishTo(ctx, pub, fmt.Sprint("c", i), id); err != nil {
				return err
			}
			mu.Lock()
			ok = got[id]
			mu.Unlock()
			if !ok {
				return fmt.Errorf("message to c%d not received", i)
			}
		}
		return nil
	})
}

// TestClusterSlotMoved: the slot of a subscribed topic is handed to
// another node; Redis ends the subscription, the broker takes it up on
// the new owner, reports the gap, and messages flow again.
func TestClusterSlotMoved(t *testing.T) {
	c := redistest.StartCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[string]bool{}
	var gaps atomic.Int64
	b := New(newClient(t, c.Addrs()...), Options{OnGap: func(broker.Topic, error) { gaps.Add(1) }})
	if err := b.Start(ctx, func(m *protocol.Message) {
		mu.Lock()
		got[m.ID] = true
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub := startNode(ctx, t, c.Addrs()...)
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
		if st := b.Stats(); !st.Up || st.Subscriptions != 2 || gaps.Load() != 1 || at != to {
			return fmt.Errorf("after the slot moved from %s to %s: %+v, %d gaps, held on %s", from, to, st, gaps.Load(), at)
		}
		return nil
	})
	checkFor(t, 10*time.Second, func() error {
		err := publishTo(ctx, pub, "room", "after")
		mu.Lock()
		defer mu.Unlock()
		if err != nil || !got["after"] {
			return fmt.Errorf("message after the move not received (publish: %v)", err)
		}
		return nil
	})
}
