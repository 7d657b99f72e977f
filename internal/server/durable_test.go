package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/store"
)

// historyConfig is the test configuration with a namespace "chat" that
// keeps size messages per channel.
func historyConfig(t *testing.T, size int) config.Config {
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	cfg.Namespaces = []config.Namespace{{Name: "chat", Subscribe: config.SubscribeAny, Publish: config.PublishClients, HistorySize: size}}
	return cfg
}

// position is a subscribe result.
type position struct {
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Recovered *bool  `json:"recovered"`
	Missed    int    `json:"missed"`
}

// subscribeAt subscribes to channel, recovering from (offset, epoch) when
// epoch is not empty, and returns the reply's position.
func (c *conn) subscribeAt(channel string, offset uint64, epoch string) position {
	c.t.Helper()
	req := map[string]any{"op": "subscribe", "channel": channel}
	if epoch != "" {
		req["offset"], req["epoch"] = offset, epoch
	}
	f := c.reply(c.send(req))
	var p position
	if err := json.Unmarshal(f.Result, &p); err != nil || p.Epoch == "" {
		c.t.Fatalf("subscribe reply without a position: %s", f.raw)
	}
	return p
}

// publishN publishes n messages to channel through the API, numbered from
// first.
func publishN(t *testing.T, api apiClient, channel string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		api.ok("POST", "/v1/publish", fmt.Sprintf(`{"channel":%q,"data":{"n":%d}}`, channel, i))
	}
}

// expectMessages reads n channel messages and checks that they carry the
// offsets from first on, in order.
func (c *conn) expectMessages(first uint64, n int) []frame {
	c.t.Helper()
	var got []frame
	for i := range n {
		f := c.expect("message")
		if f.Offset != first+uint64(i) {
			c.t.Fatalf("message %d: offset %d, want %d: %s", i, f.Offset, first+uint64(i), f.raw)
		}
		got = append(got, f)
	}
	return got
}

func newAPI(t *testing.T, srv *Server) apiClient {
	return apiClient{t: t, base: "http://" + srv.HTTPAddr().String()}
}

// A client that comes back with the last offset and epoch it saw gets what
// it missed, in order, then live messages; the history survives a restart.
func TestHistoryRecovery(t *testing.T) {
	t.Parallel()
	cfg := historyConfig(t, 100)
	srv := startServer(t, cfg)
	api := newAPI(t, srv)

	a := dialWS(t, srv)
	a.connect("alice")
	p := a.subscribeAt("chat:lobby", 0, "")
	if p.Offset != 0 || p.Recovered != nil {
		t.Fatalf("first subscribe: %+v", p)
	}
	publishN(t, api, "chat:lobby", 1, 5)
	seen := a.expectMessages(1, 5)
	epoch := seen[4].Epoch
	if epoch != p.Epoch {
		t.Fatalf("messages carry epoch %q, the subscribe gave %q", epoch, p.Epoch)
	}
	a.close()

	publishN(t, api, "chat:lobby", 6, 5)
	for _, d := range transports {
		b := d.dial(t, srv)
		b.connect("alice")
		p = b.subscribeAt("chat:lobby", 5, epoch)
		if p.Recovered == nil || !*p.Recovered || p.Missed != 5 || p.Offset != 10 {
			t.Fatalf("%s: recovery reply %+v, want 5 missed up to 10", d.name, p)
		}
		got := b.expectMessages(6, 5)
		if string(got[0].Data) != `{"n":6}` {
			t.Fatalf("%s: first recovered message %s", d.name, got[0].raw)
		}
		b.close()
	}

	// The history is on disk: a new server on the same directory recovers
	// it, in the same epoch.
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, cfg)
	c := dialTCP(t, srv)
	c.connect("alice")
	p = c.subscribeAt("chat:lobby", 8, epoch)
	if p.Recovered == nil || !*p.Recovered || p.Missed != 2 {
		t.Fatalf("after restart: %+v", p)
	}
	c.expectMessages(9, 2)
	publishN(t, newAPI(t, srv), "chat:lobby", 11, 1)
	c.expectMessages(11, 1)
}

