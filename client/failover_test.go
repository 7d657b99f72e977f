package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/redistest"
	"github.com/heraldpush/herald/internal/testserver"
)

// waitConnectedTo waits for a connection to url among the state changes
// after the first from, and returns how many state changes go up to it.
func (r *recorder) waitConnectedTo(t *testing.T, from int, url string) int {
	t.Helper()
	n := 0
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		states := r.stateChanges()
		for i := from; i < len(states); i++ {
			if states[i].State == client.StateConnected && states[i].URL == url {
				n = i + 1
				return nil
			}
		}
		return fmt.Errorf("no connection to %s among %v", url, states[from:])
	})
	return n
}

// A client whose server stops moves to the next URL, and from the last
// back to the first, subscribing again on each.
func TestFallbacksRing(t *testing.T) {
	t.Parallel()
	a, b := startServer(t), startServer(t)
	ctx := testContext(t)
	var rec recorder
	alice := dial(t, a.wsURL(), "alice", append(rec.options(), fastBackoff(), client.WithFallbacks(b.tcpURL()))...)
	seen := rec.waitConnectedTo(t, 0, a.wsURL())
	if err := alice.Subscribe(ctx, "room:1"); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		stop, on *testServer
		url      string
	}{{a, b, b.tcpURL()}, {b, a, a.wsURL()}}
	for i, step := range steps {
		if step.on == a {
			a.Restart(t)
		}
		step.stop.Stop(t)
		seen = rec.waitConnectedTo(t, seen, step.url)
		want := fmt.Sprintf("after move %d", i+1)
		checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
			// The subscription may still be on its way: publish until it
			// arrives.
			step.on.api(t, "/v1/publish", fmt.Sprintf(`{"channel":"room:1","data":%q}`, want))
			if !slices.ContainsFunc(rec.messages(), func(m client.Message) bool { return string(m.Data) == fmt.Sprintf("%q", want) }) {
				return fmt.Errorf("%q not received on %s", want, step.url)
			}
			return nil
		})
	}
}

// Dial tries each URL in turn until one connects, and says which in the
// state changes.
func TestDialTriesFallbacks(t *testing.T) {
	t.Parallel()
	gone, up := startServer(t), startServer(t)
	gone.Stop(t)
	var rec recorder
	c := dial(t, gone.wsURL(), "alice", append(rec.options(), client.WithFallbacks("", up.wsURL()))...)
	rec.waitConnectedTo(t, 0, up.wsURL())
	var got []string
	for _, s := range rec.stateChanges() {
		got = append(got, s.State.String()+" "+s.URL)
	}
	want := []string{"connecting " + gone.wsURL(), "disconnected ", "connecting " + up.wsURL(), "connected " + up.wsURL()}
	if !slices.Equal(got, want) {
		t.Errorf("state changes %q, want %q", got, want)
	}
	if c.State() != client.StateConnected {
		t.Errorf("State() = %s", c.State())
	}

	ctx := testContext(t)
	_, err := client.Dial(ctx, up.wsURL(), client.WithUser("alice"), client.WithFallbacks("http://elsewhere"))
	if !errors.Is(err, client.ErrUnsupportedURL) {
		t.Errorf("Dial with a bad fallback: %v, want ErrUnsupportedURL", err)
	}
	// Every attempt's error is in Dial's.
	_, err = client.Dial(ctx, gone.wsURL(), client.WithUser("alice"), client.WithFallbacks(gone.tcpURL()))
	if err == nil || !strings.Contains(err.Error(), gone.wsURL()) || !strings.Contains(err.Error(), gone.tcpURL()) {
		t.Errorf("Dial with every server gone: %v", err)
	}
}

// On the nodes of a cluster, a client moving from a stopping node to the
// next resumes: every channel message and direct message published
// meanwhile through the other node's API reaches it once, channel
// messages in offset order.
func TestFallbackResumesInCluster(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	node := func() *testServer {
		return startServer(t, func(cfg *config.Config) {
			cfg.Redis = "redis://" + redis.Addr
			cfg.RedisPrefix = "failover"
			cfg.NodeTimeout = 3 * time.Second
			cfg.Namespaces = []config.Namespace{{Name: "chat", Subscribe: config.SubscribeAny, Publish: config.PublishClients, HistorySize: 10000}}
		})
	}
	a, b := node(), node()
	var rec recorder
	c := dial(t, a.wsURL(), "alice", append(rec.options(), fastBackoff(), client.WithDevice("phone"), client.WithFallbacks(b.wsURL()))...)
	if err := c.Subscribe(testContext(t), "chat:x"); err != nil {
		t.Fatal(err)
	}

	var (
		mu   sync.Mutex
		sent = map[string]bool{} // the id of every call answered 200
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	httpc := &http.Client{Timeout: 5 * time.Second}
	for _, kind := range []string{"publish", "send"} {
		wg.Go(func() {
			testserver.PostUntil(stop, httpc, b.API()+"/v1/"+kind, func(i int) string {
				if kind == "send" {
					return fmt.Sprintf(`{"to":"alice","data":%d}`, i)
				}
				return fmt.Sprintf(`{"channel":"chat:x","data":%d}`, i)
			}, func(id string) {
				mu.Lock()
				defer mu.Unlock()
				sent[id] = true
			})
		})
	}
	countSent := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sent)
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := countSent(); n < 50 {
			return fmt.Errorf("%d calls answered", n)
		}
		return nil
	})
	a.Stop(t)
	rec.waitConnectedTo(t, 0, b.wsURL())
	before := countSent()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := countSent(); n < before+50 {
			return fmt.Errorf("%d calls answered after the move", n-before)
		}
		return nil
	})
	close(stop)
	wg.Wait()

	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		got := map[string]int{}
		for _, m := range rec.messages() {
			got[m.ID]++
		}
		mu.Lock()
		defer mu.Unlock()
		for id := range sent {
			if got[id] == 0 {
				return fmt.Errorf("message %s answered 200 not received", id)
			}
		}
		return nil
	})
	var last uint64
	ids := map[string]bool{}
	for _, m := range rec.messages() {
		if ids[m.ID] {
			t.Fatalf("message %s received twice", m.ID)
		}
		ids[m.ID] = true
		if m.Kind == client.KindChannel {
			if m.Offset <= last {
				t.Fatalf("offset %d after %d", m.Offset, last)
			}
			last = m.Offset
		}
	}
	t.Logf("%d messages answered 200, %d received", countSent(), len(ids))
}
