package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/redistest"
	"github.com/heraldpush/herald/internal/testserver"
)

// nodeTimeout is the cluster's --node-timeout in TestClusterNodeKill: how
// long the other nodes wait before they forget a silent node's
// connections.
const nodeTimeout = 3 * time.Second

// sink is what a client's application was handed, in order.
type sink struct {
	mu     sync.Mutex
	msgs   []client.Message
	states []client.StateChange
	subs   []client.Subscription
}

func (s *sink) options() []client.Option {
	return []client.Option{
		client.WithMessageHandler(func(m client.Message) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.msgs = append(s.msgs, m)
		}),
		client.WithStateHandler(func(sc client.StateChange) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.states = append(s.states, sc)
		}),
		client.WithSubscribedHandler(func(sub client.Subscription) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.subs = append(s.subs, sub)
		}),
	}
}

func (s *sink) messages() []client.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]client.Message(nil), s.msgs...)
}

// connectedTo returns the client's first connection to url, if it has
// had one.
func (s *sink) connectedTo(url string) (client.ConnectInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range s.states {
		if sc.State == client.StateConnected && sc.URL == url {
			return sc.Info, true
		}
	}
	return client.ConnectInfo{}, false
}

// subscriptions returns the subscribes the client was told of.
func (s *sink) subscriptions() []client.Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]client.Subscription(nil), s.subs...)
}

// answered is the ids of the API calls answered 200, by kind.
type answered struct {
	mu  sync.Mutex
	ids map[string][]string // "publish" or "send" -> ids, in answer order
}

func (a *answered) add(kind, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids[kind] = append(a.ids[kind], id)
}

func (a *answered) count(kind string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids[kind])
}

