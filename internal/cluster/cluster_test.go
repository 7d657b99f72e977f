package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldpush/herald/internal/poll"
	"github.com/heraldpush/herald/internal/rediskey"
	"github.com/heraldpush/herald/internal/redistest"
)

// ttl is short so that deaths and heartbeats show within a test.
const ttl = 300 * time.Millisecond

func newClient(t *testing.T, srv *redistest.Server) rueidis.Client {
	t.Helper()
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		t.Fatalf("connect to %s: %v", srv.Addr, err)
	}
	t.Cleanup(client.Close)
	return client
}

// newRegistry returns a registry of node, not started, closed when t ends.
func newRegistry(t *testing.T, client rueidis.Client, node string) *Registry {
	t.Helper()
	r := New(client, Options{Node: node, TTL: ttl})
	t.Cleanup(func() { r.Close() })
	return r
}

// twoNodes starts registries a and b over one client of srv.
func twoNodes(t *testing.T, srv *redistest.Server) (rueidis.Client, *Registry, *Registry) {
	t.Helper()
	client := newClient(t, srv)
	a, b := newRegistry(t, client, "a"), newRegistry(t, client, "b")
	start(t, a)
	start(t, b)
	return client, a, b
}

// wantGone fails t unless none of keys exists.
func wantGone(t *testing.T, client rueidis.Client, keys ...string) {
	t.Helper()
	for _, key := range keys {
		n, err := client.Do(context.Background(), client.B().Exists().Key(key).Build()).AsInt64()
		if err != nil || n != 0 {
			t.Errorf("%s is left: %d, %v", key, n, err)
		}
	}
}

func start(t *testing.T, r *Registry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.Start(ctx, nil); err != nil {
		t.Fatalf("start %s: %v", r.node, err)
	}
}

// pause stops r's writer as a kill -9 would, without any clean-up; resume
// starts it again.
func (r *Registry) pause() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	cancel()
	<-done
}

func (r *Registry) resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(ctx)
}

// checkFor polls fn until it returns nil, or fails t after total.
func checkFor(t *testing.T, total time.Duration, fn func() error) {
	t.Helper()
	poll.Until(t, total, 10*time.Millisecond, fn)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantUser is checkFor's test that r reads user with n connections.
func wantUser(r *Registry, user string, n int) func() error {
	return func() error {
		got, _, err := r.User(context.Background(), user)
		if err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("%s has %d connections, want %d", user, got, n)
		}
		return nil
	}
}

// wantChannel is checkFor's test that r reads channel with members
// user:connections, in order.
func wantChannel(r *Registry, channel string, members ...string) func() error {
	return func() error {
		ms, err := r.Channel(context.Background(), channel)
		if err != nil {
			return err
		}
		got := make([]string, 0, len(ms))
		for _, m := range ms {
			got = append(got, m.User+":"+strconv.Itoa(m.Connections))
		}
		if strings.Join(got, " ") != strings.Join(members, " ") {
			return fmt.Errorf("%s holds %v, want %v", channel, got, members)
		}
		return nil
	}
}