// What the server cannot give whole it does not give at all, and says so;
// malformed positions get errors.
func TestRecoveryRefusals(t *testing.T) {
	t.Parallel()
	srv := startServer(t, historyConfig(t, 3))
	api := newAPI(t, srv)
	c := dialWS(t, srv)
	c.connect("alice")
	epoch := c.subscribeAt("chat:x", 0, "").Epoch
	publishN(t, api, "chat:x", 1, 10)
	c.expectMessages(1, 10)

	top := uint64(10)
	for _, tc := range []struct {
		name   string
		offset uint64
		epoch  string
	}{
		{"another epoch", 9, "0000000000000000"},
		{"an offset from the future", 20, epoch},
		{"messages no longer kept", 2, epoch},
	} {
		d := dialWS(t, srv)
		d.connect("bob")
		p := d.subscribeAt("chat:x", tc.offset, tc.epoch)
		if p.Recovered == nil || *p.Recovered || p.Missed != 0 || p.Offset != top || p.Epoch != epoch {
			t.Fatalf("%s: %+v, want recovered false at offset %d", tc.name, p, top)
		}
		// Live delivery goes on right after the reply's position.
		publishN(t, api, "chat:x", 0, 1)
		top++
		d.expectMessages(top, 1)
		c.expectMessages(top, 1)
		d.close()
	}

	d := dialTCP(t, srv)
	d.connect("bob")
	for _, tc := range []struct{ frame, code string }{
		{`{"id":1,"op":"subscribe","channel":"chat:x","offset":-1,"epoch":"e"}`, "invalid_field"},
		{`{"id":2,"op":"subscribe","channel":"chat:x","offset":"5","epoch":"e"}`, "invalid_field"},
		{`{"id":3,"op":"subscribe","channel":"chat:x","offset":5}`, "missing_field"},
		{`{"id":4,"op":"subscribe","channel":"chat:x","epoch":"e"}`, "missing_field"},
		{`{"id":5,"op":"subscribe","channel":"plain","offset":5,"epoch":"e"}`, "invalid_field"},
	} {
		d.writeRaw(tc.frame)
		d.wantError(tc.code)
	}
}

// A client that drops its connection at random points while publishers
// keep going, and comes back each time with the last position it saw,
// sees every message exactly once, in order: nothing is lost or repeated
// at the seam between the stored and the live messages.
func TestRecoverySeamUnderLoad(t *testing.T) {
	t.Parallel()
	srv := startServer(t, historyConfig(t, 10000))
	api := newAPI(t, srv)
	const publishers, each = 4, 250
	ctx, cancel := context.WithCancel(context.Background())
	done := postAll(ctx, t, api.base+"/v1/publish", publishers, each, func(p, i int) string {
		return fmt.Sprintf(`{"channel":"chat:seam","data":{"p":%d,"i":%d}}`, p, i)
	}, nil)
	defer func() { cancel(); <-done }()

	var last uint64
	var epoch string
	ids := map[string]bool{}
	for round := 0; last < publishers*each; round++ {
		if round > 500 {
			t.Fatalf("no end after %d rounds, at offset %d", round, last)
		}
		dial := transports[round%2].dial
		c := dial(t, srv)
		c.connect("alice")
		p := c.subscribeAt("chat:seam", last, epoch)
		if epoch != "" && (p.Recovered == nil || !*p.Recovered) {
			t.Fatalf("round %d: recovery from %d failed: %+v", round, last, p)
		}
		epoch = p.Epoch
		// Read a few messages (or none), then drop the connection with
		// whatever else is on its way.
		for range round % 7 * 9 {
			if last == publishers*each {
				break
			}
			f := c.expect("message")
			if f.Offset != last+1 || ids[string(mustIDRaw(t, f))] {
				t.Fatalf("round %d: got offset %d after %d (or a repeated id): %s", round, f.Offset, last, f.raw)
			}
			ids[string(mustIDRaw(t, f))] = true
			last = f.Offset
		}
		c.close()
	}
	if len(ids) != publishers*each {
		t.Fatalf("saw %d messages, want %d", len(ids), publishers*each)
	}
}

func mustIDRaw(t *testing.T, f frame) string {
	t.Helper()
	var id string
	if err := json.Unmarshal(f.ID, &id); err != nil || id == "" {
		t.Fatalf("message without an id: %s", f.raw)
	}
	return id
}

// connectDevice connects as user on device and returns the inbox state.
func (c *conn) connectDevice(user, device string) inboxState {
	c.t.Helper()
	f := c.reply(c.send(map[string]any{"op": "connect", "user": user, "device": device}))
	var r struct {
		Device string      `json:"device"`
		Inbox  *inboxState `json:"inbox"`
	}
	if err := json.Unmarshal(f.Result, &r); err != nil || r.Inbox == nil || r.Device != device {
		c.t.Fatalf("connect reply without the inbox: %s", f.raw)
	}
	return *r.Inbox
}

