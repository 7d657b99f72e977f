package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testserver"
)

// testServer is a real in-process Herald server on random ports.
type testServer struct{ *testserver.Server }

func startServer(t *testing.T, tweak ...func(*config.Config)) *testServer {
	t.Helper()
	cfg := testserver.Config(t)
	for _, f := range tweak {
		f(&cfg)
	}
	return &testServer{testserver.Start(t, cfg)}
}

func (ts *testServer) wsURL() string  { return ts.WS() }
func (ts *testServer) tcpURL() string { return ts.TCP() }

// api posts body to the server API path (open: the server is insecure) and
// returns the response body.
func (ts *testServer) api(t *testing.T, path, body string) string {
	t.Helper()
	resp, err := http.Post(ts.API()+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s %s (%v)", path, resp.Status, out, err)
	}
	return string(out)
}

// transports runs f once per transport of ts.
func transports(t *testing.T, ts *testServer, f func(t *testing.T, url string)) {
	t.Run("websocket", func(t *testing.T) { f(t, ts.wsURL()) })
	t.Run("tcp", func(t *testing.T) { f(t, ts.tcpURL()) })
}

func checkFor(t *testing.T, total, step time.Duration, f func() error) {
	t.Helper()
	testserver.CheckFor(t, total, step, f)
}

// recorder collects what a client's handlers are given.
type recorder struct {
	mu     sync.Mutex
	msgs   []client.Message
	states []client.StateChange
	errs   []error
	subs   []client.Subscription
}

func (r *recorder) options() []client.Option {
	return []client.Option{
		client.WithMessageHandler(func(m client.Message) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.msgs = append(r.msgs, m)
		}),
		client.WithStateHandler(func(s client.StateChange) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.states = append(r.states, s)
		}),
		client.WithErrorHandler(func(err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.errs = append(r.errs, err)
		}),
		client.WithSubscribedHandler(func(s client.Subscription) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.subs = append(r.subs, s)
		}),
	}
}

func (r *recorder) subscriptions() []client.Subscription {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Subscription(nil), r.subs...)
}

func (r *recorder) errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func (r *recorder) messages() []client.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Message(nil), r.msgs...)
}

func (r *recorder) stateChanges() []client.StateChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.StateChange(nil), r.states...)
}

// waitMessages waits until r holds n messages and returns them.
func (r *recorder) waitMessages(t *testing.T, n int) []client.Message {
	t.Helper()
	var got []client.Message
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got = r.messages(); len(got) < n {
			return fmt.Errorf("got %d messages, want %d", len(got), n)
		}
		return nil
	})
	return got
}

// waitState waits for a state change that match accepts.
func (r *recorder) waitState(t *testing.T, what string, match func(client.StateChange) bool) client.StateChange {
	t.Helper()
	var found client.StateChange
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		for _, s := range r.stateChanges() {
			if match(s) {
				found = s
				return nil
			}
		}
		return fmt.Errorf("no state change %s among %v", what, r.stateChanges())
	})
	return found
}

// dial connects a client that is closed when the test ends.
func dial(t *testing.T, url, user string, opts ...client.Option) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts = append([]client.Option{client.WithUser(user)}, opts...)
	c, err := client.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatalf("dial %s as %s: %v", url, user, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// clientGoroutines returns the stacks of the goroutines running code of
// package client, leaving out those that run a test (a parallel test
// waiting for its turn, say): code of package client that a test calls
// runs on the test's goroutine and ends with it.
func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/heraldpush/herald/client.") && !strings.Contains(g, "testing.tRunner(") {
			out = append(out, g)
		}
	}
	return out
}

// checkNoClientGoroutines fails unless every goroutine of package client
// has ended.
func checkNoClientGoroutines(t *testing.T) {
	t.Helper()
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if gs := clientGoroutines(); len(gs) > 0 {
			return fmt.Errorf("%d client goroutines left:\n%s", len(gs), strings.Join(gs, "\n\n"))
		}
		return nil
	})
}
