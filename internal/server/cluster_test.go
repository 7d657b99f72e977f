package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/redistest"
	"github.com/heraldpush/herald/internal/testcert"
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
	// A batch send (one script for the lot on a single Redis) reaches
	// users on every node, and one offline, whose receipt any node reads.
	out = newAPI(t, nodes[0]).ok("POST", "/v1/send", `{"users":["alice","bob","carol","dave","bob"],"data":"many"}`)
	ids, _ := out["ids"].([]any)
	if len(ids) != 5 {
		t.Fatalf("batch send answered %v", out)
	}
	for i, want := range []struct {
		c   *conn
		seq uint64
	}{{alice, 2}, {bob, 2}, {carol, 1}, {nil, 1}, {bob, 3}} {
		if want.c == nil {
			continue
		}
		if m := want.c.expect("message"); string(m.Data) != `"many"` || m.Seq != want.seq || string(m.ID) != fmt.Sprintf("%q", ids[i]) {
			t.Fatalf("batch message %d: %s, want seq %d and id %v", i, m.raw, want.seq, ids[i])
		}
	}
	if r := newAPI(t, nodes[1]).ok("GET", fmt.Sprintf("/v1/messages/%s", ids[3]), ""); r["user"] != "dave" || r["seq"] != 1.0 {
		t.Fatalf("receipt of dave's message: %v", r)
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

// Redis restarts in the middle of a stream (with an append-only file
// synced before each answer): while it is down the API answers 503, never
// 200, and /readyz says so; afterwards a subscriber on another node has
// every channel message that was answered 200, once and in order (the
// node fills the gap from the store), and a device asked to reconnect
// (3008) gets every direct message answered 200 from its inbox.
func TestClusterRedisRestart(t *testing.T) {
	t.Parallel()
	redis := redistest.StartDurable(t)
	nodes := startNodes(t, redis, 2)
	reader := dialWS(t, nodes[0])
	reader.connect("reader")
	reader.subscribeAt("chat:live", 0, "")
	phone := dialTCP(t, nodes[0])
	phone.connectDevice("alice", "phone")

	api := newAPI(t, nodes[1])
	var mu sync.Mutex
	var published, sent []string // ids answered 200
	statuses := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			path, body := "/v1/publish", fmt.Sprintf(`{"channel":"chat:live","data":{"n":%d}}`, i)
			if i%2 == 1 {
				path, body = "/v1/send", fmt.Sprintf(`{"to":"alice","data":{"n":%d}}`, i)
			}
			status, out := api.do("POST", path, body)
			mu.Lock()
			if status == 200 {
				if path == "/v1/publish" {
					published = append(published, out["id"].(string))
				} else {
					sent = append(sent, out["id"].(string))
				}
			} else {
				statuses[fmt.Sprint(status, " ", errCode(out))]++
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(published) + len(sent)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := count(); n < 40 {
			return fmt.Errorf("%d calls answered", n)
		}
		return nil
	})
	redis.Kill()
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		status, out := newAPI(t, nodes[0]).do("GET", "/readyz", "")
		if status != 503 || out["redis"] != "down" {
			return fmt.Errorf("readyz while redis is down: %d %v", status, out)
		}
		return nil
	})
	// Reads of the cluster's state fail at once, with a clear error.
	for _, path := range []string{"/v1/stats", "/v1/presence/users/alice", "/v1/presence/channels/chat:live"} {
		if status, out := newAPI(t, nodes[0]).do("GET", path, ""); status != 503 || errCode(out) != "unavailable" {
			t.Errorf("%s while redis is down: %d %v", path, status, out)
		}
	}
	before := count()
	time.Sleep(300 * time.Millisecond)
	if n := count(); n != before {
		t.Errorf("%d calls answered 200 while redis was down", n-before)
	}
	redis.Restart()
	checkFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		if n := count(); n < before+40 {
			return fmt.Errorf("%d calls answered since redis came back", n-before)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	for s := range statuses {
		if s != "503 storage_failed" && s != "503 unavailable" {
			t.Errorf("while redis was down the API answered %s, want 503 storage_failed or unavailable", s)
		}
	}
	if len(statuses) == 0 {
		t.Error("no call failed while redis was down")
	}

	// Every channel message answered 200, once, in offset order. A call
	// whose answer the broken link lost may have been stored and sent
	// all the same (its caller got a 503): such a message may come too.
	seen := map[string]bool{}
	var last uint64
	for missing := len(published); missing > 0; {
		f := reader.expect("message")
		if f.Offset != last+1 {
			t.Fatalf("offset %d after %d: %s", f.Offset, last, f.raw)
		}
		last = f.Offset
		var id string
		_ = json.Unmarshal(f.ID, &id)
		if seen[id] {
			t.Fatalf("message %s twice", id)
		}
		seen[id] = true
		if slices.Contains(published, id) {
			missing--
		}
	}

	// The device was asked to reconnect; it gets what it missed.
	got := map[string]bool{}
	for {
		f, err := phone.readFrameErr(10 * time.Second)
		if err != nil {
			t.Fatalf("the device was not asked to reconnect: %v", err)
		}
		if f.Type == "disconnect" {
			if f.Code != 3008 || !f.Reconnect {
				t.Fatalf("disconnect %s, want 3008 messages_missed", f.raw)
			}
			break
		}
		if f.Type == "message" {
			var id string
			_ = json.Unmarshal(f.ID, &id)
			got[id] = true
		}
	}
	phone = dialTCP(t, nodes[1])
	st := phone.connectDevice("alice", "phone")
	for range st.Pending {
		f := phone.expect("message")
		var id string
		_ = json.Unmarshal(f.ID, &id)
		got[id] = true
	}
	for _, id := range sent {
		if !got[id] {
			t.Fatalf("direct message %s answered 200 never arrived (pending %d)", id, st.Pending)
		}
	}
}

