package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/store"
	"github.com/heraldpush/herald/internal/store/faulty"
)

// sentLog is what a test was told was stored: ids in the order their calls
// were answered, and the data each was sent with.
type sentLog struct {
	ids  []string
	data map[string]string
}

func (l *sentLog) add(id, data string) {
	if l.data == nil {
		l.data = make(map[string]string)
	}
	l.ids = append(l.ids, id)
	l.data[id] = data
}

// check fails unless got holds every id of l, in order and with its data;
// others (writes answered with an error, which may or may not be stored)
// may come between them, once each.
func (l *sentLog) check(t *testing.T, what string, got []frame) {
	t.Helper()
	seen := map[string]bool{}
	next := 0
	for _, f := range got {
		id := mustIDRaw(t, f)
		if seen[id] {
			t.Fatalf("%s: message %s came twice", what, id)
		}
		seen[id] = true
		data, ok := l.data[id]
		if !ok {
			continue
		}
		if next >= len(l.ids) || l.ids[next] != id {
			t.Fatalf("%s: message %s out of order; want the order %v", what, id, l.ids)
		}
		if string(f.Data) != data {
			t.Fatalf("%s: message %s carries %s, was sent with %s", what, id, f.Data, data)
		}
		next++
	}
	if next != len(l.ids) {
		t.Fatalf("%s: %d of %d stored messages came; missing from %s", what, next, len(l.ids), l.ids[next])
	}
}

// wantStorageFailed checks an API answer that stored nothing.
func wantStorageFailed(t *testing.T, what string, status int, out map[string]any) {
	t.Helper()
	if status != 503 || errCode(out) != "storage_failed" {
		t.Fatalf("%s: %d %v, want 503 storage_failed", what, status, out)
	}
}

// While the store refuses writes (a full disk) or fails them after writing
// (a failing sync), every message that must be stored is refused with
// storage_failed and not delivered, while ephemeral channels, broadcasts
// and history reads keep working. After healing, everything works again,
// every message whose call succeeded is kept, in order, and live delivery
// went on across the offsets whose write failed.
func TestStorageFaults(t *testing.T) {
	t.Parallel()
	var disk *faulty.Store
	srv := startServerWith(t, historyConfig(t, 1000), func(s *Server) {
		s.wrapStore = func(st store.Store) store.Store {
			disk = faulty.Wrap(st)
			return disk
		}
	})
	api := newAPI(t, srv)
	sub := dialWS(t, srv)
	sub.connect("alice")
	epoch := sub.subscribeAt("chat:f", 0, "").Epoch
	sub.subscribe("room:plain")
	phone := dialTCP(t, srv)
	phone.connectDevice("bob", "phone")

	var published, sent sentLog
	n := 0
	var offset, seq uint64 // the last seen live
	// push makes one API call that must succeed, and checks that c gets
	// its message live, after the last position seen.
	push := func(path, body string, log *sentLog, c *conn, last *uint64) {
		t.Helper()
		n++
		data := fmt.Sprintf(`{"n":%d}`, n)
		out := api.ok("POST", path, fmt.Sprintf(body, data))
		log.add(out["id"].(string), data)
		f := c.expect("message")
		if mustIDRaw(t, f) != out["id"] || f.Offset+f.Seq <= *last {
			t.Fatalf("live: got %s after position %d, want %v", f.raw, *last, out["id"])
		}
		*last = f.Offset + f.Seq
	}
	publish := func() { push("/v1/publish", `{"channel":"chat:f","data":%s}`, &published, sub, &offset) }
	send := func() { push("/v1/send", `{"to":"bob","data":%s}`, &sent, phone, &seq) }
	// sendMany sends one batch naming bob twice, which the phone gets
	// live, in order.
	sendMany := func() {
		t.Helper()
		n++
		data := fmt.Sprintf(`{"n":%d}`, n)
		ids := api.ok("POST", "/v1/send", `{"users":["bob","dan","bob"],"data":`+data+`}`)["ids"].([]any)
		for _, i := range []int{0, 2} {
			sent.add(ids[i].(string), data)
			f := phone.expect("message")
			if mustIDRaw(t, f) != ids[i] || f.Seq <= seq {
				t.Fatalf("batch live: got %s after seq %d, want %v", f.raw, seq, ids[i])
			}
			seq = f.Seq
		}
	}
	publish()
	publish()
	send()
	sendMany()
	send()

	disk.Fail(faulty.ErrNoSpace, faulty.Refuse)
	status, out := api.do("POST", "/v1/publish", `{"channel":"chat:f","data":"lost"}`)
	wantStorageFailed(t, "publish on a full disk", status, out)
	status, out = api.do("POST", "/v1/send", `{"to":"bob","data":"lost"}`)
	wantStorageFailed(t, "send on a full disk", status, out)
	status, out = api.do("POST", "/v1/send", `{"users":["bob","dan","bob"],"data":"lost"}`)
	wantStorageFailed(t, "batch send on a full disk", status, out)
	sub.send(map[string]any{"op": "publish", "channel": "chat:f", "data": "lost"})
	sub.wantError("storage_failed")
	phone.send(map[string]any{"op": "ack", "seq": 2})
	phone.wantError("storage_failed")

	// What needs no storage goes on.
	out = api.ok("POST", "/v1/publish", `{"channel":"room:plain","data":"ephemeral"}`)
	if f := sub.expect("message"); f.Channel != "room:plain" || mustIDRaw(t, f) != out["id"] {
		t.Fatalf("ephemeral publish on a full disk: %s", f.raw)
	}
	out = api.ok("POST", "/v1/broadcast", `{"data":"everyone"}`)
	for _, c := range []*conn{sub, phone} {
		if f := c.expect("message"); f.Kind != "broadcast" || mustIDRaw(t, f) != out["id"] {
			t.Fatalf("broadcast on a full disk: %s", f.raw)
		}
	}
	plain := dialWS(t, srv)
	plain.connect("bob")
	// History is read, not written: recovery works.
	reader := dialTCP(t, srv)
	reader.connect("carol")
	if p := reader.subscribeAt("chat:f", 0, epoch); p.Recovered == nil || !*p.Recovered || p.Missed != 2 {
		t.Fatalf("recovery on a full disk: %+v", p)
	}
	reader.expectMessages(1, 2)
	// A device connecting writes (its position, the inbox's trim): it is
	// told to come back later.
	laptop := dialWS(t, srv)
	laptop.send(map[string]any{"op": "connect", "user": "bob", "device": "laptop"})
	laptop.wantError("storage_failed")
	if d := laptop.expectClosed(3 * time.Second); d == nil || d.Code != 3004 || !d.Reconnect {
		t.Fatalf("device connect on a full disk: disconnect %+v, want 3004 with reconnect", d)
	}

	// A write whose sync fails took its offset: it is refused all the
	// same, and live delivery goes on past its offset.
	disk.Fail(faulty.ErrNoSpace, faulty.AfterWrite)
	status, out = api.do("POST", "/v1/publish", `{"channel":"chat:f","data":"maybe"}`)
	wantStorageFailed(t, "publish with a failing sync", status, out)
	status, out = api.do("POST", "/v1/send", `{"to":"bob","data":"maybe"}`)
	wantStorageFailed(t, "send with a failing sync", status, out)
	status, out = api.do("POST", "/v1/send", `{"users":["bob","dan","bob"],"data":"maybe"}`)
	wantStorageFailed(t, "batch send with a failing sync", status, out)

	disk.Heal()
	publish()
	publish()
	send()
	sendMany()
	send()

	// Everything acknowledged is kept, in order: in the channel's history
	// and in the inbox, for a device that joins now (no device has
	// acknowledged anything: the phone's ack failed).
	reader = dialWS(t, srv)
	reader.connect("carol")
	p := reader.subscribeAt("chat:f", 0, epoch)
	if p.Recovered == nil || !*p.Recovered {
		t.Fatalf("recovery after healing: %+v", p)
	}
	published.check(t, "history", readN(reader, p.Missed))
	laptop = dialTCP(t, srv)
	st := laptop.connectDevice("bob", "laptop")
	sent.check(t, "inbox", readN(laptop, st.Pending))
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": seq}))
}

