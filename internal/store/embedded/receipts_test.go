package embedded

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/heraldpush/herald/internal/store"
)

// countKeys counts the keys that start with prefix.
func countKeys(t *testing.T, s *Store, prefix string) int {
	t.Helper()
	p := []byte(prefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upperBound(p)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReceiptDataBounded: once receipts pass their retention, their index
// entries and every delivery and ack mark they needed are gone.
func TestReceiptDataBounded(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	for i := range 50 {
		seq, err := s.Push(ctx, "u", fmt.Sprint("id", i), t0, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, device := range []string{"phone", "laptop"} {
			if err := s.Delivered(ctx, "u", device, seq, t0); err != nil {
				t.Fatal(err)
			}
			if err := s.Ack(ctx, "u", device, seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := countKeys(t, s, prefixAckMark); got != 100 {
		t.Fatalf("%d ack marks, want one per ack: 100", got)
	}
	if n, err := s.Expire(ctx, "u", storeLimits(t0.Add(time.Second))); err != nil || n != 50 {
		t.Fatalf("expire dropped %d, %v", n, err)
	}
	for _, p := range []string{prefixAckMark, prefixDeliverMark, prefixReceipt, prefixMessageID, prefixInbox} {
		if got := countKeys(t, s, p); got != 0 {
			t.Errorf("%d keys under %s left", got, p)
		}
	}
}

func storeLimits(receiptsBefore time.Time) store.InboxLimits {
	return store.InboxLimits{ReceiptsBefore: receiptsBefore}
}

// rangeDeletions counts the range deletions in the store's tables, after
// a flush of its memtable.
func rangeDeletions(t testing.TB, s *Store) uint64 {
	t.Helper()
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	levels, err := s.db.SSTables(pebble.WithProperties())
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, tables := range levels {
		for _, tbl := range tables {
			n += tbl.Properties.NumRangeDeletions
		}
	}
	return n
}

// comeOnline is a device's first connection to an inbox of pending
// messages: it is read and seen, its messages handed over and
// acknowledged, and the inbox held to its caps.
func comeOnline(tb testing.TB, s *Store, user string) {
	tb.Helper()
	ctx := context.Background()
	lim := storeLimits(t0.Add(-time.Hour))
	if _, err := s.Expire(ctx, user, lim); err != nil {
		tb.Fatal(err)
	}
	p, err := s.Pending(ctx, user, "phone", 100)
	if err != nil || len(p.Records) == 0 {
		tb.Fatalf("pending: %d records, %v", len(p.Records), err)
	}
	if err := s.Seen(ctx, user, "phone", t0); err != nil {
		tb.Fatal(err)
	}
	last := p.Records[len(p.Records)-1].Offset
	if err := s.Delivered(ctx, user, "phone", last, t0); err != nil {
		tb.Fatal(err)
	}
	if err := s.Ack(ctx, user, "phone", last); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.Expire(ctx, user, lim); err != nil {
		tb.Fatal(err)
	}
}

// What devices do on every connection and ack writes no range deletion:
// Pebble re-fragments every range deletion of its memtable for the next
// read once one is added, so one per ack made reads cost as much as all
// of them.
func TestDevicesWriteNoRangeDeletions(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	for u := range 20 {
		user := fmt.Sprint("u", u)
		for i := range 5 {
			if _, err := s.Push(ctx, user, fmt.Sprint(user, "-", i), t0, []byte(`"x"`)); err != nil {
				t.Fatal(err)
			}
		}
		comeOnline(t, s, user)
	}
	if n, err := s.Expire(ctx, "u0", storeLimits(t0.Add(time.Hour))); err != nil || n != 0 {
		t.Fatalf("expire after every ack: dropped %d, %v; want 0", n, err)
	}
	if got := countKeys(t, s, prefixInbox); got != 0 {
		t.Errorf("%d messages left after every one was acknowledged", got)
	}
	if n := rangeDeletions(t, s); n != 0 {
		t.Errorf("%d range deletions written", n)
	}
}

// BenchmarkComeOnline is the store's part of a device connecting to 10
// pending messages and acknowledging them, with b.N users: its cost per
// user must not grow with the users before it.
func BenchmarkComeOnline(b *testing.B) {
	ctx := context.Background()
	s := open(b, b.TempDir())
	defer s.Close()
	users := make([]string, b.N)
	for u := range users {
		users[u] = fmt.Sprint("u", u)
		for i := range 10 {
			if _, err := s.Push(ctx, users[u], fmt.Sprint(users[u], "-", i), t0, []byte(`"x"`)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for _, user := range users {
		comeOnline(b, s, user)
	}
}
