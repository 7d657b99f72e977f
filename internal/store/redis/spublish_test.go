package redis

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/rediskey"
	"github.com/heraldpush/herald/internal/redistest"
)

// TestClusterScriptSpublish: on Redis Cluster, a script run on a
// channel's keys may SPUBLISH to the channel's shard channel (same hash
// tag), and a sharded subscriber receives it; so a store script can store
// and publish a message in one atomic step. A shard channel of another
// slot is refused.
func TestClusterScriptSpublish(t *testing.T) {
	c := redistest.StartCluster(t)
	client := connect(t, c.Addrs()...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	base := rediskey.Channel("t", "X")
	live := rediskey.Live(base)
	subscribed := make(chan struct{})
	got := make(chan string, 1)
	subCtx, stop := context.WithCancel(rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind == "ssubscribe" {
			close(subscribed)
		}
	}))
	defer stop()
	go client.Receive(subCtx, client.B().Ssubscribe().Channel(live).Build(), func(m rueidis.PubSubMessage) {
		got <- m.Channel + " " + m.Message
	})
	select {
	case <-subscribed:
	case <-ctx.Done():
		t.Fatal("SSUBSCRIBE not in force")
	}

	script := rueidis.NewLuaScript(`
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('SPUBLISH', ARGV[1], 'offset ' .. top)
return top`)
	if err := script.Exec(ctx, client, []string{base + ":meta"}, []string{live}).Error(); err != nil {
		t.Fatalf("script publishing to %s: %v", live, err)
	}
	select {
	case m := <-got:
		if want := live + " offset 1"; m != want {
			t.Fatalf("received %q, want %q", m, want)
		}
	case <-ctx.Done():
		t.Fatal("the publication of the script did not arrive")
	}

	// A shard channel of a slot on another node (redis-cli splits the
	// slots in fixed thirds, so the names decide): refused, as a key of
	// that slot would be.
	other := rediskey.Live(rediskey.Channel("t", "Y"))
	err := script.Exec(ctx, client, []string{base + ":meta"}, []string{other}).Error()
	if err == nil || !strings.Contains(err.Error(), "non local key") {
		t.Fatalf("script publishing to %s, on another node: %v", other, err)
	}
}
