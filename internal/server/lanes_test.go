package server

import (
	"slices"
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

// laneLog is a lane at offset 0 in epoch "e" that records what it
// delivers, by id.
type laneLog struct {
	l   lane
	got []string
}

func newLaneLog() *laneLog {
	return &laneLog{l: lane{loaded: true, epoch: "e", next: 1}}
}

func (ll *laneLog) deliver(m *protocol.Message) { ll.got = append(ll.got, m.ID) }

func msgs(ids ...string) []*protocol.Message {
	ms := make([]*protocol.Message, len(ids))
	for i, id := range ids {
		ms[i] = &protocol.Message{ID: id}
	}
	return ms
}

func (ll *laneLog) want(t *testing.T, what string, ids ...string) {
	t.Helper()
	if !slices.Equal(ll.got, ids) {
		t.Fatalf("%s: delivered %v, want %v", what, ll.got, ids)
	}
}

// TestLaneBatchWaitsForEarlierOffsets: a batch stored at 2-4 waits for
// the write that has 1, then all go out in offset order.
func TestLaneBatchWaitsForEarlierOffsets(t *testing.T) {
	ll := newLaneLog()
	ll.l.writing = 2
	ll.l.stored(2, "e", msgs("b2", "b3", "b4"), ll.deliver)
	ll.want(t, "before offset 1", []string{}...)
	ll.l.stored(1, "e", msgs("a1"), ll.deliver)
	ll.want(t, "after offset 1", "a1", "b2", "b3", "b4")
	if ll.l.delivered() != 4 {
		t.Fatalf("delivered up to %d, want 4", ll.l.delivered())
	}
}

// TestLaneFailedBatchLeavesNoHole: a batch whose sync failed used
// offsets 1-3; what comes after goes out without it, whichever write
// ends last.
func TestLaneFailedBatchLeavesNoHole(t *testing.T) {
	for _, failedFirst := range []bool{true, false} {
		ll := newLaneLog()
		ll.l.writing = 2
		failed := func() { ll.l.stored(1, "e", make([]*protocol.Message, 3), ll.deliver) }
		good := func() { ll.l.stored(4, "e", msgs("m4", "m5"), ll.deliver) }
		if failedFirst {
			failed()
			good()
		} else {
			good()
			failed()
		}
		ll.want(t, "after both writes", "m4", "m5")
		if ll.l.delivered() != 5 || len(ll.l.waiting) != 0 {
			t.Fatalf("delivered up to %d with %d waiting, want 5 and none", ll.l.delivered(), len(ll.l.waiting))
		}
	}
}

// TestLaneSkipsHoleOfUnknownWrite: when no write is in flight, what waits
// beyond a hole goes out, and a failed write's used offsets in the hole
// deliver nothing.
func TestLaneSkipsHoleOfUnknownWrite(t *testing.T) {
	ll := newLaneLog()
	ll.l.writing = 2
	ll.l.stored(3, "e", []*protocol.Message{nil, {ID: "m4"}}, ll.deliver)
	ll.l.stored(0, "", nil, ll.deliver)
	ll.want(t, "across the hole", "m4")
	if ll.l.delivered() != 4 {
		t.Fatalf("delivered up to %d, want 4", ll.l.delivered())
	}
}

// arrive hands a lane of a cluster the message id at pos, as Redis does.
func (ll *laneLog) arrive(id string, pos uint64, epoch string) (from, to uint64, gap bool) {
	return ll.l.arrived(&protocol.Message{ID: id}, pos, epoch, ll.deliver)
}

// TestLaneArrivals: in a cluster, the next offset goes out at once and one
// already delivered is dropped; one that comes early reports the hole
// before it once, and waits while the hole is read from the store (hole,
// fetched, skipTo), after which everything goes out in order, and what the
// store no longer had is skipped.
func TestLaneArrivals(t *testing.T) {
	ll := newLaneLog()
	ll.arrive("m1", 1, "e")
	ll.arrive("m1", 1, "e")
	ll.want(t, "in order, then a duplicate", "m1")

	from, to, gap := ll.arrive("m5", 5, "e")
	if !gap || from != 2 || to != 4 {
		t.Fatalf("early arrival: %d-%d %v, want the hole 2-4", from, to, gap)
	}
	if _, _, gap := ll.arrive("m6", 6, "e"); gap {
		t.Fatal("a second early arrival reported the hole again")
	}
	ll.want(t, "while the hole is open", "m1")
	from, to, ok := ll.l.hole(ll.deliver)
	if !ok || from != 2 || to != 4 {
		t.Fatalf("hole: %d-%d %v", from, to, ok)
	}
	// The store has 3 and 4 (2 was trimmed), and 5, which came live too.
	ll.l.fetched(&protocol.Message{ID: "m3"}, 3)
	ll.l.fetched(&protocol.Message{ID: "m4"}, 4)
	ll.l.fetched(&protocol.Message{ID: "m5 again"}, 5)
	ll.l.skipTo(to+1, ll.deliver)
	if _, _, ok := ll.l.hole(ll.deliver); ok || ll.l.filling {
		t.Fatal("the fill did not end once nothing was missing")
	}
	ll.want(t, "after the fill", "m1", "m3", "m4", "m5", "m6")
	ll.arrive("m7", 7, "e")
	ll.want(t, "live again", "m1", "m3", "m4", "m5", "m6", "m7")

	// Caught up from the store's top after the link came back: 8 and 9
	// were published meanwhile.
	if !ll.l.expect(9, "e") || ll.l.expect(9, "e") {
		t.Fatal("expect: want one fill")
	}
	from, to, ok = ll.l.hole(ll.deliver)
	if !ok || from != 8 || to != 9 {
		t.Fatalf("hole to the top: %d-%d %v", from, to, ok)
	}
	ll.l.fetched(&protocol.Message{ID: "m8"}, 8)
	ll.l.fetched(&protocol.Message{ID: "m9"}, 9)
	ll.l.skipTo(to+1, ll.deliver)
	if _, _, ok := ll.l.hole(ll.deliver); ok {
		t.Fatal("a hole after the top was read")
	}
	ll.want(t, "caught up", "m1", "m3", "m4", "m5", "m6", "m7", "m8", "m9")

	// What cannot be read back is given up: the rest goes out in order.
	ll.arrive("m12", 12, "e")
	ll.arrive("m11", 11, "e")
	ll.l.giveUp(ll.deliver)
	ll.arrive("m13", 13, "e")
	ll.want(t, "given up", "m1", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m11", "m12", "m13")

	// A new epoch (the history was reset) starts over at its offset.
	ll.got = nil
	if _, _, gap := ll.arrive("n1", 1, "f"); gap {
		t.Fatal("a new epoch reported a hole")
	}
	ll.want(t, "new epoch", "n1")
}