type inboxState struct {
	Acked   uint64 `json:"acked"`
	Pending int    `json:"pending"`
	Missed  uint64 `json:"missed"`
	New     bool   `json:"new"`
}

// expectDirect reads n direct messages with the sequences from first on.
func (c *conn) expectDirect(first uint64, n int) []frame {
	c.t.Helper()
	var got []frame
	for i := range n {
		f := c.expect("message")
		if f.Kind != "direct" || f.Seq != first+uint64(i) {
			c.t.Fatalf("message %d: want direct seq %d, got %s", i, first+uint64(i), f.raw)
		}
		got = append(got, f)
	}
	return got
}

func sendN(t *testing.T, api apiClient, user string, first, n int) []string {
	t.Helper()
	var ids []string
	for i := first; i < first+n; i++ {
		out := api.ok("POST", "/v1/send", fmt.Sprintf(`{"to":%q,"data":{"n":%d}}`, user, i))
		ids = append(ids, out["id"].(string))
	}
	return ids
}

// Direct messages wait in the inbox for each device until it acknowledges
// them; each device keeps its own position; a new device starts at the
// oldest message kept; it all survives a restart.
func TestInbox(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	srv := startServer(t, cfg)
	api := newAPI(t, srv)

	ids := sendN(t, api, "bob", 1, 4) // bob is offline
	phone := dialWS(t, srv)
	if st := phone.connectDevice("bob", "phone"); st != (inboxState{Acked: 0, Pending: 4, New: true}) {
		t.Fatalf("first connect: %+v", st)
	}
	got := phone.expectDirect(1, 4)
	if mustIDRaw(t, got[0]) != ids[0] {
		t.Fatalf("first message %s, want id %s", got[0].raw, ids[0])
	}
	// Another device of bob's has its own position: it starts at the
	// oldest message kept, and from now on the inbox keeps what it has not
	// acknowledged.
	laptop := dialWS(t, srv)
	if st := laptop.connectDevice("bob", "laptop"); st != (inboxState{Acked: 0, Pending: 4, New: true}) {
		t.Fatalf("laptop: %+v", st)
	}
	laptop.expectDirect(1, 4)
	laptop.close()
	// Live messages come after, in sequence.
	sendN(t, api, "bob", 5, 1)
	phone.expectDirect(5, 1)
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 2}))
	phone.close()

	// Unacknowledged messages come again, with their ids, on the next
	// connection; acknowledged ones do not.
	phone = dialTCP(t, srv)
	if st := phone.connectDevice("bob", "phone"); st != (inboxState{Acked: 2, Pending: 3}) {
		t.Fatalf("second connect: %+v", st)
	}
	again := phone.expectDirect(3, 3)
	if mustIDRaw(t, again[0]) != ids[2] {
		t.Fatalf("a message came again with another id: %s", again[0].raw)
	}
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 5}))

	laptop = dialWS(t, srv)
	if st := laptop.connectDevice("bob", "laptop"); st != (inboxState{Acked: 0, Pending: 5}) {
		t.Fatalf("laptop again: %+v", st)
	}
	laptop.expectDirect(1, 5)
	// A device that comes later starts at the oldest message kept.
	tablet := dialWS(t, srv)
	if st := tablet.connectDevice("bob", "tablet"); st != (inboxState{Acked: 0, Pending: 5, New: true}) {
		t.Fatalf("tablet: %+v", st)
	}
	tablet.close()
	laptop.reply(laptop.send(map[string]any{"op": "ack", "seq": 3}))

	// The same device id of another user is another device.
	carol := dialWS(t, srv)
	if st := carol.connectDevice("carol", "phone"); st != (inboxState{New: true}) {
		t.Fatalf("carol's phone: %+v", st)
	}
	sendN(t, api, "carol", 1, 1)
	carol.expectDirect(1, 1)
	carol.reply(carol.send(map[string]any{"op": "ack", "seq": 1}))

	// Bad acks change nothing.
	for _, tc := range []struct {
		c    *conn
		seq  uint64
		code string
	}{
		{phone, 4, "ack_backwards"},
		{phone, 6, "ack_beyond_end"},
		{carol, 2, "ack_beyond_end"},
	} {
		tc.c.send(map[string]any{"op": "ack", "seq": tc.seq})
		tc.c.wantError(tc.code)
	}
	plain := dialWS(t, srv)
	plain.connect("bob")
	plain.send(map[string]any{"op": "ack", "seq": 1})
	plain.wantError("no_device")
	plain.writeRaw(`{"id":9,"op":"ack"}`)
	plain.wantError("missing_field")
	plain.writeRaw(`{"id":10,"op":"ack","seq":-1}`)
	plain.wantError("invalid_field")
	bad := dialWS(t, srv)
	bad.writeRaw(`{"id":1,"op":"connect","user":"bob","device":"bad device"}`)
	bad.wantError("invalid_field")

	// Across a restart, positions and messages are kept.
	phone.close()
	laptop.close()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, cfg)
	laptop = dialWS(t, srv)
	if st := laptop.connectDevice("bob", "laptop"); st != (inboxState{Acked: 3, Pending: 2}) {
		t.Fatalf("after restart: %+v", st)
	}
	laptop.expectDirect(4, 2)
	phone = dialWS(t, srv)
	if st := phone.connectDevice("bob", "phone"); st != (inboxState{Acked: 5}) {
		t.Fatalf("phone after restart: %+v", st)
	}
}

