package redistest

import (
	"strings"
	"testing"
	"time"
)

func TestStartCluster(t *testing.T) {
	begin := time.Now()
	c := StartCluster(t)
	t.Logf("cluster of %d nodes up in %v", len(c.Nodes), time.Since(begin).Round(time.Millisecond))
	for _, n := range c.Nodes {
		info, err := command(n.Addr, "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_known_nodes:3") {
			t.Fatalf("CLUSTER INFO on %s: %v\n%s", n.Addr, err, info)
		}
	}
	// Each node owns a third of the slots: a key lands on one of them,
	// and the others redirect.
	moved := 0
	for _, n := range c.Nodes {
		if _, err := command(n.Addr, "SET", "k", "v"); err != nil {
			moved++
		}
	}
	if moved != len(c.Nodes)-1 {
		t.Fatalf("%d of %d nodes refused a key, want all but one", moved, len(c.Nodes))
	}
}
