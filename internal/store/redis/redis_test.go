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

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatalf("connect to %s: %v", srv.Addr, err)
	}
	defer client.Close()
	// Each store has a prefix of its own, so each starts empty on the one
	// redis-server.
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Store {
		return New(client, Options{Prefix: fmt.Sprint("t", n.Add(1))})
	})
}

// TestClusterConformance runs the contract on Redis Cluster, where every
// script must stay within its slot and keys of different slots go by
// separate commands.
func TestClusterConformance(t *testing.T) {
	c := redistest.StartCluster(t)
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Addrs(), DisableCache: true})
	if err != nil {
		t.Fatalf("connect to the cluster %v: %v", c.Addrs(), err)
	}
	defer client.Close()
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Store {
		return New(client, Options{Prefix: fmt.Sprint("t", n.Add(1))})
	})
}
