package server

import (
	"path/filepath"
	"testing"
)

// startInboxServer starts a test server with inboxes kept in a data
// directory of the test's own.
func startInboxServer(t *testing.T) *Server {
	t.Helper()
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	return startServer(t, cfg)
}

// A device id means something only within its user: a device of another
// user with the same name acknowledging its own inbox moves nothing of the
// first user's, and drops none of the first user's messages.
func TestAckFromAnotherUsersDevice(t *testing.T) {
	t.Parallel()
	srv := startInboxServer(t)
	api := newAPI(t, srv)
	bobIDs := sendN(t, api, "bob", 1, 3)
	sendN(t, api, "carol", 1, 5)

	bob := dialWS(t, srv)
	if st := bob.connectDevice("bob", "phone"); st != (inboxState{Pending: 3, New: true}) {
		t.Fatalf("bob's phone: %+v", st)
	}
	bob.expectDirect(1, 3)
	bob.close()

	carol := dialTCP(t, srv)
	if st := carol.connectDevice("carol", "phone"); st != (inboxState{Pending: 5, New: true}) {
		t.Fatalf("carol's phone: %+v", st)
	}
	carol.expectDirect(1, 5)
	carol.reply(carol.send(map[string]any{"op": "ack", "seq": 3}))
	carol.reply(carol.send(map[string]any{"op": "ack", "seq": 5}))
	carol.send(map[string]any{"op": "ack", "seq": 6})
	carol.wantError("ack_beyond_end")

	bob = dialTCP(t, srv)
	if st := bob.connectDevice("bob", "phone"); st != (inboxState{Pending: 3}) {
		t.Fatalf("bob's phone after carol's phone acknowledged: %+v, want all 3 pending", st)
	}
	for i, f := range bob.expectDirect(1, 3) {
		if mustIDRaw(t, f) != bobIDs[i] {
			t.Fatalf("bob's message %d: %s, want id %s", i, f.raw, bobIDs[i])
		}
	}
}

// Every bad acknowledgement gets an error and leaves the device's position
// where it was: the next connection gets exactly what was not acknowledged.
func TestBadAcksLoseNothing(t *testing.T) {
	t.Parallel()
	srv := startInboxServer(t)
	api := newAPI(t, srv)
	ids := sendN(t, api, "bob", 1, 4)
	phone := dialWS(t, srv)
	phone.connectDevice("bob", "phone")
	phone.expectDirect(1, 4)
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 2}))
	for _, tc := range []struct{ frame, code string }{
		{`{"id":11,"op":"ack","seq":1}`, "ack_backwards"},
		{`{"id":12,"op":"ack","seq":0}`, "ack_backwards"},
		{`{"id":13,"op":"ack","seq":5}`, "ack_beyond_end"},
		{`{"id":14,"op":"ack","seq":18446744073709551615}`, "ack_beyond_end"},
		{`{"id":15,"op":"ack","seq":18446744073709551616}`, "invalid_field"},
		{`{"id":16,"op":"ack","seq":2.5}`, "invalid_field"},
		{`{"id":17,"op":"ack","seq":"3"}`, "invalid_field"},
		{`{"id":18,"op":"ack","seq":null}`, "missing_field"},
	} {
		phone.writeRaw(tc.frame)
		phone.wantError(tc.code)
	}
	// Acknowledging the position again is no error and changes nothing.
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 2}))
	phone.close()

	phone = dialTCP(t, srv)
	if st := phone.connectDevice("bob", "phone"); st != (inboxState{Acked: 2, Pending: 2}) {
		t.Fatalf("after the bad acks: %+v, want acked 2 with 2 pending", st)
	}
	for i, f := range phone.expectDirect(3, 2) {
		if mustIDRaw(t, f) != ids[2+i] {
			t.Fatalf("message %d: %s, want id %s", 3+i, f.raw, ids[2+i])
		}
	}
}

// A server that keeps no inbox says so to an ack, and a device's connect
// gets no inbox state.
func TestAckWithoutInbox(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.InboxTTL = 0
	srv := startServer(t, cfg)
	c := dialWS(t, srv)
	f := c.reply(c.send(map[string]any{"op": "connect", "user": "bob", "device": "phone"}))
	var r struct {
		Inbox *inboxState `json:"inbox"`
	}
	if err := jsonUnmarshal(f.Result, &r); err != nil || r.Inbox != nil {
		t.Fatalf("connect without inboxes: %s", f.raw)
	}
	c.send(map[string]any{"op": "ack", "seq": 1})
	c.wantError("forbidden")
	// Direct messages still go live.
	out := newAPI(t, srv).ok("POST", "/v1/send", `{"to":"bob","data":1}`)
	if m := c.expect("message"); mustIDRaw(t, m) != out["id"] || m.Seq != 0 {
		t.Fatalf("live direct message: %s", m.raw)
	}
}

// Positions at the edges of what the wire carries: the largest offset is
// one from the future (a defined answer, recovered false, and live delivery
// right after the reply's position); what does not fit is refused.
func TestSubscribeOffsetEdges(t *testing.T) {
	t.Parallel()
	srv := startServer(t, historyConfig(t, 10))
	api := newAPI(t, srv)
	c := dialWS(t, srv)
	c.connect("alice")
	epoch := c.subscribeAt("chat:e", 0, "").Epoch
	publishN(t, api, "chat:e", 1, 2)
	c.expectMessages(1, 2)

	d := dialTCP(t, srv)
	d.connect("bob")
	p := d.subscribeAt("chat:e", 1<<64-1, epoch)
	if p.Recovered == nil || *p.Recovered || p.Offset != 2 || p.Missed != 0 {
		t.Fatalf("largest offset: %+v, want recovered false at 2", p)
	}
	publishN(t, api, "chat:e", 3, 1)
	d.expectMessages(3, 1)
	c.expectMessages(3, 1)
	for _, tc := range []struct{ frame, code string }{
		{`{"id":21,"op":"subscribe","channel":"chat:e","offset":18446744073709551616,"epoch":"` + epoch + `"}`, "invalid_field"},
		{`{"id":22,"op":"subscribe","channel":"chat:e","offset":1.5,"epoch":"` + epoch + `"}`, "invalid_field"},
		{`{"id":23,"op":"subscribe","channel":"chat:e","offset":1e3,"epoch":"` + epoch + `"}`, "invalid_field"},
		{`{"id":24,"op":"subscribe","channel":"chat:e","offset":1,"epoch":""}`, "invalid_field"},
		{`{"id":25,"op":"subscribe","channel":"chat:e","offset":1,"epoch":7}`, "invalid_field"},
	} {
		e := dialWS(t, srv)
		e.connect("carol")
		e.writeRaw(tc.frame)
		e.wantError(tc.code)
		// The refused subscribe subscribed nothing: a good one works.
		if p := e.subscribeAt("chat:e", 2, epoch); p.Recovered == nil || !*p.Recovered || p.Missed != 1 {
			t.Fatalf("after %s: %+v", tc.frame, p)
		}
		e.expectMessages(3, 1)
	}
}

// A server without inboxes does not claim to store them at start.
func TestStartLogWithoutInbox(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	cfg.InboxTTL = 0
	_, logs := startServerLogged(t, cfg)
	waitLog(t, logs, `msg="storing channel history; inboxes off (inbox-ttl 0)"`, `dir=`+filepath.Join(cfg.DataDir, "store"))
}