func TestSumsOverNodes(t *testing.T) {
	client := newClient(t, redistest.Start(t))
	a, b, c := newRegistry(t, client, "a"), newRegistry(t, client, "b"), newRegistry(t, client, "c")
	// a records before Start, b and c after.
	a.Connected("ann", json.RawMessage(`{"on":"a"}`))
	a.Connected("ann", json.RawMessage(`{"on":"a"}`))
	a.Joined("room", "ann")
	for _, r := range []*Registry{a, b, c} {
		start(t, r)
	}
	time.Sleep(5 * time.Millisecond) // b's connect is the latest
	b.Connected("ann", json.RawMessage(`{"on":"b"}`))
	b.Connected("bob", nil)
	b.Joined("room", "ann")
	b.Joined("room", "bob")
	b.Joined("hall", "bob")

	checkFor(t, 2*time.Second, wantUser(c, "ann", 3))
	checkFor(t, 2*time.Second, wantChannel(c, "room", "ann:2", "bob:1"))
	ctx := ctxFor(t)
	n, info, err := c.User(ctx, "ann")
	if err != nil || n != 3 || string(info) != `{"on":"b"}` {
		t.Fatalf("User(ann) = %d, %s, %v; want 3, b's info", n, info, err)
	}
	members, err := c.Channel(ctx, "room")
	if err != nil || string(members[0].Info) != `{"on":"b"}` || members[1].Info != nil {
		t.Fatalf("Channel(room) = %+v, %v", members, err)
	}
	// Stats are those of the last heartbeats.
	checkFor(t, 2*time.Second, func() error {
		st, err := a.Stats(ctx)
		want := Totals{Stats: Stats{Connections: 4, Users: 3, Channels: 3}, Nodes: 3}
		if err != nil || st != want {
			return fmt.Errorf("Stats = %+v, %v; want %+v", st, err, want)
		}
		return nil
	})
	nodes, err := a.Nodes(ctx)
	if err != nil || len(nodes) != 3 || nodes[0].ID != "a" || nodes[1].Stats != (Stats{Connections: 2, Users: 2, Channels: 2}) ||
		time.Since(nodes[2].Heartbeat) > ttl {
		t.Fatalf("Nodes = %+v, %v", nodes, err)
	}

	a.Disconnected("ann")
	a.Left("room", "ann")
	checkFor(t, 2*time.Second, wantUser(c, "ann", 2))
	checkFor(t, 2*time.Second, wantChannel(c, "room", "ann:1", "bob:1"))
	a.Disconnected("ann")
	a.Disconnected("ann") // one too many: ignored
	a.Left("hall", "ann") // never joined: ignored
	checkFor(t, 2*time.Second, wantUser(c, "ann", 1))

	// Close takes b out at once and deletes its entries.
	if err := b.Close(); err != nil {
		t.Fatalf("close b: %v", err)
	}
	if err := wantUser(c, "ann", 0)(); err != nil {
		t.Fatal(err)
	}
	if err := wantChannel(c, "room")(); err != nil {
		t.Fatal(err)
	}
	wantGone(t, client, rediskey.User("herald", "bob")+":pres", rediskey.Channel("herald", "hall")+":pres")
	if nodes, err := c.Nodes(ctx); err != nil || len(nodes) != 2 {
		t.Fatalf("Nodes after Close = %+v, %v", nodes, err)
	}
}

func TestKilledNodeDropsOut(t *testing.T) {
	client, a, b := twoNodes(t, redistest.Start(t))
	b.Connected("ann", nil)
	b.Joined("room", "ann")
	checkFor(t, 2*time.Second, wantUser(a, "ann", 1))
	b.pause()
	killed := time.Now()
	checkFor(t, 2*ttl, wantUser(a, "ann", 0))
	checkFor(t, 2*ttl, wantChannel(a, "room"))
	if d := time.Since(killed); d > ttl+100*time.Millisecond {
		t.Errorf("dropped out after %v, TTL is %v", d, ttl)
	}
	ctx := ctxFor(t)
	if st, err := a.Stats(ctx); err != nil || st.Nodes != 1 || st.Connections != 0 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	// The reads deleted the dead node's entries.
	wantGone(t, client, rediskey.User("herald", "ann")+":pres")
}

// A node counted dead while still running (too slow to heartbeat) has
// its heartbeat refused, and resyncs.
func TestSlowNodeResyncs(t *testing.T) {
	client, a, b := twoNodes(t, redistest.Start(t))
	b.Connected("ann", nil)
	checkFor(t, 2*time.Second, wantUser(a, "ann", 1))
	b.pause()
	checkFor(t, 2*ttl, wantUser(a, "ann", 0))
	wantGone(t, client, rediskey.User("herald", "ann")+":pres") // by that read
	ctx := ctxFor(t)
	before, err := a.records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.resume()
	checkFor(t, 2*time.Second, wantUser(a, "ann", 1))
	after, err := a.records(ctx)
	if err != nil || after["b"].gen != before["b"].gen+1 {
		t.Errorf("generation %d after the resync (%v), want %d", after["b"].gen, err, before["b"].gen+1)
	}
}

func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	_, a, b := twoNodes(t, srv)
	a.Connected("ann", nil)
	a.Connected("bob", nil)
	a.Joined("room", "ann")
	a.Joined("room", "bob")
	b.Connected("cid", nil)
	checkFor(t, 2*time.Second, wantChannel(b, "room", "ann:1", "bob:1"))

	srv.Kill()
	// While Redis is down, reads fail rather than answer nothing.
	ctx := ctxFor(t)
	if _, _, err := b.User(ctx, "ann"); err == nil {
		t.Error("User answered with Redis down")
	}
	if _, err := b.Channel(ctx, "room"); err == nil {
		t.Error("Channel answered with Redis down")
	}
	if _, err := b.Stats(ctx); err == nil {
		t.Error("Stats answered with Redis down")
	}
	if _, err := b.Nodes(ctx); err == nil {
		t.Error("Nodes answered with Redis down")
	}
	// Changes while Redis is down.
	a.Disconnected("bob")
	a.Left("room", "bob")
	a.Connected("dan", nil)
	srv.Restart()

	checkFor(t, 3*time.Second, wantChannel(b, "room", "ann:1"))
	for user, n := range map[string]int{"ann": 1, "bob": 0, "cid": 1, "dan": 1} {
		checkFor(t, time.Second, wantUser(b, user, n))
	}
	checkFor(t, time.Second, func() error {
		st, err := b.Stats(context.Background())
		if err != nil || st.Nodes != 2 || st.Connections != 3 {
			return fmt.Errorf("Stats = %+v, %v", st, err)
		}
		return nil
	})
}

