package redis

import (
	"context"
	"sync"
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
