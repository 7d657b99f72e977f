package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
)

func TestSubscribePublish(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	transports(t, ts, func(t *testing.T, url string) {
		ctx := testContext(t)
		var rec recorder
		alice := dial(t, url, "alice", rec.options()...)
		bob := dial(t, url, "bob")

		if err := alice.Subscribe(ctx, "room:42"); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		id, err := bob.Publish(ctx, "room:42", map[string]string{"text": "hello"})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		m := rec.waitMessages(t, 1)[0]
		if m.ID != id || m.Kind != client.KindChannel || m.Channel != "room:42" || m.From != "bob" || string(m.Data) != `{"text":"hello"}` {
			t.Errorf("got %+v, want id %s on room:42 from bob with {\"text\":\"hello\"}", m, id)
		}
		if m.TS == 0 || m.Time().IsZero() {
			t.Errorf("message has no time: %+v", m)
		}
		var raw map[string]any
		if err := json.Unmarshal(m.Raw, &raw); err != nil || raw["type"] != "message" {
			t.Errorf("Raw = %s (%v), want the message frame", m.Raw, err)
		}
		if got := alice.Subscriptions(); len(got) != 1 || got[0] != "room:42" {
			t.Errorf("Subscriptions() = %v, want [room:42]", got)
		}

		if err := alice.Unsubscribe(ctx, "room:42"); err != nil {
			t.Fatalf("unsubscribe: %v", err)
		}
		if _, err := bob.Publish(ctx, "room:42", "unheard"); err != nil {
			t.Fatalf("publish: %v", err)
		}
		// The ping's reply comes after anything published before it.
		if err := alice.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
		if got := rec.messages(); len(got) != 1 {
			t.Errorf("after unsubscribe got %d messages, want 1: %+v", len(got), got)
		}
	})
}

func TestSendReachesEveryConnectionOfUser(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ctx := testContext(t)
	var onWS, onTCP recorder
	dial(t, ts.wsURL(), "bob", onWS.options()...)
	dial(t, ts.tcpURL(), "bob", onTCP.options()...)
	alice := dial(t, ts.tcpURL(), "alice")

	id, err := alice.Send(ctx, "bob", "psst")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	for name, rec := range map[string]*recorder{"websocket": &onWS, "tcp": &onTCP} {
		m := rec.waitMessages(t, 1)[0]
		if m.ID != id || m.Kind != client.KindDirect || m.To != "bob" || m.From != "alice" || string(m.Data) != `"psst"` {
			t.Errorf("%s connection got %+v, want direct %s to bob from alice", name, m, id)
		}
	}
	if _, err := alice.Send(ctx, "nobody-online", 1); err != nil {
		t.Errorf("send to an offline user: %v", err)
	}
}

func TestBroadcastReachesEveryone(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *config.Config) { c.ClientBroadcast = true })
	ctx := testContext(t)
	var a, b recorder
	alice := dial(t, ts.wsURL(), "alice", a.options()...)
	dial(t, ts.tcpURL(), "bob", b.options()...)

	id, err := alice.Broadcast(ctx, json.RawMessage(`{ "text" : "hello, everyone" }`))
	if err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	for name, rec := range map[string]*recorder{"sender": &a, "other": &b} {
		m := rec.waitMessages(t, 1)[0]
		if m.ID != id || m.Kind != client.KindBroadcast || m.From != "alice" || string(m.Data) != `{"text":"hello, everyone"}` {
			t.Errorf("%s got %+v, want broadcast %s from alice", name, m, id)
		}
	}
}

func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ctx := testContext(t)
	var rec recorder
	c := dial(t, ts.tcpURL(), "alice", rec.options()...)
	if err := c.Subscribe(ctx, "load"); err != nil {
		t.Fatal(err)
	}
	const n = 30 // within the default burst of 40 publishes
	ids := make(chan string, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id, err := c.Publish(ctx, "load", i)
			ids <- id
			errs <- err
		}()
	}
	want := make(map[string]bool)
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("publish: %v", err)
		}
		want[<-ids] = true
	}
	for _, m := range rec.waitMessages(t, n) {
		if !want[m.ID] {
			t.Errorf("message %s was not returned by any publish", m.ID)
		}
		delete(want, m.ID)
	}
	if len(want) != 0 {
		t.Errorf("ids never delivered: %v", want)
	}
}

