package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testserver"
)

// historyServer starts a server whose namespace "chat" keeps size messages
// per channel, without rate limits.
func historyServer(t *testing.T, size int) *testServer {
	t.Helper()
	return startServer(t, testserver.Unlimited, func(c *config.Config) {
		c.Namespaces = append(c.Namespaces, config.Namespace{
			Name: "chat", Subscribe: config.SubscribeAny, Publish: config.PublishClients, HistorySize: size,
		})
	})
}

// publish publishes {"n":n} to channel through the server API.
func (ts *testServer) publish(t *testing.T, channel string, n int) {
	t.Helper()
	ts.api(t, "/v1/publish", fmt.Sprintf(`{"channel":%q,"data":{"n":%d}}`, channel, n))
}

// sendTo sends {"n":n} to user through the server API and returns the
// message id.
func (ts *testServer) sendTo(t *testing.T, user string, n int) string {
	t.Helper()
	var r struct{ ID string }
	out := ts.api(t, "/v1/send", fmt.Sprintf(`{"to":%q,"data":{"n":%d}}`, user, n))
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.ID == "" {
		t.Fatalf("send: %s (%v)", out, err)
	}
	return r.ID
}

// scheme returns the scheme of url: ws or tcp, a name for a transport.
func scheme(url string) string {
	s, _, _ := strings.Cut(url, ":")
	return s
}

// ofKind returns the messages of kind k, in order.
func ofKind(msgs []client.Message, k client.Kind) []client.Message {
	var out []client.Message
	for _, m := range msgs {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}

// waitKinds waits until r holds at least n messages of each of kinds, and
// returns all it holds then.
func (r *recorder) waitKinds(t *testing.T, n int, kinds ...client.Kind) []client.Message {
	t.Helper()
	var got []client.Message
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		got = r.messages()
		for _, k := range kinds {
			if c := len(ofKind(got, k)); c < n {
				return fmt.Errorf("%d %s messages, want %d", c, k, n)
			}
		}
		return nil
	})
	return got
}

// checkSequence fails unless msgs carry {"n":1} to {"n":n} in order, each
// once, with positions (offsets or sequences, by pos) that follow one
// another.
func checkSequence(t *testing.T, what string, msgs []client.Message, n int, pos func(client.Message) uint64) {
	t.Helper()
	if len(msgs) != n {
		t.Fatalf("%s: %d messages, want %d", what, len(msgs), n)
	}
	ids := map[string]bool{}
	for i, m := range msgs {
		if want := fmt.Sprintf(`{"n":%d}`, i+1); string(m.Data) != want || ids[m.ID] {
			t.Fatalf("%s: message %d is %s (id %s, seen before: %v), want %s", what, i, m.Data, m.ID, ids[m.ID], want)
		}
		ids[m.ID] = true
		if i > 0 && pos(m) != pos(msgs[i-1])+1 {
			t.Fatalf("%s: message %d at %d follows %d", what, i, pos(m), pos(msgs[i-1]))
		}
	}
}

// The connection is cut many times while messages flow, by the network
// (the proxy closes it) and by the server (asked through its API): the
// application sees every channel message and every direct message once,
// in order, because the client resumes the channel from the last offset
// it received and drops the inbox messages that come again.
func TestResumeAcrossCuts(t *testing.T) {
	t.Parallel()
	ts := historyServer(t, 10000)
	transports(t, ts, func(t *testing.T, url string) {
		user := "alice-" + scheme(url)
		channel := "chat:" + user
		proxy, viaProxy := newCutter(t, url)
		var rec recorder
		c := dial(t, viaProxy, user, append(rec.options(), fastBackoff(), client.WithDevice("phone"))...)
		if err := c.Subscribe(testContext(t), channel); err != nil {
			t.Fatal(err)
		}

		const n = 200
		for i := 1; i <= n; i++ {
			ts.publish(t, channel, i)
			ts.sendTo(t, user, i)
			switch {
			case i == 100:
				// Away for a while: what is published meanwhile can only
				// come by recovery.
				proxy.refuse(true)
				proxy.cut()
			case i == 110:
				proxy.refuse(false)
			case i%40 == 10:
				proxy.cut()
			case i%40 == 30:
				ts.api(t, "/v1/users/"+user+"/disconnect", `{"reconnect":true}`)
			}
		}

		got := rec.waitKinds(t, n, client.KindChannel, client.KindDirect)
		checkSequence(t, "channel", ofKind(got, client.KindChannel), n, func(m client.Message) uint64 { return m.Offset })
		checkSequence(t, "inbox", ofKind(got, client.KindDirect), n, func(m client.Message) uint64 { return m.Seq })

		resumed, missed := 0, 0
		for _, s := range rec.subscriptions() {
			if s.Lost() {
				t.Errorf("recovery failed: %+v", s)
			}
			if s.Resumed {
				resumed++
				missed = max(missed, s.Missed)
			}
		}
		if resumed < 5 || missed < 10 {
			t.Errorf("%d subscribes resumed, the most missed %d: want 5 or more and 10 or more", resumed, missed)
		}
		pending := 0
		for _, s := range rec.stateChanges() {
			if s.State == client.StateConnected && s.Info.Inbox != nil {
				pending = max(pending, s.Info.Inbox.Pending)
			}
		}
		if pending < 10 {
			t.Errorf("no connection got 10 or more inbox messages again (most: %d)", pending)
		}
		if errs := rec.errors(); len(errs) > 0 {
			t.Errorf("errors: %v", errs)
		}
	})
}

