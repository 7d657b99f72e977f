package client_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
)

func fastBackoff() client.Option {
	return client.WithBackoff(5*time.Millisecond, 50*time.Millisecond)
}

func TestReconnectResubscribes(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	transports(t, ts, func(t *testing.T, url string) {
		ctx := testContext(t)
		var rec recorder
		alice := dial(t, url, "alice", append(rec.options(), fastBackoff())...)
		for _, ch := range []string{"room:1", "room:2"} {
			if err := alice.Subscribe(ctx, ch); err != nil {
				t.Fatalf("subscribe %s: %v", ch, err)
			}
		}
		rec.waitState(t, "connected", func(s client.StateChange) bool { return s.State == client.StateConnected })

		ts.Restart(t)

		// The shutdown's disconnect, then a new connection after it.
		var again client.StateChange
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			sawShutdown := false
			for _, s := range rec.stateChanges() {
				var d *client.Disconnect
				if s.State == client.StateDisconnected && errors.As(s.Err, &d) &&
					d.Code == client.DisconnectShutdown && d.Reason == "shutdown" && d.Reconnect {
					sawShutdown = true
				}
				if sawShutdown && s.State == client.StateConnected {
					again = s
					return nil
				}
			}
			return fmt.Errorf("no shutdown disconnect followed by a connection among %v", rec.stateChanges())
		})
		if again.Info.User != "alice" {
			t.Errorf("reconnected as %q, want alice", again.Info.User)
		}

		// The new server knows nothing of the old subscriptions: only the
		// client's resubscribing can make these arrive.
		bob := dial(t, url, "bob")
		for _, ch := range []string{"room:1", "room:2"} {
			if _, err := bob.Publish(ctx, ch, ch); err != nil {
				t.Fatalf("publish to %s: %v", ch, err)
			}
		}
		got := rec.waitMessages(t, 2)
		if fmt.Sprintf("%s %s", got[0].Data, got[1].Data) != `"room:1" "room:2"` {
			t.Errorf("after reconnect got %+v, want one message on each channel", got)
		}
		if alice.State() != client.StateConnected {
			t.Errorf("State() = %s, want connected", alice.State())
		}
	})
}

func TestOperationsWaitForReconnect(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ctx := testContext(t)
	var rec recorder
	c := dial(t, ts.tcpURL(), "alice", append(rec.options(), fastBackoff())...)
	ts.Stop(t)
	rec.waitState(t, "disconnected", func(s client.StateChange) bool { return s.State == client.StateDisconnected })

	// Ping while the server is down: it waits for the new connection.
	done := make(chan error, 1)
	go func() { done <- c.Ping(ctx) }()
	ts.Restart(t)
	if err := <-done; err != nil {
		t.Fatalf("ping across a restart: %v", err)
	}
}

func TestAnswersServerPings(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for several server heartbeats")
	}
	// The server pings every second and drops a client silent for 3s; it
	// checks once a second, so a client that never answered would be gone
	// within 4s.
	ts := startServer(t, func(c *config.Config) { c.PingInterval, c.PongTimeout = time.Second, 2*time.Second })
	transports(t, ts, func(t *testing.T, url string) {
		t.Parallel()
		ctx := testContext(t)
		var rec recorder
		c := dial(t, url, "alice", rec.options()...)
		time.Sleep(5 * time.Second) // the point is to stay idle this long
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
		for _, s := range rec.stateChanges() {
			if s.State == client.StateDisconnected {
				t.Fatalf("connection lost while idle: %v", s.Err)
			}
		}
	})
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	ts := startServer(t)
	ctx := testContext(t)
	var clients []*client.Client
	for i, url := range []string{ts.wsURL(), ts.tcpURL(), ts.wsURL(), ts.tcpURL()} {
		c := dial(t, url, fmt.Sprintf("user%d", i), client.WithMessageHandler(func(client.Message) {}), fastBackoff())
		if err := c.Subscribe(ctx, "room"); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	if _, err := clients[0].Publish(ctx, "room", "hi"); err != nil {
		t.Fatal(err)
	}
	// Two clients close while connected, two while waiting to reconnect.
	_ = clients[0].Close()
	_ = clients[1].Close()
	ts.Stop(t)
	for _, c := range clients[2:] {
		checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
			if s := c.State(); s == client.StateConnected {
				return fmt.Errorf("state %s", s)
			}
			return nil
		})
		_ = c.Close()
	}
	for _, c := range clients {
		_ = c.Close() // idempotent
		select {
		case <-c.Done():
		default:
			t.Error("Done not closed after Close")
		}
	}
	checkNoClientGoroutines(t)
}

