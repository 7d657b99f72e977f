package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/store"
)

func receipt(t *testing.T, s store.Store, id string) store.Receipt {
	t.Helper()
	r, err := s.Receipt(context.Background(), id)
	if err != nil {
		t.Fatalf("receipt of %s: %v", id, err)
	}
	return r
}

// deviceReceipt returns the receipt of device in r, failing when r does not
// list it.
func deviceReceipt(t *testing.T, r store.Receipt, device string) store.DeviceReceipt {
	t.Helper()
	for _, d := range r.Devices {
		if d.Device == device {
			return d
		}
	}
	t.Fatalf("receipt of %s lists no device %s: %+v", r.ID, device, r.Devices)
	return store.DeviceReceipt{}
}

// ackNow acknowledges up to seq and returns the interval in which the store
// took the acknowledgement's time.
func ackNow(t *testing.T, s store.Store, user, device string, seq uint64) (from, to time.Time) {
	t.Helper()
	from = time.Now()
	if err := s.Ack(context.Background(), user, device, seq); err != nil {
		t.Fatalf("ack %s/%s %d: %v", user, device, seq, err)
	}
	return from, time.Now()
}

func wantAckedIn(t *testing.T, what string, at, from, to time.Time) {
	t.Helper()
	if at.Before(from) || at.After(to) {
		t.Fatalf("%s: acked at %v, want between %v and %v", what, at, from, to)
	}
}

func push(t *testing.T, s store.Store, user, id string, at time.Time) uint64 {
	t.Helper()
	seq, err := s.Push(context.Background(), user, id, at, data(0))
	if err != nil {
		t.Fatalf("push %s to %s: %v", id, user, err)
	}
	return seq
}

func delivered(t *testing.T, s store.Store, user, device string, seq uint64, at time.Time) {
	t.Helper()
	if err := s.Delivered(context.Background(), user, device, seq, at); err != nil {
		t.Fatalf("delivered %s/%s %d: %v", user, device, seq, err)
	}
}

func testReceipts(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Receipt(ctx, "never"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("receipt of an id never pushed: %v", err)
	}
	for i, id := range []string{"r1", "r2", "r3"} {
		push(t, s, "u", id, minutes(i))
	}
	push(t, s, "other", "o1", t0)
	r := receipt(t, s, "r2")
	if r.ID != "r2" || r.User != "u" || r.Seq != 2 || !r.Accepted.Equal(minutes(1)) || len(r.Devices) != 0 {
		t.Fatalf("receipt before any device: %+v", r)
	}

	delivered(t, s, "u", "phone", 2, minutes(10))
	delivered(t, s, "u", "phone", 1, minutes(11)) // behind: changes nothing
	delivered(t, s, "u", "phone", 3, minutes(12))
	if err := s.Delivered(ctx, "u", "phone", 4, minutes(13)); !errors.Is(err, store.ErrAckBeyondEnd) {
		t.Fatalf("delivered beyond the end: %v", err)
	}
	for id, want := range map[string]time.Time{"r1": minutes(10), "r2": minutes(10), "r3": minutes(12)} {
		d := deviceReceipt(t, receipt(t, s, id), "phone")
		if !d.Delivered.Equal(want) || !d.Acked.IsZero() {
			t.Fatalf("%s to phone: %+v, want delivered at %v and not acked", id, d, want)
		}
	}

	from, to := ackNow(t, s, "u", "phone", 2)
	ackNow(t, s, "u", "phone", 2) // again: changes nothing
	for _, id := range []string{"r1", "r2"} {
		d := deviceReceipt(t, receipt(t, s, id), "phone")
		wantAckedIn(t, id+" by phone", d.Acked, from, to)
		if !d.Delivered.Equal(minutes(10)) {
			t.Fatalf("%s by phone: delivered at %v after the ack, want %v", id, d.Delivered, minutes(10))
		}
	}
	if d := deviceReceipt(t, receipt(t, s, "r3"), "phone"); !d.Acked.IsZero() {
		t.Fatalf("r3 acked at %v by an ack up to 2", d.Acked)
	}

	// Acknowledged without a delivery recorded: delivered when acked.
	from, to = ackNow(t, s, "u", "laptop", 3)
	d := deviceReceipt(t, receipt(t, s, "r3"), "laptop")
	wantAckedIn(t, "r3 by laptop", d.Acked, from, to)
	if !d.Delivered.Equal(d.Acked) {
		t.Fatalf("r3 by laptop: delivered at %v, acked at %v", d.Delivered, d.Acked)
	}
	r = receipt(t, s, "r1")
	if len(r.Devices) != 2 || r.Devices[0].Device != "laptop" || r.Devices[1].Device != "phone" {
		t.Fatalf("devices of r1: %+v, want laptop and phone", r.Devices)
	}
	if r := receipt(t, s, "o1"); r.User != "other" || len(r.Devices) != 0 {
		t.Fatalf("another user's message: %+v", r)
	}
}

