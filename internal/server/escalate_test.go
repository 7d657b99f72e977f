package server

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
)

// escalateConfig is the test configuration with the events webhook on to
// b and escalations after after.
func escalateConfig(t *testing.T, b *eventsBackend, after time.Duration) config.Config {
	cfg := eventsConfig(b, 0)
	cfg.DataDir = t.TempDir()
	cfg.EscalateAfter = after
	return cfg
}

// unackedEvents returns the message.unacknowledged events the backend
// took, repeats included.
func (b *eventsBackend) unackedEvents() []hookEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []hookEvent
	for _, e := range b.events {
		if e.Type == eventUnacked {
			out = append(out, e)
		}
	}
	return out
}

// waitUnacked waits until the backend took message.unacknowledged for id,
// and returns it.
func (b *eventsBackend) waitUnacked(id string) hookEvent {
	b.t.Helper()
	var got hookEvent
	checkFor(b.t, 15*time.Second, 10*time.Millisecond, func() error {
		for _, e := range b.unackedEvents() {
			if e.Unacked != nil && e.ID == id {
				got = e
				return nil
			}
		}
		return fmt.Errorf("no message.unacknowledged for %s", id)
	})
	return got
}

// wantUnackedIDs checks the ids of every message.unacknowledged taken, in
// order: each message once.
func (b *eventsBackend) wantUnackedIDs(want ...string) {
	b.t.Helper()
	var got []string
	for _, e := range b.unackedEvents() {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, want) {
		b.t.Fatalf("message.unacknowledged for %q, want %q", got, want)
	}
}

// A message no device acknowledged is posted once after escalate-after,
// with its data and the devices that were handed it; a user with no
// device at all gets it too.
func TestEscalationFires(t *testing.T) {
	t.Parallel()
	b := startEventsBackend(t, 0)
	srv := startServer(t, escalateConfig(t, b, 300*time.Millisecond))
	api := newAPI(t, srv)
	phone := dialWS(t, srv)
	phone.connectDevice("bob", "phone")

	bobs := sendN(t, api, "bob", 1, 1)
	phone.expectDirect(1, 1)
	alices := sendN(t, api, "alice", 7, 1) // alice never connected
	ev := b.waitUnacked(bobs[0])
	if ev.User != "bob" || ev.InboxSeq != 1 || string(ev.Data) != `{"n":1}` || ev.Seq == 0 || ev.At == 0 || ev.Sent == 0 {
		t.Fatalf("bob's event: %+v %+v", ev, *ev.Unacked)
	}
	if len(ev.Devices) != 1 || ev.Devices[0].Device != "phone" || !ev.Devices[0].Delivered || ev.Devices[0].DeliveredAt < ev.Sent {
		t.Fatalf("bob's devices: %+v", ev.Devices)
	}
	if ev := b.waitUnacked(alices[0]); ev.User != "alice" || string(ev.Data) != `{"n":7}` || ev.Devices == nil || len(ev.Devices) != 0 {
		t.Fatalf("alice's event: %+v %+v", ev, *ev.Unacked)
	}
	// A message sent later, once posted, shows that the first two were
	// not posted again meanwhile.
	carols := sendN(t, api, "carol", 1, 1)
	b.waitUnacked(carols[0])
	b.wantUnackedIDs(bobs[0], alices[0], carols[0])
}

// An acknowledgement in time cancels the escalation, whichever device
// gives it.
func TestEscalationCancelledByAck(t *testing.T) {
	t.Parallel()
	b := startEventsBackend(t, 0)
	srv := startServer(t, escalateConfig(t, b, time.Second))
	api := newAPI(t, srv)
	phone, laptop := dialWS(t, srv), dialWS(t, srv)
	phone.connectDevice("bob", "phone")
	laptop.connectDevice("bob", "laptop")

	sendN(t, api, "bob", 1, 1)
	phone.expectDirect(1, 1)
	laptop.expectDirect(1, 1)
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 1}))
	sendN(t, api, "bob", 2, 1)
	phone.expectDirect(2, 1)
	laptop.expectDirect(2, 1)
	laptop.reply(laptop.send(map[string]any{"op": "ack", "seq": 2}))
	third := sendN(t, api, "bob", 3, 1)
	ev := b.waitUnacked(third[0])
	b.wantUnackedIDs(third[0])
	if len(ev.Devices) != 2 {
		t.Fatalf("devices: %+v", ev.Devices)
	}
}

// Escalations live in the store: one pending at shutdown is posted by
// the next server on the same data directory, once; one posted before is
// not posted again.
func TestEscalationSurvivesRestart(t *testing.T) {
	t.Parallel()
	b := startEventsBackend(t, 0)
	cfg := escalateConfig(t, b, time.Second)
	first := startServer(t, cfg)
	api := newAPI(t, first)
	before := sendN(t, api, "bob", 1, 1)
	b.waitUnacked(before[0])
	pending := sendN(t, api, "bob", 2, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b.wantUnackedIDs(before[0]) // the second was not due yet

	second := startServer(t, cfg)
	b.waitUnacked(pending[0])
	marker := sendN(t, newAPI(t, second), "carol", 1, 1)
	b.waitUnacked(marker[0])
	b.wantUnackedIDs(before[0], pending[0], marker[0])
}