// Three nodes on a Redis Cluster of three masters: the keys and sharded
// channels of each channel and user sit in one slot, wherever it lives.
// An Idempotency-Key answers the same on every node; each node's metrics
// show its link.
func TestClusterOnRedisCluster(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t)
	addrs := rc.Addrs()
	nodes := make([]*Server, 3)
	for i := range nodes {
		cfg := clusterConfig(t, rc.Nodes[0])
		cfg.Redis = "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
		nodes[i] = startServer(t, cfg)
	}
	var subs []*conn
	for i, n := range nodes {
		c := dialWS(t, n)
		c.connect(fmt.Sprint("user", i))
		// Channels spread over the slots of every master.
		for j := range 6 {
			c.subscribeAt(fmt.Sprint("chat:room", j), 0, "")
		}
		subs = append(subs, c)
	}
	for j := range 6 {
		publishN(t, newAPI(t, nodes[j%3]), fmt.Sprint("chat:room", j), 1, 2)
	}
	for _, c := range subs {
		offsets := map[string]uint64{}
		for range 12 {
			f := c.expect("message")
			if f.Offset != offsets[f.Channel]+1 {
				t.Fatalf("%s: offset %d after %d", f.Channel, f.Offset, offsets[f.Channel])
			}
			offsets[f.Channel] = f.Offset
		}
	}
	for i := range 3 {
		newAPI(t, nodes[(i+1)%3]).ok("POST", "/v1/send", fmt.Sprintf(`{"to":"user%d","data":"hello"}`, i))
		if m := subs[i].expect("message"); m.Kind != "direct" || m.Seq != 1 {
			t.Fatalf("direct message: %s", m.raw)
		}
	}

	// One key, two nodes: one message.
	first, replayed := newAPI(t, nodes[0]).withKey("/v1/send", "key-1", `{"to":"user1","data":"once"}`)
	again, replayedAgain := newAPI(t, nodes[2]).withKey("/v1/send", "key-1", `{"to":"user1","data":"once"}`)
	if replayed || !replayedAgain || first["id"] != again["id"] {
		t.Fatalf("idempotency across nodes: %v (replayed %v) then %v (replayed %v)", first, replayed, again, replayedAgain)
	}
	if m := subs[1].expect("message"); string(m.Data) != `"once"` {
		t.Fatalf("direct message: %s", m.raw)
	}
	subs[1].expectSilence(200 * time.Millisecond)

	// The dashboard's overview lists every node and the link.
	ov := newAPI(t, nodes[1]).ok("GET", "/v1/overview", "")
	if ns, _ := ov["nodes"].([]any); len(ns) != 3 {
		t.Errorf("overview nodes: %v", ov["nodes"])
	}
	if r, _ := ov["redis"].(map[string]any); r["up"] != true {
		t.Errorf("overview redis: %v", ov["redis"])
	}

	resp, err := http.Get("http://" + nodes[0].HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"herald_redis_up 1", "herald_redis_subscriptions ", "herald_redis_received_total "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// On a cluster, user.online and user.offline follow the user across
// nodes: a second connection on another node posts nothing, nor does the
// first one's end while the second stays; the last one's does.
func TestClusterPresenceEvents(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	backend := startEventsBackend(t, 0)
	var nodes []*Server
	for range 2 {
		cfg := clusterConfig(t, redis)
		cfg.EventsWebhook, cfg.EventsWebhookSecret, cfg.OfflineGrace = backend.url, webhookSecret, 100*time.Millisecond
		nodes = append(nodes, startServerWith(t, cfg, retryFast(cfg)))
	}
	api := newAPI(t, nodes[0])
	connections := func(want float64) {
		t.Helper()
		checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if u := api.ok("GET", "/v1/presence/users/alice", ""); u["connections"] != want {
				return fmt.Errorf("alice: %v, want %v connections", u, want)
			}
			return nil
		})
	}
	a := dialWS(t, nodes[0])
	a.connect("alice")
	backend.waitFor("alice", "user.online alice")
	connections(1)
	b := dialTCP(t, nodes[1])
	b.connect("alice")
	connections(2)
	a.close()
	connections(1)
	// The first node's grace passes and its user.offline goes through
	// the check of the other node, while b is still connected there.
	h := nodes[0].presenceHook
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		sh := h.shard("alice")
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if sh.users["alice"] != nil {
			return fmt.Errorf("alice's departure is not due yet on the first node")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	h.checks.drain(ctx)
	cancel()
	b.close()
	backend.waitFor("alice", "user.online alice", "user.offline alice")
}