// When the queue overflows, the node resyncs, and the entries it dropped
// meanwhile are gone from reads, then from Redis.
func TestOverflowResyncs(t *testing.T) {
	client, a, b := twoNodes(t, redistest.Start(t))
	a.Connected("ann", nil)
	a.Connected("bob", nil)
	a.Joined("room", "bob")
	checkFor(t, 2*time.Second, wantChannel(b, "room", "bob:1"))

	a.pause()
	a.mu.Lock()
	a.queueLimit = 2
	a.mu.Unlock()
	a.Disconnected("bob")
	a.Left("room", "bob")
	a.Connected("cid", nil) // one too many
	a.mu.Lock()
	why := a.resync
	a.mu.Unlock()
	if !errors.Is(why, errOverflow) {
		t.Fatalf("resync due: %v, want %v", why, errOverflow)
	}
	a.resume()
	checkFor(t, 2*time.Second, wantUser(b, "cid", 1))
	checkFor(t, time.Second, wantUser(b, "bob", 0))
	checkFor(t, time.Second, wantUser(b, "ann", 1))
	checkFor(t, time.Second, wantChannel(b, "room"))
	// The stale entries were deleted by those reads.
	wantGone(t, client, rediskey.User("herald", "bob")+":pres", rediskey.Channel("herald", "room")+":pres")
}

// Idle connections cost nothing beyond the heartbeat: one command every
// TTL/3.
func TestIdleCost(t *testing.T) {
	client := newClient(t, redistest.Start(t))
	a := newRegistry(t, client, "a")
	for i := range 10_000 {
		a.Connected(fmt.Sprint("user", i), nil)
		a.Joined("room", fmt.Sprint("user", i))
	}
	start(t, a)
	ctx := ctxFor(t)
	// calls reads how many times each command ran, the commands of
	// scripts included.
	calls := func() map[string]int {
		info, err := client.Do(ctx, client.B().Info().Section("commandstats").Build()).ToString()
		if err != nil {
			t.Fatalf("INFO: %v", err)
		}
		m := make(map[string]int)
		for line := range strings.SplitSeq(info, "\r\n") {
			name, stats, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
			if ok {
				n, _, _ := strings.Cut(stats, ",")
				m[name], _ = strconv.Atoi(n)
			}
		}
		return m
	}
	before := calls()
	time.Sleep(2 * ttl)
	after := calls()
	// 6 heartbeats, each one script with one HSET.
	beats, writes := after["evalsha"]-before["evalsha"], after["hset"]+after["hdel"]-before["hset"]-before["hdel"]
	if beats > 8 || writes > beats {
		t.Errorf("in %v while idle: %d scripts, %d writes", 2*ttl, beats, writes)
	}
}

func TestStart(t *testing.T) {
	client := newClient(t, redistest.Start(t))
	ctx := ctxFor(t)
	for _, node := range []string{"", "a\x00b"} {
		if err := New(client, Options{Node: node}).Start(ctx, nil); !errors.Is(err, ErrInvalidNode) {
			t.Errorf("Start of node %q: %v, want %v", node, err, ErrInvalidNode)
		}
	}
	a := newRegistry(t, client, "a")
	stats := Stats{Connections: 7, Users: 5, Channels: 2}
	if err := a.Start(ctx, func() Stats { return stats }); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx, nil); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want %v", err, ErrStarted)
	}
	if nodes, err := a.Nodes(ctx); err != nil || len(nodes) != 1 || !reflect.DeepEqual(nodes, []Node{{ID: "a", Heartbeat: nodes[0].Heartbeat, Stats: stats}}) {
		t.Errorf("Nodes = %+v, %v", nodes, err)
	}
	a.Close()
	if err := a.Start(ctx, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want %v", err, ErrClosed)
	}
	if nodes, err := a.Nodes(ctx); err != nil || len(nodes) != 0 {
		t.Errorf("Nodes after Close = %+v, %v", nodes, err)
	}
}
