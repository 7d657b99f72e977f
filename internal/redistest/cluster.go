package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterSize is the number of masters of a Cluster: the fewest that
// redis-cli --cluster create accepts.
const clusterSize = 3

// Cluster is a Redis Cluster of three masters (no replicas) owned by one
// test, each a redis-server of its own.
type Cluster struct {
	Nodes []*Server
}

// Addrs returns the host:port of every node, for a client's seed list.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// StartCluster runs a Redis Cluster for t: three nodes started at once,
// joined by redis-cli --cluster create, the slots split between them. It
// returns once every node reports cluster_state:ok, and the nodes are
// killed when t ends. Without redis-server or redis-cli on PATH the test
// is skipped, unless HERALD_CI is set, where it fails.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	need(t, "redis-server", "redis-cli")
	c := &Cluster{Nodes: make([]*Server, clusterSize)}
	errs := make([]error, clusterSize)
	var wg sync.WaitGroup
	for i := range c.Nodes {
		n := &Server{dir: t.TempDir(), t: t}
		c.Nodes[i] = n
		// In parallel: each node takes a moment to answer.
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.startFree(true)
		}()
	}
	wg.Wait()
	for _, n := range c.Nodes {
		t.Cleanup(n.Kill) // a node that did not start is not killed
	}
	for _, err := range errs {
		if err != nil {
			t.Fatalf("start redis cluster node: %v", err)
		}
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v: %s", err, out)
	}
	deadline := time.Now().Add(startTimeout)
	for _, n := range c.Nodes {
		for {
			info, err := command(n.Addr, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster node %s not ok within %v: %v %s", n.Addr, startTimeout, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// command sends one command and reads its answer, a simple or bulk
// string.
func command(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	var req bytes.Buffer
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(req.Bytes()); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("%s answered %q", args[0], line)
		}
		body := make([]byte, n+2)
		if _, err := io.ReadFull(r, body); err != nil {
			return "", err
		}
		return string(body[:n]), nil
	}
	return "", fmt.Errorf("%s answered %q", args[0], line)
}
