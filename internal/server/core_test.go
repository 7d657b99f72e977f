package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Both transports in one test: a WebSocket client and a TCP client exchange
// channel, direct and broadcast messages, each seeing the other's id.
func TestAddressingAcrossTransports(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	alice := dialWS(t, srv)
	alice.connect("alice")
	bob := dialTCP(t, srv)
	bob.connect("bob")
	carol := dialWS(t, srv) // connected but subscribed to nothing
	carol.connect("carol")

	alice.subscribe("room:1")
	bob.subscribe("room:1")

	// Channel: both subscribers, not carol.
	id := alice.send(map[string]any{"op": "publish", "channel": "room:1", "data": map[string]any{"text": "hi"}, "from": "mallory"})
	pubReply := alice.reply(id)
	for _, c := range []*conn{alice, bob} {
		m := c.expect("message")
		if m.Kind != "channel" || m.Channel != "room:1" || m.From != "alice" || string(m.Data) != `{"text":"hi"}` {
			t.Fatalf("channel message: %s", m.raw)
		}
		if !strings.Contains(string(pubReply.Result), fmt.Sprintf("%q", mustID(t, m))) {
			t.Fatalf("publish reply %s does not name message %s", pubReply.Result, m.raw)
		}
		if time.Since(time.UnixMilli(m.TS)) > time.Minute {
			t.Fatalf("server time %d is off", m.TS)
		}
	}

	// Direct: only bob.
	bob.reply(bob.send(map[string]any{"op": "send", "to": "carol", "data": "psst"}))
	m := carol.expect("message")
	if m.Kind != "direct" || m.To != "carol" || m.From != "bob" || string(m.Data) != `"psst"` {
		t.Fatalf("direct message: %s", m.raw)
	}

	// Broadcast: everyone, the sender included.
	carol.reply(carol.send(map[string]any{"op": "broadcast", "data": 42}))
	for _, c := range []*conn{alice, bob, carol} {
		m := c.expect("message")
		if m.Kind != "broadcast" || m.From != "carol" || string(m.Data) != "42" {
			t.Fatalf("broadcast: %s", m.raw)
		}
	}
	// Carol got nothing from room:1.
	carol.expectSilence(200 * time.Millisecond)
}

func mustID(t *testing.T, m frame) string {
	t.Helper()
	var id string
	if err := jsonUnmarshal(m.ID, &id); err != nil || id == "" {
		t.Fatalf("message without a string id: %s", m.raw)
	}
	return id
}

// A user on several connections (phone and laptop, one per transport)
// receives a direct message on every one of them.
func TestDirectReachesEveryConnectionOfUser(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			phone := dialWS(t, srv)
			phone.connect("dave")
			laptop := dialTCP(t, srv)
			laptop.connect("dave")
			sender := tr.dial(t, srv)
			sender.connect("erin")
			checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
				if n := len(srv.Hub().UserConnections("dave")); n != 2 {
					return fmt.Errorf("dave has %d connections", n)
				}
				return nil
			})
			sender.reply(sender.send(map[string]any{"op": "send", "to": "dave", "data": map[string]any{"n": 1}}))
			for _, c := range []*conn{phone, laptop} {
				if m := c.expect("message"); m.To != "dave" || m.From != "erin" {
					t.Fatalf("got %s", m.raw)
				}
			}
		})
	}
}

// Every kind of disconnect removes the connection, its user entry and its
// subscriptions, and leaks no goroutine.
func TestCleanupOnDisconnect(t *testing.T) {
	srv := startServer(t, testConfig())
	// Warm up the engines' pools so they do not count as leaks.
	warm := dialWS(t, srv)
	warm.connect("warm")
	warmT := dialTCP(t, srv)
	warmT.connect("warm")
	baseline := runtime.NumGoroutine()

	cases := []struct {
		name  string
		dial  dialer
		close func(c *conn)
	}{
		{"ws clean close", dialWS, func(c *conn) {
			_ = c.ws.WriteControl(8, []byte{3, 232}, time.Now().Add(time.Second))
			_ = c.ws.Close()
		}},
		{"ws killed", dialWS, func(c *conn) { _ = c.ws.UnderlyingConn().Close() }},
		{"tcp closed", dialTCP, func(c *conn) { _ = c.tcp.Close() }},
		{"ws handshake only", dialWS, func(c *conn) { _ = c.ws.Close() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var conns []*conn
			for i := range 20 {
				c := tc.dial(t, srv)
				if tc.name != "ws handshake only" {
					c.connect(fmt.Sprintf("u%d", i%5))
					c.subscribe("room:cleanup")
					c.subscribe(fmt.Sprintf("topic:%d", i))
				}
				conns = append(conns, c)
			}
			for _, c := range conns {
				tc.close(c)
			}
			checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
				st := srv.Hub().Stats()
				if st.Connections != 2 || st.Users != 1 || st.Channels != 0 || srv.Sessions() != 2 {
					return fmt.Errorf("registry not clean: %+v, sessions %d", st, srv.Sessions())
				}
				return nil
			})
		})
	}
	checkFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n > baseline+2 {
			return fmt.Errorf("%d goroutines, baseline %d", n, baseline)
		}
		return nil
	})
}