// testReceiptsOutliveMessages: a receipt stays answerable after its message
// left the inbox, until ReceiptsBefore passes it.
func testReceiptsOutliveMessages(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, id := range []string{"r1", "r2", "r3", "r4"} {
		push(t, s, "u", id, t0.Add(time.Duration(i)*time.Hour))
	}
	delivered(t, s, "u", "phone", 3, minutes(1))
	from, to := ackNow(t, s, "u", "phone", 3)
	// 1 to 3 leave the inbox: acknowledged by every device.
	n, err := s.Expire(ctx, "u", store.InboxLimits{ReceiptsBefore: t0.Add(90 * time.Minute)})
	if err != nil || n != 3 {
		t.Fatalf("expire dropped %d, %v; want 3", n, err)
	}
	for _, id := range []string{"r1", "r2"} {
		if _, err := s.Receipt(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("receipt of %s past retention: %v", id, err)
		}
	}
	d := deviceReceipt(t, receipt(t, s, "r3"), "phone")
	wantAckedIn(t, "r3 after it left the inbox", d.Acked, from, to)
	if !d.Delivered.Equal(minutes(1)) {
		t.Fatalf("r3 after it left the inbox: delivered at %v", d.Delivered)
	}
	// A message still in the inbox keeps its receipt whatever its age.
	if _, err := s.Expire(ctx, "u", store.InboxLimits{ReceiptsBefore: t0.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if r := receipt(t, s, "r4"); r.Seq != 4 {
		t.Fatalf("receipt of a message in the inbox: %+v", r)
	}
	if _, err := s.Receipt(ctx, "r3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("receipt of r3 past retention: %v", err)
	}
	// Receipts kept while marks are pruned: r4 is still answered right.
	ackFrom, ackTo := ackNow(t, s, "u", "phone", 4)
	wantAckedIn(t, "r4", deviceReceipt(t, receipt(t, s, "r4"), "phone").Acked, ackFrom, ackTo)
}

// testReceiptsOnlyWhatWasHad: a device is not reported to have had a
// message it never got: one dropped before it acknowledged, or one that
// left the inbox before the device became known.
func testReceiptsOnlyWhatWasHad(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, id := range []string{"r1", "r2", "r3", "r4"} {
		push(t, s, "u", id, minutes(i))
	}
	ackNow(t, s, "u", "phone", 1)
	// 1 goes (acked by all), then 2 and 3 go to the cap before phone got them.
	if n, err := s.Expire(ctx, "u", store.InboxLimits{MaxCount: 1}); err != nil || n != 3 {
		t.Fatalf("expire dropped %d, %v; want 3", n, err)
	}
	ackNow(t, s, "u", "phone", 4)
	delivered(t, s, "u", "tablet", 4, minutes(30)) // known after 1 to 3 left
	for _, id := range []string{"r2", "r3"} {
		r := receipt(t, s, id)
		for _, d := range r.Devices {
			if !d.Delivered.IsZero() || !d.Acked.IsZero() {
				t.Fatalf("%s was dropped before any device had it: %+v", id, r.Devices)
			}
		}
	}
	if d := deviceReceipt(t, receipt(t, s, "r4"), "tablet"); !d.Delivered.Equal(minutes(30)) {
		t.Fatalf("r4 to tablet: %+v", d)
	}
	if d := deviceReceipt(t, receipt(t, s, "r1"), "tablet"); !d.Delivered.IsZero() {
		t.Fatalf("r1 reported delivered to a device known after it left: %+v", d)
	}
	if d := deviceReceipt(t, receipt(t, s, "r1"), "phone"); d.Acked.IsZero() {
		t.Fatalf("r1 not acked by phone: %+v", d)
	}
}