func TestKickedStopsClient(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	transports(t, ts, func(t *testing.T, url string) {
		var rec recorder
		c := dial(t, url, "mallory", append(rec.options(), fastBackoff())...)
		ts.api(t, "/v1/users/mallory/disconnect", `{"reason":"account suspended"}`)
		select {
		case <-c.Done():
		case <-testContext(t).Done():
			t.Fatal("client still running after being kicked")
		}
		var d *client.Disconnect
		if err := c.Err(); !errors.As(err, &d) || d.Code != client.DisconnectKicked || d.Reconnect || d.Message != "account suspended" {
			t.Errorf("Err() = %v, want disconnect 3505 kicked with the reason", err)
		}
	})
}

func TestServerAskedReconnect(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	transports(t, ts, func(t *testing.T, url string) {
		ctx := testContext(t)
		var rec recorder
		alice := dial(t, url, "alice", append(rec.options(), fastBackoff())...)
		if err := alice.Subscribe(ctx, "room:7"); err != nil {
			t.Fatal(err)
		}
		ts.api(t, "/v1/users/alice/disconnect", `{"reconnect":true}`)
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			seen := false
			for _, s := range rec.stateChanges() {
				var d *client.Disconnect
				if s.State == client.StateDisconnected && errors.As(s.Err, &d) && d.Code == client.DisconnectReconnect {
					seen = true
				}
				if seen && s.State == client.StateConnected {
					return nil
				}
			}
			return fmt.Errorf("no reconnect after disconnect 3007 among %v", rec.stateChanges())
		})
		bob := dial(t, url, "bob")
		if _, err := bob.Publish(ctx, "room:7", "back"); err != nil {
			t.Fatal(err)
		}
		if m := rec.waitMessages(t, 1)[0]; string(m.Data) != `"back"` {
			t.Errorf("got %+v after the reconnect", m)
		}
	})
}

func TestServerUnsubscribes(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	transports(t, ts, func(t *testing.T, url string) {
		ctx := testContext(t)
		var rec recorder
		removed := make(chan string, 1)
		opts := append(rec.options(), fastBackoff(), client.WithUnsubscribedHandler(func(ch string) { removed <- ch }))
		alice := dial(t, url, "alice", opts...)
		for _, ch := range []string{"room:1", "room:2"} {
			if err := alice.Subscribe(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
		ts.api(t, "/v1/users/alice/unsubscribe", `{"channel":"room:1"}`)
		select {
		case ch := <-removed:
			if ch != "room:1" {
				t.Errorf("unsubscribed from %q, want room:1", ch)
			}
		case <-ctx.Done():
			t.Fatal("no unsubscribed notice")
		}
		if got := alice.Subscriptions(); fmt.Sprint(got) != "[room:2]" {
			t.Errorf("Subscriptions() = %v, want [room:2]", got)
		}
	})
}

func TestSlowHandlerDropsConnection(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ctx := testContext(t)
	var rec recorder
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	// The handler blocks; a long backoff keeps the client disconnected
	// once it gives up on the connection. rec's message handler is
	// replaced by the slow one, its state handler kept.
	opts := append(rec.options(),
		client.WithMessageHandler(func(client.Message) { <-release }),
		client.WithMessageBuffer(2),
		client.WithBackoff(time.Minute, time.Minute))
	alice := dial(t, ts.tcpURL(), "alice", opts...)
	if err := alice.Subscribe(ctx, "firehose"); err != nil {
		t.Fatal(err)
	}
	bob := dial(t, ts.tcpURL(), "bob")
	for i := range 5 {
		if _, err := bob.Publish(ctx, "firehose", i); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if s := alice.State(); s != client.StateDisconnected {
			return fmt.Errorf("state %s, want disconnected", s)
		}
		return nil
	})
	// The state handler runs after the message handler, in order.
	unblock()
	rec.waitState(t, "disconnected with ErrHandlerBehind", func(s client.StateChange) bool {
		return s.State == client.StateDisconnected && errors.Is(s.Err, client.ErrHandlerBehind)
	})
}
