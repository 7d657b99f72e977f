package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
)

// sendFirst sends {"n":1} to {"n":n} to user and returns their ids.
func (ts *testServer) sendFirst(t *testing.T, user string, n int) []string {
	t.Helper()
	var ids []string
	for i := 1; i <= n; i++ {
		ids = append(ids, ts.sendTo(t, user, i))
	}
	return ids
}

// connectedInbox waits for the first connection of r's client and returns
// its inbox state.
func connectedInbox(t *testing.T, r *recorder) client.InboxState {
	t.Helper()
	s := r.waitState(t, "connected", func(s client.StateChange) bool { return s.State == client.StateConnected })
	if s.Info.Inbox == nil || s.Info.Device != "phone" {
		t.Fatalf("connected without the inbox: %+v", s.Info)
	}
	return *s.Info.Inbox
}

// checkInbox fails unless msgs are the direct messages ids, from sequence
// first on.
func checkInbox(t *testing.T, msgs []client.Message, ids []string, first uint64) {
	t.Helper()
	var got []string
	for _, m := range msgs {
		got = append(got, fmt.Sprintf("%s %s@%d", m.Kind, m.ID, m.Seq))
	}
	if len(msgs) != len(ids) {
		t.Fatalf("%d messages, want %d: %v", len(msgs), len(ids), got)
	}
	for i, m := range msgs {
		if m.Kind != client.KindDirect || m.ID != ids[i] || m.Seq != first+uint64(i) {
			t.Fatalf("message %d of %v: want direct %s@%d", i, got, ids[i], first+uint64(i))
		}
	}
}

// A device gets the messages sent while it was away; once its handler
// has had them, the client acknowledges them (the last batch on Close),
// and they do not come again.
func TestInboxAcknowledged(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	transports(t, ts, func(t *testing.T, url string) {
		user := "bob-" + scheme(url)
		ids := ts.sendFirst(t, user, 3)
		var rec recorder
		c := dial(t, url, user, append(rec.options(), client.WithDevice("phone"))...)
		if st := connectedInbox(t, &rec); st != (client.InboxState{Acked: 0, Pending: 3}) {
			t.Fatalf("inbox %+v, want 3 pending", st)
		}
		checkInbox(t, rec.waitMessages(t, 3), ids, 1)
		_ = c.Close()

		var again recorder
		dial(t, url, user, append(again.options(), client.WithDevice("phone"))...)
		if st := connectedInbox(t, &again); st != (client.InboxState{Acked: 3, Pending: 0}) {
			t.Fatalf("inbox after Close %+v, want all 3 acknowledged", st)
		}
		id := ts.sendTo(t, user, 4)
		checkInbox(t, again.waitMessages(t, 1), []string{id}, 4)
	})
}

// The client acknowledges without being closed, in its next batch.
func TestInboxAcknowledgedWhileRunning(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.sendFirst(t, "bob", 3)
	var rec recorder
	dial(t, ts.wsURL(), "bob", append(rec.options(), client.WithDevice("phone"))...)
	rec.waitMessages(t, 3)
	// Another connection of the same device sees the position move; it
	// acknowledges nothing itself.
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		var probe recorder
		c := dial(t, ts.tcpURL(), "bob", append(probe.options(), client.WithDevice("phone"), client.WithManualAck())...)
		defer c.Close()
		if st := connectedInbox(t, &probe); st.Acked != 3 {
			return fmt.Errorf("inbox %+v, want 3 acknowledged", st)
		}
		return nil
	})
}

// With WithManualAck, what the application does not acknowledge comes
// again on the next client of the device, with the same ids; Ack moves
// the position.
func TestInboxManualAck(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ids := ts.sendFirst(t, "bob", 3)
	manual := func(rec *recorder) *client.Client {
		return dial(t, ts.wsURL(), "bob", append(rec.options(), client.WithDevice("phone"), client.WithManualAck())...)
	}
	var first recorder
	c := manual(&first)
	checkInbox(t, first.waitMessages(t, 3), ids, 1)
	_ = c.Close()

	var second recorder
	c = manual(&second)
	if st := connectedInbox(t, &second); st != (client.InboxState{Acked: 0, Pending: 3}) {
		t.Fatalf("inbox %+v, want the 3 again", st)
	}
	checkInbox(t, second.waitMessages(t, 3), ids, 1)
	c.Ack(2)
	_ = c.Close()

	var third recorder
	manual(&third)
	if st := connectedInbox(t, &third); st != (client.InboxState{Acked: 2, Pending: 1}) {
		t.Fatalf("inbox %+v, want 2 acknowledged and 1 pending", st)
	}
	checkInbox(t, third.waitMessages(t, 1), ids[2:], 3)
}

// Messages the handler had that come again on a new connection, as they
// do when the acknowledgement did not reach the server, are dropped by id.
func TestInboxDropsDuplicates(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ids := ts.sendFirst(t, "bob", 3)
	var rec recorder
	c := dial(t, ts.tcpURL(), "bob", append(rec.options(), fastBackoff(), client.WithDevice("phone"), client.WithManualAck())...)
	checkInbox(t, rec.waitMessages(t, 3), ids, 1)

	ts.api(t, "/v1/users/bob/disconnect", `{"reconnect":true}`)
	var connects []client.StateChange
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		connects = connects[:0]
		for _, s := range rec.stateChanges() {
			if s.State == client.StateConnected {
				connects = append(connects, s)
			}
		}
		if len(connects) < 2 {
			return fmt.Errorf("%d connections", len(connects))
		}
		return nil
	})
	if st := connects[1].Info.Inbox; st == nil || st.Pending != 3 {
		t.Fatalf("second connection's inbox %+v, want the 3 sent again", st)
	}
	// The new message comes after the ones sent again.
	ids = append(ids, ts.sendTo(t, "bob", 4))
	got := rec.waitMessages(t, 4)
	if err := c.Ping(testContext(t)); err != nil {
		t.Fatal(err)
	}
	checkInbox(t, got, ids, 1)
}
