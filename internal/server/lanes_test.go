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
