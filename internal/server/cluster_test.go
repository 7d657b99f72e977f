package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/redistest"
)

// clusterConfig is historyConfig for a node of a cluster on redis, under
// a prefix of the test's own.
func clusterConfig(t *testing.T, redis *redistest.Server) config.Config {
	cfg := historyConfig(t, 1000)
	cfg.Redis = "redis://" + redis.Addr
	cfg.RedisPrefix = "t" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	cfg.NodeTimeout = 3 * time.Second
	return cfg
}

// startNodes starts n nodes of one cluster on redis.
func startNodes(t *testing.T, redis *redistest.Server, n int) []*Server {
	t.Helper()
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = startServer(t, clusterConfig(t, redis))
	}
	return nodes
}

// Clients on different nodes, over each transport, exchange channel,
// direct and broadcast messages, published by clients and by the API of
// another node.
func TestClusterDelivery(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	nodes := startNodes(t, redis, 3)
	alice := dialWS(t, nodes[0])
	alice.connect("alice")
	bob := dialTCP(t, nodes[1])
	bob.connect("bob")
	carol := dialSSE(t, nodes[2])
	carol.connect("carol")
	for _, c := range []*conn{alice, bob, carol} {
		c.subscribe("room")
	}

	// A client publishes on one node; every subscriber gets it once.
	alice.reply(alice.send(map[string]any{"op": "publish", "channel": "room", "data": "hi"}))
	for _, c := range []*conn{alice, bob, carol} {
		if m := c.expect("message"); m.Channel != "room" || m.From != "alice" || string(m.Data) != `"hi"` {
			t.Fatalf("channel message: %s", m.raw)
		}
	}
	// Without echo, the publisher alone is left out, on its own node.
	alice.reply(alice.send(map[string]any{"op": "publish", "channel": "room", "data": "quiet", "echo": false}))
	for _, c := range []*conn{bob, carol} {
		if m := c.expect("message"); string(m.Data) != `"quiet"` {
			t.Fatalf("channel message: %s", m.raw)
		}
	}
	// (alice's next message is carol's, below: "quiet" never came.)

	// The API of a third node sends to one user, whose inbox keeps it.
	out := newAPI(t, nodes[2]).ok("POST", "/v1/send", `{"to":"bob","data":"for bob"}`)
	if m := bob.expect("message"); m.Kind != "direct" || string(m.Data) != `"for bob"` || m.Seq != 1 || fmt.Sprintf("%q", out["id"]) != string(m.ID) {
		t.Fatalf("direct message: %s (reply %v)", m.raw, out)
	}
	// A client sends to a user on another node.
	carol.reply(carol.send(map[string]any{"op": "send", "to": "alice", "data": "from carol"}))
	if m := alice.expect("message"); m.From != "carol" || m.Seq != 1 {
		t.Fatalf("client send: %s", m.raw)
	}
	// A broadcast through the API reaches every node.
	newAPI(t, nodes[1]).ok("POST", "/v1/broadcast", `{"data":"all"}`)
	for _, c := range []*conn{alice, bob, carol} {
		if m := c.expect("message"); m.Kind != "broadcast" {
			t.Fatalf("broadcast: %s", m.raw)
		}
	}
	for _, c := range []*conn{alice, bob, carol} {
		c.expectSilence(100 * time.Millisecond)
	}
}