// The sweep drops what is past its age, in channels nobody publishes to
// and inboxes nobody reads, and tells the device what it missed.
func TestSweepDropsExpired(t *testing.T) {
	t.Parallel()
	cfg := historyConfig(t, 100)
	cfg.Namespaces[0].HistoryTTL = time.Second
	cfg.InboxTTL = time.Second
	srv := startServer(t, cfg)
	api := newAPI(t, srv)

	phone := dialWS(t, srv)
	phone.connectDevice("bob", "phone") // known from now on
	phone.close()
	c := dialWS(t, srv)
	c.connect("alice")
	epoch := c.subscribeAt("chat:old", 0, "").Epoch
	publishN(t, api, "chat:old", 1, 3)
	c.expectMessages(1, 3)
	sendN(t, api, "bob", 1, 2)
	time.Sleep(1100 * time.Millisecond)
	srv.sweepOnce(context.Background())

	d := dialWS(t, srv)
	d.connect("alice")
	if p := d.subscribeAt("chat:old", 0, epoch); p.Recovered == nil || *p.Recovered || p.Offset != 3 {
		t.Fatalf("recovering expired history: %+v", p)
	}
	if recs, _, err := srv.store.Read(context.Background(), "chat:old", store.Range{From: 1, Limit: 10}); err != nil || len(recs) != 0 {
		t.Fatalf("history left after the sweep: %d records, %v", len(recs), err)
	}
	// The phone was away longer than the inbox keeps messages: the
	// server forgot it, and says so.
	phone = dialWS(t, srv)
	if st := phone.connectDevice("bob", "phone"); st != (inboxState{Acked: 2, New: true}) {
		t.Fatalf("inbox after the sweep: %+v", st)
	}
}

// The store can say of a direct message when each device got it and
// acknowledged it.
func TestReceiptsRecorded(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	srv := startServer(t, cfg)
	api := newAPI(t, srv)
	laptop := dialWS(t, srv)
	laptop.connectDevice("bob", "laptop")
	laptop.close()
	ids := sendN(t, api, "bob", 1, 2) // waits for both devices
	phone := dialWS(t, srv)
	phone.connectDevice("bob", "phone")
	phone.expectDirect(1, 2)
	sendN(t, api, "bob", 3, 1) // live
	phone.expectDirect(3, 1)
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 1}))

	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		r, err := srv.store.Receipt(context.Background(), ids[1])
		if err != nil {
			return err
		}
		var got []string
		for _, d := range r.Devices {
			got = append(got, fmt.Sprintf("%s delivered=%t acked=%t", d.Device, !d.Delivered.IsZero(), !d.Acked.IsZero()))
		}
		want := "[laptop delivered=false acked=false phone delivered=true acked=false]"
		if r.User != "bob" || r.Seq != 2 || fmt.Sprint(got) != want {
			return fmt.Errorf("receipt %+v: %v, want %s", r, got, want)
		}
		return nil
	})
	r, err := srv.store.Receipt(context.Background(), ids[0])
	if err != nil || len(r.Devices) != 2 || r.Devices[1].Acked.IsZero() {
		t.Fatalf("acknowledged message's receipt: %+v, %v", r, err)
	}
}

// Two servers never share a store: the second is refused with an error
// that says why and what to do.
func TestDataDirInUse(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	startServer(t, cfg)
	second, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	err = second.Start()
	if err == nil {
		_ = second.Shutdown(context.Background())
		t.Fatal("a second server started on a data directory in use")
	}
	for _, want := range []string{"--data-dir " + cfg.DataDir, "another herald is running with it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
