package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/heraldpush/herald/internal/store"
)

// escalated reads user's escalation position and what follows it.
func escalated(t *testing.T, s store.Store, user string, limit int) (uint64, []store.Record) {
	t.Helper()
	pos, recs, err := s.Escalated(context.Background(), user, limit)
	if err != nil {
		t.Fatalf("escalated %s: %v", user, err)
	}
	return pos, recs
}

func testEscalations(t *testing.T, s store.Store) {
	ctx := context.Background()
	if pos, recs := escalated(t, s, "nobody", 10); pos != 0 || len(recs) != 0 {
		t.Fatalf("user never seen: %d, %v", pos, recs)
	}
	pushN(t, s, "u", 3, minutes)
	pos, recs := escalated(t, s, "u", 10)
	if pos != 0 {
		t.Fatalf("position %d before any was set", pos)
	}
	wantOffsets(t, "after 0", recs, 1, 2, 3)
	if !recs[1].Time.Equal(minutes(1)) || string(recs[1].Data) != string(data(1)) {
		t.Fatalf("record 2: %v %s", recs[1].Time, recs[1].Data)
	}
	_, recs = escalated(t, s, "u", 1)
	wantOffsets(t, "limit 1", recs, 1)

	if moved, err := s.SetEscalated(ctx, "u", 0, 2); err != nil || !moved {
		t.Fatalf("set from 0 to 2: %v, %v", moved, err)
	}
	pos, recs = escalated(t, s, "u", 10)
	if pos != 2 {
		t.Fatalf("position %d, want 2", pos)
	}
	wantOffsets(t, "after 2", recs, 3)
	// Backwards, or from a position it no longer is at (another node
	// moved it), changes nothing; beyond the inbox is refused.
	if moved, err := s.SetEscalated(ctx, "u", 2, 1); err != nil || moved {
		t.Fatalf("set below: %v, %v", moved, err)
	}
	if moved, err := s.SetEscalated(ctx, "u", 0, 3); err != nil || moved {
		t.Fatalf("set from a stale position: %v, %v", moved, err)
	}
	if _, err := s.SetEscalated(ctx, "u", 2, 4); !errors.Is(err, store.ErrAckBeyondEnd) {
		t.Fatalf("set beyond the inbox: %v", err)
	}
	if pos, _ = escalated(t, s, "u", 10); pos != 2 {
		t.Fatalf("position %d after a set below and one beyond, want 2", pos)
	}

	// A message dropped before it was escalated is skipped: the first
	// record after the position comes later.
	if err := s.Ack(ctx, "u", "a", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expire(ctx, "u", store.InboxLimits{}); err != nil {
		t.Fatal(err)
	}
	pushN(t, s, "u", 1, minutes)
	pos, recs = escalated(t, s, "u", 10)
	if pos != 2 {
		t.Fatalf("position %d after expire, want 2", pos)
	}
	wantOffsets(t, "after a drop", recs, 4)
	if moved, err := s.SetEscalated(ctx, "u", 2, 4); err != nil || !moved {
		t.Fatalf("set from 2 to 4: %v, %v", moved, err)
	}
	if pos, recs = escalated(t, s, "u", 10); pos != 4 || len(recs) != 0 {
		t.Fatalf("all escalated: %d, %v", pos, recs)
	}
	if _, _, err := s.Escalated(ctx, "u", 0); !errors.Is(err, store.ErrInvalidLimit) {
		t.Fatalf("limit 0: %v", err)
	}
	if _, err := s.SetEscalated(ctx, "", 0, 1); !errors.Is(err, store.ErrInvalidName) {
		t.Fatalf("empty user: %v", err)
	}
}