// Publishers on every node write one channel with history at once; each
// subscriber, on any node, gets every message once, at offsets 1, 2, 3...
// in order: Redis orders them, not the node that took them.
func TestClusterOrder(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	nodes := startNodes(t, redis, 3)
	var subs []*conn
	for i, n := range nodes {
		c := transports[i%2].dial(t, n)
		c.connect(fmt.Sprint("reader", i))
		c.subscribeAt("chat:order", 0, "")
		subs = append(subs, c)
	}
	const each = 60
	var wg sync.WaitGroup
	for i, n := range nodes {
		api := newAPI(t, n)
		wg.Go(func() {
			for j := range each {
				status, out := api.do("POST", "/v1/publish", fmt.Sprintf(`{"channel":"chat:order","data":{"node":%d,"n":%d}}`, i, j))
				if status != 200 {
					t.Errorf("publish: %d %v", status, out)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, c := range subs {
		got := c.expectMessages(1, len(nodes)*each)
		// Each publisher's own messages keep its order.
		last := map[string]int{}
		for _, f := range got {
			var d struct{ Node, N int }
			if err := json.Unmarshal(f.Data, &d); err != nil {
				t.Fatal(err)
			}
			if prev, ok := last[fmt.Sprint(d.Node)]; ok && d.N != prev+1 {
				t.Fatalf("node %d's message %d after %d", d.Node, d.N, prev)
			}
			last[fmt.Sprint(d.Node)] = d.N
		}
		c.expectSilence(100 * time.Millisecond)
	}
}

// A client that reconnects to another node recovers exactly what it
// missed of a channel, and a device gets what it did not acknowledge.
func TestClusterRecoverOnAnotherNode(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	nodes := startNodes(t, redis, 3)
	a := dialWS(t, nodes[0])
	a.connectDevice("alice", "phone")
	a.subscribeAt("chat:lobby", 0, "")
	publishN(t, newAPI(t, nodes[1]), "chat:lobby", 1, 3)
	seen := a.expectMessages(1, 3)
	ids := sendN(t, newAPI(t, nodes[2]), "alice", 1, 3)
	for i := range 3 {
		if m := a.expect("message"); m.Seq != uint64(i+1) || fmt.Sprintf("%q", ids[i]) != string(m.ID) {
			t.Fatalf("inbox message %d: %s", i, m.raw)
		}
	}
	a.reply(a.send(map[string]any{"op": "ack", "seq": 2}))
	a.close()

	publishN(t, newAPI(t, nodes[0]), "chat:lobby", 4, 2)
	sendN(t, newAPI(t, nodes[0]), "alice", 4, 1)
	b := dialTCP(t, nodes[2])
	st := b.connectDevice("alice", "phone")
	if st.Acked != 2 || st.Pending != 2 || st.New {
		t.Fatalf("inbox on the other node: %+v", st)
	}
	for _, seq := range []uint64{3, 4} {
		if m := b.expect("message"); m.Seq != seq {
			t.Fatalf("inbox backlog: %s, want seq %d", m.raw, seq)
		}
	}
	p := b.subscribeAt("chat:lobby", 3, seen[2].Epoch)
	if p.Recovered == nil || !*p.Recovered || p.Missed != 2 || p.Offset != 5 {
		t.Fatalf("recovery on another node: %+v", p)
	}
	b.expectMessages(4, 2)
	publishN(t, newAPI(t, nodes[1]), "chat:lobby", 6, 1)
	b.expectMessages(6, 1)
	b.expectSilence(100 * time.Millisecond)
}

// Presence and stats add up across nodes, and the API's disconnect and
// unsubscribe reach connections on every node.
func TestClusterPresence(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	nodes := startNodes(t, redis, 3)
	api := newAPI(t, nodes[0])
	var dana []*conn
	for _, n := range nodes[1:] {
		c := dialWS(t, n)
		c.connect("dana")
		c.subscribe("room")
		dana = append(dana, c)
	}
	eve := dialTCP(t, nodes[2])
	eve.connect("eve")
	eve.subscribe("room")
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		u := api.ok("GET", "/v1/presence/users/dana", "")
		ch := api.ok("GET", "/v1/presence/channels/room", "")
		st := api.ok("GET", "/v1/stats", "")
		if u["connections"] != 2.0 || u["online"] != true {
			return fmt.Errorf("dana: %v", u)
		}
		if ch["connections"] != 3.0 || ch["users"] != 2.0 {
			return fmt.Errorf("room: %v", ch)
		}
		if st["connections"] != 3.0 || st["nodes"] != 3.0 {
			return fmt.Errorf("stats: %v", st)
		}
		return nil
	})

	out := api.ok("POST", "/v1/users/dana/unsubscribe", `{"channel":"room"}`)
	if out["unsubscribed"] != 2.0 {
		t.Fatalf("unsubscribe: %v", out)
	}
	for _, c := range dana {
		if f := c.expect("unsubscribed"); f.Channel != "room" {
			t.Fatalf("unsubscribed push: %s", f.raw)
		}
	}
	out = api.ok("POST", "/v1/users/dana/disconnect", `{"reason":"bye"}`)
	if out["disconnected"] != 2.0 {
		t.Fatalf("disconnect: %v", out)
	}
	for _, c := range dana {
		if f := c.expectClosed(5 * time.Second); f == nil || f.Code != 3505 {
			t.Fatalf("disconnect push: %+v", f)
		}
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if u := api.ok("GET", "/v1/presence/users/dana", ""); u["online"] != false {
			return fmt.Errorf("dana still online: %v", u)
		}
		return nil
	})
	// eve stayed.
	newAPI(t, nodes[1]).ok("POST", "/v1/publish", `{"channel":"room","data":1}`)
	eve.expect("message")
}
