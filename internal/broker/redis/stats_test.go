package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/broker"
	"github.com/heraldpush/herald/internal/poll"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/redistest"
)

// checkFor polls cond every 10ms until it returns nil, and fails t with
// its last error if that takes longer than total.
func checkFor(t *testing.T, total time.Duration, cond func() error) {
	t.Helper()
	poll.Until(t, total, 10*time.Millisecond, cond)
}

// startNode starts a broker on the redis-server (or cluster) of addrs.
func startNode(ctx context.Context, t *testing.T, addrs ...string) *Broker {
	t.Helper()
	b := New(newClient(t, addrs...), Options{})
	if err := b.Start(ctx, func(*protocol.Message) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func publishTo(ctx context.Context, b *Broker, channel, id string) error {
	return b.Publish(ctx, &protocol.Message{ID: id, Kind: protocol.KindChannel, Channel: channel, Data: []byte(`1`)})
}

func TestStats(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st := New(newClient(t, srv.Addr), Options{}).Stats(); st.Up {
		t.Fatalf("a broker not started is up: %+v", st)
	}
	sub, pub := startNode(ctx, t, srv.Addr), startNode(ctx, t, srv.Addr)
	checkFor(t, 5*time.Second, func() error {
		if st := sub.Stats(); !st.Up || st.RTT <= 0 || st.Subscriptions != 1 || st.SubscriptionsWanted != 1 {
			return fmt.Errorf("after Start: %+v, want up, with an RTT and the broadcast subscription", st)
		}
		return nil
	})
	room := broker.ChannelTopic("room")
	if err := sub.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	if st := sub.Stats(); st.Subscriptions != 2 || st.SubscriptionsWanted != 2 {
		t.Fatalf("after Subscribe: %+v, want 2 subscriptions in force", st)
	}
	const n = 5
	for i := range n {
		if err := publishTo(ctx, pub, "room", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, func() error {
		if st := sub.Stats(); st.Received != n {
			return fmt.Errorf("subscriber received %d, want %d", st.Received, n)
		}
		return nil
	})
	if st := pub.Stats(); st.Published != n || st.PublishErrors != 0 || st.Received != 0 {
		t.Fatalf("publisher: %+v, want %d published, no errors, none received", st, n)
	}
	if err := sub.Unsubscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	if st := sub.Stats(); st.Subscriptions != 1 || st.SubscriptionsWanted != 1 || st.Reconnects != 0 {
		t.Fatalf("after Unsubscribe: %+v, want the broadcast subscription alone, no reconnects", st)
	}
	sub.Close()
	if st := sub.Stats(); st.Up {
		t.Fatalf("a closed broker is up: %+v", st)
	}
}

// TestStatsLinkDown: redis-server killed, the link shows down within
// about two seconds; started again, the link comes back up and each
// subscription counts as a reconnect.
func TestStatsLinkDown(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := startNode(ctx, t, srv.Addr)
	if err := b.Subscribe(ctx, broker.ChannelTopic("room")); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		if st := b.Stats(); !st.Up {
			return fmt.Errorf("not up: %+v", st)
		}
		return nil
	})

	srv.Kill()
	killed := time.Now()
	checkFor(t, 2*time.Second, func() error {
		if st := b.Stats(); st.Up || st.Subscriptions != 0 || st.SubscriptionsWanted != 2 {
			return fmt.Errorf("after the kill: %+v, want down with both subscriptions lost", st)
		}
		return nil
	})
	t.Logf("down %v after the kill", time.Since(killed).Round(time.Millisecond))
	if err := publishTo(ctx, b, "room", "lost"); err == nil {
		t.Fatal("publish with redis-server down succeeded")
	}
	if st := b.Stats(); st.PublishErrors != 1 || st.Published != 0 {
		t.Fatalf("after a failed publish: %+v", st)
	}

	srv.Restart()
	restarted := time.Now()
	checkFor(t, 10*time.Second, func() error {
		if st := b.Stats(); !st.Up || st.Reconnects != 2 || st.Subscriptions != 2 {
			return fmt.Errorf("after the restart: %+v, want up with both subscriptions taken up again", st)
		}
		return nil
	})
	t.Logf("up %v after the restart", time.Since(restarted).Round(time.Millisecond))
}

// TestStatsCluster: on Redis Cluster every node is pinged.
func TestStatsCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := startNode(ctx, t, c.Addrs()...)
	if n := len(b.client.Nodes()); n != len(c.Nodes) {
		t.Fatalf("client knows %d nodes, want %d", n, len(c.Nodes))
	}
	checkFor(t, 5*time.Second, func() error {
		if st := b.Stats(); !st.Up || st.RTT <= 0 {
			return fmt.Errorf("not up: %+v", st)
		}
		return nil
	})
	c.Nodes[1].Kill()
	killed := time.Now()
	checkFor(t, 3*time.Second, func() error {
		if st := b.Stats(); st.Up {
			return fmt.Errorf("up with a node killed: %+v", st)
		}
		return nil
	})
	t.Logf("down %v after a node was killed", time.Since(killed).Round(time.Millisecond))
}
