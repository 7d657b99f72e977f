package faulty

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/store"
	"github.com/heraldpush/herald/internal/store/embedded"
	"github.com/heraldpush/herald/internal/store/storetest"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return Wrap(s)
}

// TestConformance: with no fault set, the wrapper keeps the contract.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t) })
}

// writes makes one call of each write; each returns its error.
func writes(s *Store) map[string]func() error {
	ctx := context.Background()
	id := 0
	return map[string]func() error{
		"append": func() error { _, err := s.Append(ctx, "c", t0, nil); return err },
		"append batch": func() error {
			_, err := s.AppendBatch(ctx, "c", t0, [][]byte{nil, nil})
			return err
		},
		"push": func() error {
			id++
			_, err := s.Push(ctx, "u", fmt.Sprint("w", id), t0, nil)
			return err
		},
		"ack": func() error { return s.Ack(ctx, "u", "phone", 1) },
		"delivered": func() error {
			return s.Delivered(ctx, "u", "phone", 1, t0)
		},
		"seen":     func() error { return s.Seen(ctx, "u", "phone", t0) },
		"trim":     func() error { _, err := s.Trim(ctx, "c", 100, time.Time{}); return err },
		"expire":   func() error { _, err := s.Expire(ctx, "u", store.InboxLimits{}); return err },
		"remember": func() error { _, _, err := s.Remember(ctx, "k", nil, nil, t0, time.Hour); return err },
		"forget":   func() error { return s.Forget(ctx, "k") },
		"reset":    func() error { _, err := s.Reset(ctx, "other"); return err },
	}
}

func TestRefuse(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	defer s.Close()
	if _, err := s.Append(ctx, "c", t0, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Push(ctx, "u", "m0", t0, []byte("before")); err != nil {
		t.Fatal(err)
	}
	s.Fail(ErrNoSpace, Refuse)
	for name, w := range writes(s) {
		if err := w(); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s on a full disk: %v", name, err)
		}
	}
	if pos, err := s.Append(ctx, "c", t0, nil); pos.Offset != 0 || err == nil {
		t.Fatalf("refused append: %+v, %v; want a zero offset and an error", pos, err)
	}
	// Reads keep working and show that nothing was written.
	recs, pos, err := s.Read(ctx, "c", store.Range{Limit: 10})
	if err != nil || len(recs) != 1 || pos.Offset != 1 {
		t.Fatalf("read while failing: %d records at %+v, %v", len(recs), pos, err)
	}
	p, err := s.Pending(ctx, "u", "phone", 10)
	if err != nil || p.Acked != 0 || len(p.Records) != 1 {
		t.Fatalf("pending while failing: %+v, %v", p, err)
	}
	if r, err := s.Receipt(ctx, "m0"); err != nil || len(r.Devices) != 0 {
		t.Fatalf("receipt while failing: %+v, %v", r, err)
	}

	s.Heal()
	for name, w := range writes(s) {
		if err := w(); err != nil {
			t.Errorf("%s after healing: %v", name, err)
		}
	}
	// The append and the batch of two after healing took offsets 2-4.
	if pos, err := s.Append(ctx, "c", t0, nil); err != nil || pos.Offset != 5 {
		t.Fatalf("append after healing at %+v, %v; want 5: refused writes used no offset", pos, err)
	}
}

func TestAfterWrite(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	defer s.Close()
	syncErr := errors.New("sync: input/output error")
	s.Fail(syncErr, AfterWrite)
	seq, err := s.Push(ctx, "u", "m1", t0, []byte("x"))
	if !errors.Is(err, syncErr) || seq != 1 {
		t.Fatalf("push with a failing sync: %d, %v; want 1 and the error", seq, err)
	}
	pos, err := s.Append(ctx, "c", t0, nil)
	if !errors.Is(err, syncErr) || pos.Offset != 1 {
		t.Fatalf("append with a failing sync: %+v, %v; want offset 1 and the error", pos, err)
	}
	pos, err = s.AppendBatch(ctx, "c", t0, [][]byte{nil, nil})
	if !errors.Is(err, syncErr) || pos.Offset != 2 {
		t.Fatalf("batch with a failing sync: %+v, %v; want offset 2 and the error", pos, err)
	}
	// A write refused by the store itself keeps its own error.
	if err := s.Ack(ctx, "u", "phone", 5); !errors.Is(err, store.ErrAckBeyondEnd) {
		t.Fatalf("ack beyond the end while failing: %v", err)
	}
	s.Heal()
	if seq, err := s.Push(ctx, "u", "m2", t0, nil); err != nil || seq != 2 {
		t.Fatalf("push after healing: %d, %v; want 2", seq, err)
	}
}
