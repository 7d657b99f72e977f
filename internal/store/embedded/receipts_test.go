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