// When what the client missed is no longer kept, the subscribed handler
// hears that it is lost, and delivery goes on from the channel's position.
func TestRecoveryLost(t *testing.T) {
	t.Parallel()
	ts := historyServer(t, 3)
	proxy, viaProxy := newCutter(t, ts.tcpURL())
	var rec recorder
	c := dial(t, viaProxy, "alice", append(rec.options(), fastBackoff())...)
	const channel = "chat:lost"
	if err := c.Subscribe(testContext(t), channel); err != nil {
		t.Fatal(err)
	}
	ts.publish(t, channel, 1)
	first := rec.waitMessages(t, 1)[0]
	if first.Offset != 1 || first.Epoch == "" || first.Seq != 0 {
		t.Fatalf("first message %+v, want offset 1 and an epoch", first)
	}
	if subs := rec.subscriptions(); len(subs) != 1 || subs[0].Resumed || subs[0].Position() != (client.Position{Offset: 0, Epoch: first.Epoch}) {
		t.Fatalf("first subscription %+v", subs)
	}

	proxy.refuse(true)
	proxy.cut()
	rec.waitState(t, "disconnected", func(s client.StateChange) bool { return s.State == client.StateDisconnected })
	for i := 2; i <= 11; i++ {
		ts.publish(t, channel, i) // the channel keeps the last 3
	}
	proxy.refuse(false)

	var lost client.Subscription
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		for _, s := range rec.subscriptions() {
			if s.Resumed {
				lost = s
				return nil
			}
		}
		return fmt.Errorf("no resubscribe among %+v", rec.subscriptions())
	})
	if !lost.Lost() || lost.Position() != (client.Position{Offset: 11, Epoch: first.Epoch}) || lost.Missed != 0 {
		t.Fatalf("resubscribe %+v, want lost at offset 11", lost)
	}
	ts.publish(t, channel, 12)
	got := rec.waitMessages(t, 2)
	if len(got) != 2 || got[1].Offset != 12 {
		t.Fatalf("after the loss got %+v, want the message at offset 12 next", got)
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if p, ok := c.Position(channel); !ok || p != got[1].Position() {
			return fmt.Errorf("Position = %+v %v, want %+v", p, ok, got[1].Position())
		}
		return nil
	})
}

// Since resumes from a position the application kept: it gets what came
// after, or hears that it is lost.
func TestSubscribeSince(t *testing.T) {
	t.Parallel()
	ts := historyServer(t, 100)
	ctx := testContext(t)
	const channel = "chat:since"
	var seen recorder
	watcher := dial(t, ts.wsURL(), "watcher", seen.options()...)
	if err := watcher.Subscribe(ctx, channel); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		ts.publish(t, channel, i)
	}
	all := seen.waitMessages(t, 5)

	var rec recorder
	c := dial(t, ts.tcpURL(), "alice", rec.options()...)
	if err := c.Subscribe(ctx, channel, client.Since(all[1].Position())); err != nil {
		t.Fatal(err)
	}
	got := rec.waitMessages(t, 3)
	for i, m := range got {
		if m.ID != all[i+2].ID || m.Offset != uint64(i+3) {
			t.Fatalf("message %d: %+v, want %+v", i, m, all[i+2])
		}
	}
	want := client.Subscription{Channel: channel, Offset: 5, Epoch: all[0].Epoch, Resumed: true, Recovered: true, Missed: 3}
	if subs := rec.subscriptions(); len(subs) != 1 || subs[0] != want {
		t.Fatalf("subscriptions %+v, want %+v", subs, want)
	}

	// A position of another epoch cannot be resumed from.
	var other recorder
	d := dial(t, ts.wsURL(), "bob", other.options()...)
	if err := d.Subscribe(ctx, channel, client.Since(client.Position{Offset: 2, Epoch: "0000000000000000"})); err != nil {
		t.Fatal(err)
	}
	ts.publish(t, channel, 6)
	if m := other.waitMessages(t, 1); len(m) != 1 || m[0].Offset != 6 {
		t.Fatalf("after a lost recovery got %+v, want offset 6 first", m)
	}
	if subs := other.subscriptions(); len(subs) != 1 || !subs[0].Lost() || subs[0].Offset != 5 {
		t.Fatalf("subscriptions %+v, want one lost at offset 5", subs)
	}

	// A channel without history has no position to resume from.
	err := d.Subscribe(ctx, "plain", client.Since(all[0].Position()))
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeInvalidField {
		t.Fatalf("Since on a channel without history: %v, want invalid_field", err)
	}
	if got := d.Subscriptions(); len(got) != 1 || got[0] != channel {
		t.Fatalf("Subscriptions() = %v, want [%s]", got, channel)
	}
}
