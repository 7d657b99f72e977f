package redis

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/redistest"
	"github.com/heraldpush/herald/internal/store"
	"github.com/heraldpush/herald/internal/store/storetest"
)

// connect returns a client of the redis-server, or the Redis Cluster, of
// addrs; it is closed when t ends.
func connect(t *testing.T, addrs ...string) rueidis.Client {
	t.Helper()
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		t.Fatalf("connect to %v: %v", addrs, err)
	}
	t.Cleanup(client.Close)
	return client
}

func TestConformance(t *testing.T) {
	runConformance(t, redistest.Start(t).Addr)
}

// TestClusterConformance runs the contract on Redis Cluster, where every
// script must stay within its slot and keys of different slots go by
// separate commands.
func TestClusterConformance(t *testing.T) {
	runConformance(t, redistest.StartCluster(t).Addrs()...)
}

// runConformance runs the store contract on the Redis of addrs. Each store
// has a prefix of its own, so each starts empty.
func runConformance(t *testing.T, addrs ...string) {
	client := connect(t, addrs...)
	if got, want := New(client, Options{}).Batches(), len(addrs) == 1; got != want {
		t.Errorf("Batches() = %v on %v, want %v", got, addrs, want)
	}
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Store {
		return New(client, Options{Prefix: fmt.Sprint("t", n.Add(1))})
	})
}
