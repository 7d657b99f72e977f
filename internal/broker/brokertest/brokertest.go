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

// Run checks the broker contract: every message published by any node
// reaches every node, unchanged, and the messages of one publisher arrive in
// the order published. newNode returns a broker for a fresh node of one
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