// A client that stops reading is dropped as a slow consumer, and the others
// on the same channel keep receiving everything.
func TestSlowConsumerIsolated(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxOutboundBytes = 256 << 10
	cfg.OpsPerSecond, cfg.OpsBurst = 1e6, 1e6
	srv := startServer(t, cfg)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			slow := tr.dial(t, srv)
			slow.connect("slow")
			slow.subscribe("firehose:" + tr.name)
			fast := dialWS(t, srv)
			fast.connect("fast")
			fast.subscribe("firehose:" + tr.name)
			pub := dialTCP(t, srv)
			pub.connect("pub")

			pad := strings.Repeat("x", 8<<10)
			got := 0
			for i := 0; len(srv.Hub().UserConnections("slow")) > 0; i++ {
				if i > 5000 {
					t.Fatal("slow consumer never disconnected")
				}
				pub.reply(pub.send(map[string]any{"op": "publish", "channel": "firehose:" + tr.name, "data": map[string]any{"n": i, "pad": pad}}))
				// The fast reader gets every message published, in order:
				// message i is the next it reads.
				m := fast.expect("message")
				var d struct{ N int }
				if err := json.Unmarshal(m.Data, &d); err != nil || d.N != i {
					t.Fatalf("fast reader: message %d is %.40s", i, m.Data)
				}
				got++
			}
			if got == 0 {
				t.Fatal("no messages")
			}
			if srv.Hub().Subscribers("firehose:"+tr.name) != 1 {
				t.Fatalf("slow consumer still subscribed")
			}
		})
	}
}

// A client that never answers pings is dropped within ping-interval +
// pong-timeout (+ one sweep); one that answers stays.
func TestHeartbeatTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.PingInterval, cfg.PongTimeout = time.Second, time.Second
	srv := startServer(t, cfg)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			silent := tr.dial(t, srv)
			silent.connect("silent-" + tr.name)
			lively := tr.dial(t, srv)
			lively.connect("lively-" + tr.name)

			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					f, err := lively.readFrameErr(6 * time.Second)
					if err != nil {
						return
					}
					if f.Type == "ping" && lively.tryWrite(`{"op":"pong"}`) != nil {
						return
					}
				}
			}()
			d := silent.expectClosed(10 * time.Second)
			if d == nil || d.Code != 3002 || d.Reason != "heartbeat_timeout" || !d.Reconnect {
				t.Fatalf("want disconnect 3002 heartbeat_timeout, got %+v", d)
			}
			if len(srv.Hub().UserConnections("lively-"+tr.name)) != 1 {
				t.Fatal("a client answering pings was dropped")
			}
			lively.close()
			<-done
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.HandshakeTimeout = 500 * time.Millisecond
	srv := startServer(t, cfg)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			c := tr.dial(t, srv)
			d := c.expectClosed(5 * time.Second)
			if d == nil || d.Code != 3003 {
				t.Fatalf("want disconnect 3003, got %+v", d)
			}
		})
	}
}

// Shutdown tells every client to reconnect, flushes what was queued before
// it, and returns once they are gone.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	var conns []*conn
	for i, tr := range []dialer{dialWS, dialTCP, dialWS, dialTCP} {
		c := tr(t, srv)
		c.connect(fmt.Sprintf("s%d", i))
		c.subscribe("room:shutdown")
		conns = append(conns, c)
	}
	pending := dialWS(t, srv) // never connects

	conns[0].reply(conns[0].send(map[string]any{"op": "publish", "channel": "room:shutdown", "data": "last words"}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(ctx) }()

	for i, c := range append(conns, pending) {
		if i < len(conns) {
			if m := c.expect("message"); string(m.Data) != `"last words"` {
				t.Fatalf("conn %d: want the last message, got %s", i, m.raw)
			}
		}
		d := c.expectClosed(5 * time.Second)
		if d == nil || d.Code != 3000 || d.Reason != "shutdown" || !d.Reconnect {
			t.Fatalf("conn %d: want disconnect 3000 shutdown, got %+v", i, d)
		}
	}
	if err := <-shutdownErr; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if srv.Sessions() != 0 {
		t.Fatalf("%d sessions left", srv.Sessions())
	}
}

// A server shut down right after it starts stops every goroutine it
// started: the engines' pollers must not miss the stop.
func TestShutdownRightAfterStart(t *testing.T) {
	cycle := func() {
		srv, err := New(testConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cycle() // warm up process-wide pools
	baseline := runtime.NumGoroutine()
	for range 3 {
		cycle()
	}
	checkFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n > baseline {
			return fmt.Errorf("%d goroutines after shutdown, %d before", n, baseline)
		}
		return nil
	})
}
