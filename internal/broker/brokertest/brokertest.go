// Package brokertest is the conformance test every broker implementation
// runs, so that all of them keep the same contract.
package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/broker"
	"github.com/heraldpush/herald/internal/protocol"
)

// Run checks the broker contract: every message published by any node to
// a channel reaches every node subscribed to it, unchanged, and the messages
// of one publisher arrive in the order published. newNode returns a broker for a fresh node of one
// cluster (for the memory broker, a cluster of one).
func Run(t *testing.T, nodes int, newNode func(t *testing.T) broker.Broker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type received struct {
		mu   sync.Mutex
		msgs []*protocol.Message
	}
	bs := make([]broker.Broker, nodes)
	got := make([]*received, nodes)
	for i := range bs {
		bs[i] = newNode(t)
		if err := bs[i].Publish(ctx, &protocol.Message{ID: "early"}); err == nil {
			t.Fatal("Publish before Start succeeded")
		}
		got[i] = &received{}
		r := got[i]
		err := bs[i].Start(ctx, func(m *protocol.Message) {
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
		})
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		if err := bs[i].Subscribe(ctx, broker.ChannelTopic("room:1")); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	defer func() {
		for _, b := range bs {
			if err := b.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	}()

	const perNode = 200
	for i, b := range bs {
		for j := range perNode {
			m := &protocol.Message{
				ID: fmt.Sprintf("n%d-%04d", i, j), Kind: protocol.KindChannel, Channel: "room:1",
				From: fmt.Sprintf("u%d", i), Time: int64(j), Data: []byte(fmt.Sprintf(`{"j":%d}`, j)),
			}
			if err := b.Publish(ctx, m); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
	}

	want := nodes * perNode
	for i, r := range got {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r.mu.Lock()
			n := len(r.msgs)
			r.mu.Unlock()
			if n == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d received %d of %d messages", i, n, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		r.mu.Lock()
		next := make(map[string]int)
		for _, m := range r.msgs {
			var node, j int
			if _, err := fmt.Sscanf(m.ID, "n%d-%d", &node, &j); err != nil {
				t.Fatalf("unexpected id %q", m.ID)
			}
			if j != next[m.From] {
				t.Fatalf("node %d: from %s got message %d, want %d (order lost)", i, m.From, j, next[m.From])
			}
			next[m.From]++
			if m.Channel != "room:1" || m.Time != int64(j) || string(m.Data) != fmt.Sprintf(`{"j":%d}`, j) {
				t.Fatalf("message changed in transit: %+v", m)
			}
		}
		r.mu.Unlock()
	}
}

// collector gathers what one node receives, by message id.
type collector struct {
	mu  sync.Mutex
	ids map[string]*protocol.Message
}

func (c *collector) handle(m *protocol.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids[m.ID] = m
}

func (c *collector) has(id string) *protocol.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id]
}

// waitFor fails t unless every id arrives within a bounded time.
func (c *collector) waitFor(t *testing.T, node string, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range ids {
		for c.has(id) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not receive %s", node, id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// RunInterest checks that topics carry what they name: channel messages
// go to the nodes subscribed to the channel, direct messages to the nodes
// subscribed to the recipient, broadcasts to every node. With filters
// set (for a broker over a bus, with two nodes), it also checks that a
// node gets nothing it did not subscribe to; without, only that it gets
// at least what it did.
func RunInterest(t *testing.T, nodes int, filters bool, newNode func(t *testing.T) broker.Broker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// a subscribes; b publishes, and subscribes to nothing. In a cluster
	// of one, a is b.
	a := newNode(t)
	ca := &collector{ids: map[string]*protocol.Message{}}
	if err := a.Start(ctx, ca.handle); err != nil {
		t.Fatalf("start: %v", err)
	}
	defer a.Close()
	b, cb := a, ca
	if nodes > 1 {
		b, cb = newNode(t), &collector{ids: map[string]*protocol.Message{}}
		if err := b.Start(ctx, cb.handle); err != nil {
			t.Fatalf("start: %v", err)
		}
		defer b.Close()
	}
	for _, tp := range []broker.Topic{broker.ChannelTopic("room:a"), broker.UserTopic("alice"), broker.ChannelTopic("room:a")} {
		if err := a.Subscribe(ctx, tp); err != nil {
			t.Fatalf("subscribe %+v: %v", tp, err)
		}
	}
	publish := func(m *protocol.Message) {
		t.Helper()
		m.Data = []byte(`{"x":1}`)
		if err := b.Publish(ctx, m); err != nil {
			t.Fatalf("publish %s: %v", m.ID, err)
		}
	}
	// What no node asked for goes first, so that a broker that ignored
	// interest would most likely have handed it over by the end.
	publish(&protocol.Message{ID: "room-b", Kind: protocol.KindChannel, Channel: "room:b"})
	publish(&protocol.Message{ID: "to-bob", Kind: protocol.KindDirect, To: "bob", From: "carol"})
	publish(&protocol.Message{ID: "room-a", Kind: protocol.KindChannel, Channel: "room:a", Offset: 7, Epoch: "e1"})
	publish(&protocol.Message{ID: "to-alice", Kind: protocol.KindDirect, To: "alice", From: "carol", Seq: 3})
	publish(&protocol.Message{ID: "all", Kind: protocol.KindBroadcast})
	ca.waitFor(t, "subscribed node", "room-a", "to-alice", "all")
	cb.waitFor(t, "node with no interest", "all")
	if m := ca.has("room-a"); m.Offset != 7 || m.Epoch != "e1" || m.Channel != "room:a" {
		t.Fatalf("channel message changed in transit: %+v", m)
	}
	if m := ca.has("to-alice"); m.Kind != protocol.KindDirect || m.To != "alice" || m.From != "carol" || m.Seq != 3 || string(m.Data) != `{"x":1}` {
		t.Fatalf("direct message changed in transit: %+v", m)
	}
	if filters && nodes > 1 {
		for _, id := range []string{"room-b", "to-bob"} {
			if ca.has(id) != nil || cb.has(id) != nil {
				t.Fatalf("%s reached a node that did not subscribe to it", id)
			}
		}
		if cb.has("room-a") != nil || cb.has("to-alice") != nil {
			t.Fatal("a node with no interest received a channel or direct message")
		}
	}

	// Unsubscribed: the channel's messages stop, the user's go on; a
	// topic subscribed again carries again.
	if err := a.Unsubscribe(ctx, broker.ChannelTopic("room:a")); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	if err := a.Unsubscribe(ctx, broker.ChannelTopic("never")); err != nil {
		t.Fatalf("unsubscribe of a topic never subscribed: %v", err)
	}
	publish(&protocol.Message{ID: "room-a-2", Kind: protocol.KindChannel, Channel: "room:a"})
	publish(&protocol.Message{ID: "to-alice-2", Kind: protocol.KindDirect, To: "alice"})
	ca.waitFor(t, "subscribed node", "to-alice-2")
	if filters && nodes > 1 && ca.has("room-a-2") != nil {
		t.Fatal("a message of an unsubscribed channel arrived")
	}
	if err := a.Subscribe(ctx, broker.ChannelTopic("room:a")); err != nil {
		t.Fatalf("subscribe again: %v", err)
	}
	publish(&protocol.Message{ID: "room-a-3", Kind: protocol.KindChannel, Channel: "room:a"})
	ca.waitFor(t, "node subscribed again", "room-a-3")
}