// readN reads n messages.
func readN(c *conn, n int) []frame {
	c.t.Helper()
	got := make([]frame, n)
	for i := range got {
		got[i] = c.expect("message")
	}
	return got
}

// unreadable is a store whose inbox and history reads fail while failing
// is set.
type unreadable struct {
	store.Store
	failing atomic.Bool
}

var errUnreadable = errors.New("injected read failure")

func (u *unreadable) Pending(ctx context.Context, user, device string, limit int) (store.Pending, error) {
	if u.failing.Load() {
		return store.Pending{}, errUnreadable
	}
	return u.Store.Pending(ctx, user, device, limit)
}

func (u *unreadable) Read(ctx context.Context, channel string, r store.Range) ([]store.Record, store.Position, error) {
	if u.failing.Load() {
		return nil, store.Position{}, errUnreadable
	}
	return u.Store.Read(ctx, channel, r)
}

// While the store cannot be read, a device's connect and a recovering
// subscribe get storage_failed (the device is disconnected with 3004, to
// come back), and the rest keeps working; afterwards nothing is missing.
func TestStorageReadFailure(t *testing.T) {
	t.Parallel()
	var disk *unreadable
	srv := startServerWith(t, historyConfig(t, 100), func(s *Server) {
		s.wrapStore = func(st store.Store) store.Store {
			disk = &unreadable{Store: st}
			return disk
		}
	})
	api := newAPI(t, srv)
	c := dialWS(t, srv)
	c.connect("alice")
	epoch := c.subscribeAt("chat:r", 0, "").Epoch
	c.close()
	publishN(t, api, "chat:r", 1, 3)
	ids := sendN(t, api, "bob", 1, 3)

	disk.failing.Store(true)
	phone := dialTCP(t, srv)
	phone.send(map[string]any{"op": "connect", "user": "bob", "device": "phone"})
	phone.wantError("storage_failed")
	if d := phone.expectClosed(3 * time.Second); d == nil || d.Code != 3004 || !d.Reconnect {
		t.Fatalf("device connect on an unreadable store: disconnect %+v, want 3004 with reconnect", d)
	}
	c = dialWS(t, srv)
	c.connect("alice")
	c.send(map[string]any{"op": "subscribe", "channel": "chat:r", "offset": 0, "epoch": epoch})
	c.wantError("storage_failed")
	c.subscribe("room:plain")
	out := api.ok("POST", "/v1/publish", `{"channel":"room:plain","data":1}`)
	if f := c.expect("message"); mustIDRaw(t, f) != out["id"] {
		t.Fatalf("ephemeral publish: %s", f.raw)
	}

	disk.failing.Store(false)
	if p := c.subscribeAt("chat:r", 0, epoch); p.Recovered == nil || !*p.Recovered || p.Missed != 3 {
		t.Fatalf("recovery after the fault: %+v", p)
	}
	c.expectMessages(1, 3)
	phone = dialTCP(t, srv)
	if st := phone.connectDevice("bob", "phone"); st.Pending != 3 {
		t.Fatalf("inbox after the fault: %+v", st)
	}
	for i, f := range phone.expectDirect(1, 3) {
		if mustIDRaw(t, f) != ids[i] {
			t.Fatalf("inbox message %d: %s, want id %s", i, f.raw, ids[i])
		}
	}
}