// getJSON decodes the answer of a GET to the server API at addr.
func getJSON(httpc *http.Client, addr, path string, v any) error {
	resp, err := httpc.Get("http://" + addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// A node of a cluster of three killed with SIGKILL mid-stream: its client
// moves to the next node and resumes, so that every message whose publish
// or send was answered 200 reaches the application once, channel messages
// in offset order; the other nodes forget the dead node's connections
// within the node timeout and count one node less.
func TestClusterNodeKill(t *testing.T) {
	t.Parallel()
	redis := redistest.StartDurable(t)
	dir := t.TempDir()
	configFile := filepath.Join(dir, "ns.yaml")
	if err := os.WriteFile(configFile, []byte("publish-per-second: 1000000\npublish-burst: 1000000\nnamespaces:\n  - {name: chat, subscribe: any, publish: clients, history-size: 100000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var nodes [3]*kill9
	for i := range nodes {
		nodes[i] = startHerald(t, t.TempDir(), configFile, "--redis", "redis://"+redis.Addr,
			"--redis-prefix", "kill9", "--node-timeout", nodeTimeout.String())
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	wsURL := func(h *kill9) string { return "ws://" + h.addr + "/ws" }
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 5 * time.Second}
	defer httpc.CloseIdleConnections()
	liveNodes := func(want int) func() error {
		return func() error {
			var st struct{ Nodes int }
			if err := getJSON(httpc, c.addr, "/v1/stats", &st); err != nil {
				return err
			}
			if st.Nodes != want {
				return fmt.Errorf("stats count %d nodes, want %d", st.Nodes, want)
			}
			return nil
		}
	}
	testserver.CheckFor(t, 10*time.Second, 10*time.Millisecond, liveNodes(3))

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	dial := func(url, user string, opts ...client.Option) *client.Client {
		t.Helper()
		opts = append(opts, client.WithUser(user), client.WithBackoff(20*time.Millisecond, 200*time.Millisecond))
		cl, err := client.Dial(ctx, url, opts...)
		if err != nil {
			t.Fatalf("dial %s as %s: %v", url, user, err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		return cl
	}
	// alice's phone is on A and goes to B; her laptop stays on C; bob is
	// on A alone and has nowhere else to go.
	var phone sink
	alice := dial(wsURL(a), "alice", append(phone.options(), client.WithDevice("phone"), client.WithFallbacks(wsURL(b)))...)
	if err := alice.Subscribe(ctx, "chat:x"); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	dial(wsURL(c), "alice")
	dial(wsURL(a), "bob")

	// Channel messages through C's API, direct messages through B's, each
	// by two writers, until told to stop.
	calls := &answered{ids: map[string][]string{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		kind, addr, body := "publish", c.addr, `{"channel":"chat:x","data":{"w":%d,"i":%d}}`
		if w%2 == 1 {
			kind, addr, body = "send", b.addr, `{"to":"alice","data":{"w":%d,"i":%d}}`
		}
		wg.Go(func() {
			testserver.PostUntil(stop, httpc, "http://"+addr+"/v1/"+kind,
				func(i int) string { return fmt.Sprintf(body, w, i) },
				func(id string) { calls.add(kind, id) })
		})
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()
	enough := func(n int) func() error {
		return func() error {
			if p, s := calls.count("publish"), calls.count("send"); p < n || s < n {
				return fmt.Errorf("%d publishes and %d sends answered, want %d of each", p, s, n)
			}
			return nil
		}
	}
	testserver.CheckFor(t, 10*time.Second, 10*time.Millisecond, enough(100))
	testserver.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := len(phone.messages()); n < 50 {
			return fmt.Errorf("the phone has %d messages", n)
		}
		return nil
	})

	a.kill()
	killed := time.Now()
	testserver.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, ok := phone.connectedTo(wsURL(b)); !ok {
			return fmt.Errorf("the phone is not on B: %v", alice.State())
		}
		return nil
	})
	// Every resubscribe, on B, recovered from where the last left off.
	onB, _ := phone.connectedTo(wsURL(b))
	subs := phone.subscriptions()
	if len(subs) < 2 {
		t.Fatalf("subscribes %+v, want one on A and one on B", subs)
	}
	for _, sub := range subs[1:] {
		if !sub.Resumed || !sub.Recovered {
			t.Fatalf("subscribes %+v, want every one after the first resumed and recovered", subs)
		}
	}
	p, s := calls.count("publish"), calls.count("send")
	testserver.CheckFor(t, 10*time.Second, 10*time.Millisecond, enough(max(p, s)+100))
	stopWriters()

	// Every message answered 200 reaches the application once; channel
	// messages come in offset order.
	want := map[string]client.Kind{}
	calls.mu.Lock()
	for _, id := range calls.ids["publish"] {
		want[id] = client.KindChannel
	}
	for _, id := range calls.ids["send"] {
		want[id] = client.KindDirect
	}
	calls.mu.Unlock()
	testserver.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		got := map[string]bool{}
		for _, m := range phone.messages() {
			got[m.ID] = true
		}
		missing := 0
		for id := range want {
			if !got[id] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d messages answered 200 not received", missing, len(want))
		}
		return nil
	})
	msgs := phone.messages()
	seen := map[string]bool{}
	var offset uint64
	var epoch string
	for _, m := range msgs {
		if seen[m.ID] {
			t.Fatalf("message %s (%s) handed to the application twice", m.ID, m.Kind)
		}
		seen[m.ID] = true
		if k, ok := want[m.ID]; ok && k != m.Kind {
			t.Fatalf("message %s is %s, was sent as %s", m.ID, m.Kind, k)
		}
		if m.Kind == client.KindChannel {
			if epoch != "" && m.Epoch != epoch {
				t.Fatalf("epoch %s after %s", m.Epoch, epoch)
			}
			if m.Offset != offset+1 {
				t.Fatalf("offset %d after %d", m.Offset, offset)
			}
			offset, epoch = m.Offset, m.Epoch
		}
	}

	// A's connections drop out of presence within the node timeout.
	testserver.CheckFor(t, time.Until(killed.Add(nodeTimeout+5*time.Second)), 10*time.Millisecond, func() error {
		var alice, bob struct {
			Online      bool
			Connections int
		}
		if err := getJSON(httpc, c.addr, "/v1/presence/users/alice", &alice); err != nil {
			return err
		}
		if err := getJSON(httpc, c.addr, "/v1/presence/users/bob", &bob); err != nil {
			return err
		}
		if alice.Connections != 2 || bob.Online || bob.Connections != 0 {
			return fmt.Errorf("alice on %d connections (want 2: B and C), bob on %d (want 0)", alice.Connections, bob.Connections)
		}
		return nil
	})
	testserver.CheckFor(t, time.Until(killed.Add(nodeTimeout+5*time.Second)), 10*time.Millisecond, liveNodes(2))
	t.Logf("%d publishes and %d sends answered 200; the phone got %d messages, up to offset %d, and on B %d missed channel messages and %d pending in its inbox; A's connections gone %s after the kill",
		len(calls.ids["publish"]), len(calls.ids["send"]), len(msgs), offset, subs[1].Missed, onB.Inbox.Pending, time.Since(killed).Round(time.Millisecond))
}