// One node of a cluster sweeps the shared store per interval: the first
// to claim it; the claim lapses before the next interval.
func TestClusterSweepTurn(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	nodes := startNodes(t, redis, 2)
	ctx := context.Background()
	const hold = 100 * time.Millisecond
	if !nodes[0].sweepTurn(ctx, hold) || nodes[1].sweepTurn(ctx, hold) || nodes[0].sweepTurn(ctx, hold) {
		t.Fatal("both nodes, or neither, or one twice, claimed the sweep of one interval")
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if !nodes[1].sweepTurn(ctx, hold) {
			return fmt.Errorf("the claim did not lapse")
		}
		return nil
	})
}

// A publication lost on its way from Redis (here: a message stored
// without being published) is noticed by the offset that follows it: the
// node reads it from the store and delivers both in order.
func TestClusterFillsLostPublication(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	nodes := startNodes(t, redis, 2)
	c := dialWS(t, nodes[0])
	c.connect("reader")
	c.subscribeAt("chat:gap", 0, "")
	lost := &protocol.Message{ID: "lost-1", Kind: protocol.KindChannel, Channel: "chat:gap", Data: []byte(`"lost"`), Time: time.Now().UnixMilli()}
	if _, err := nodes[1].cluster.store.Append(context.Background(), "chat:gap", time.Now(), storedData(lost)); err != nil {
		t.Fatal(err)
	}
	publishN(t, newAPI(t, nodes[1]), "chat:gap", 2, 2)
	got := c.expectMessages(1, 3)
	if string(got[0].Data) != `"lost"` || string(got[0].ID) != `"lost-1"` || got[0].Epoch != got[1].Epoch {
		t.Fatalf("the filled message: %s", got[0].raw)
	}
	c.expectSilence(100 * time.Millisecond)
	if n := nodes[0].counters.gaps.Load(); n != 1 {
		t.Fatalf("%d gaps counted, want 1", n)
	}
}

// Nodes reach a Redis that speaks TLS (rediss://), checking its
// certificate against --redis-tls-ca, and work as over plain TCP; one
// without the CA refuses the certificate at start.
func TestClusterOverTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := testcert.SelfSigned(t)
	redis := redistest.StartTLS(t, certFile, keyFile)
	var nodes []*Server
	for range 2 {
		cfg := clusterConfig(t, redis)
		cfg.Redis, cfg.RedisTLSCA = "rediss://"+redis.TLSAddr, certFile
		nodes = append(nodes, startServer(t, cfg))
	}
	c := dialTCP(t, nodes[0])
	c.connect("tls-user")
	newAPI(t, nodes[1]).ok("POST", "/v1/send", `{"to":"tls-user","data":"over tls"}`)
	if m := c.expect("message"); string(m.Data) != `"over tls"` || m.Seq != 1 {
		t.Fatalf("direct message over a TLS Redis: %s", m.raw)
	}

	cfg := clusterConfig(t, redis)
	cfg.Redis = "rediss://" + redis.TLSAddr
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err == nil || !strings.Contains(err.Error(), "certificate") {
		if err == nil {
			_ = srv.Shutdown(context.Background())
		}
		t.Fatalf("a node without the CA started, or failed for another reason: %v", err)
	}
}