func TestErrorReplies(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	transports(t, ts, func(t *testing.T, url string) {
		ctx := testContext(t)
		c := dial(t, url, "alice")

		cases := []struct {
			name string
			op   func() error
			want client.Code
		}{
			{"subscribe", func() error { return c.Subscribe(ctx, "bad channel") }, client.CodeInvalidChannel},
			{"publish", func() error { _, err := c.Publish(ctx, "bad channel", 1); return err }, client.CodeInvalidChannel},
			{"send", func() error { _, err := c.Send(ctx, "bad user!", 1); return err }, client.CodeInvalidUser},
			{"unsubscribe", func() error { return c.Unsubscribe(ctx, "never-joined") }, client.CodeNotSubscribed},
			{"subscribe to another user's channel", func() error { return c.Subscribe(ctx, "user:bob") }, client.CodeForbidden},
			{"broadcast", func() error { _, err := c.Broadcast(ctx, 1); return err }, client.CodeForbidden},
		}
		for _, tc := range cases {
			err := tc.op()
			var e *client.Error
			if !errors.As(err, &e) || e.Code != tc.want || e.Message == "" {
				t.Errorf("%s: got %v, want *client.Error with code %s", tc.name, err, tc.want)
			}
		}
		if got := c.Subscriptions(); len(got) != 0 {
			t.Errorf("refused subscription kept: %v", got)
		}
		// The errors do not break the connection.
		if _, err := c.Publish(ctx, "room", "still here"); err != nil {
			t.Errorf("publish after errors: %v", err)
		}
		if _, err := c.Publish(ctx, "room", nil); !errors.Is(err, client.ErrNullData) {
			t.Errorf("publish nil: got %v, want ErrNullData", err)
		}
	})
}

func TestRefusedConnect(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Insecure = false })
	transports(t, ts, func(t *testing.T, url string) {
		ctx := testContext(t)
		c, err := client.Dial(ctx, url, client.WithUser("alice"))
		if err == nil {
			_ = c.Close()
			t.Fatal("dial succeeded against a server that accepts no credentials")
		}
		var e *client.Error
		if !errors.As(err, &e) || e.Code != client.CodeUnauthorized {
			t.Errorf("got %v, want *client.Error unauthorized", err)
		}
		var d *client.Disconnect
		if !errors.As(err, &d) || d.Code != client.DisconnectUnauthorized || d.Reconnect {
			t.Errorf("got %v, want *client.Disconnect 3502 without reconnect", err)
		}
	})
	checkNoClientGoroutines(t)
}

func TestDialErrors(t *testing.T) {
	ctx := testContext(t)
	for _, url := range []string{"http://127.0.0.1:1/ws", "127.0.0.1:7600", "ws:///ws"} {
		if _, err := client.Dial(ctx, url); !errors.Is(err, client.ErrUnsupportedURL) {
			t.Errorf("Dial(%q): got %v, want ErrUnsupportedURL", url, err)
		}
	}
	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	for _, url := range []string{"tcp://" + addr, "ws://" + addr + "/ws"} {
		if _, err := client.Dial(ctx, url, client.WithUser("alice")); err == nil {
			t.Errorf("dial %s succeeded with no server", url)
		}
	}
	checkNoClientGoroutines(t)
}

func TestTerminalDisconnectStopsClient(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *config.Config) { c.MaxFrameBytes = 1024 })
	transports(t, ts, func(t *testing.T, url string) {
		ctx := testContext(t)
		var rec recorder
		c := dial(t, url, "alice", append(rec.options(), client.WithBackoff(time.Millisecond, 10*time.Millisecond))...)

		big := make([]byte, 2048)
		for i := range big {
			big[i] = 'x'
		}
		if _, err := c.Publish(ctx, "room", string(big)); !errors.Is(err, client.ErrConnectionLost) {
			t.Errorf("oversized publish: got %v, want ErrConnectionLost", err)
		}
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("client still running after a disconnect that forbids reconnecting")
		}
		var d *client.Disconnect
		if err := c.Err(); !errors.Is(err, client.ErrClosed) || !errors.As(err, &d) || d.Code != client.DisconnectFrameTooLarge {
			t.Errorf("Err() = %v, want ErrClosed wrapping disconnect 3501", err)
		}
		if _, err := c.Send(ctx, "bob", 1); !errors.Is(err, client.ErrClosed) {
			t.Errorf("send after stop: got %v, want ErrClosed", err)
		}
		last := rec.waitState(t, "closed", func(s client.StateChange) bool { return s.State == client.StateClosed })
		if !errors.As(last.Err, &d) || d.Code != client.DisconnectFrameTooLarge {
			t.Errorf("closed state carries %v, want disconnect 3501", last.Err)
		}
		if c.State() != client.StateClosed {
			t.Errorf("State() = %s, want closed", c.State())
		}
	})
}

func TestStateChangesOnDial(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var rec recorder
	c := dial(t, ts.wsURL(), "alice", rec.options()...)
	s := rec.waitState(t, "connected", func(s client.StateChange) bool { return s.State == client.StateConnected })
	if s.Info.User != "alice" || s.Info.Client == "" || s.Info.PingInterval != ts.Config.PingInterval || s.Info.PongTimeout != ts.Config.PongTimeout {
		t.Errorf("connected info = %+v, want alice with the server's heartbeat", s.Info)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range rec.stateChanges() {
		got = append(got, s.State.String())
	}
	if want := "[connecting connected closed]"; fmt.Sprint(got) != want {
		t.Errorf("states %v, want %s", got, want)
	}
	if err := c.Err(); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Err() after Close = %v, want ErrClosed", err)
	}
}
