// Package storetest is the conformance test every store implementation
// runs, so that all of them keep the same contract.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/store"
)

// Run checks the store contract. newStore returns an empty store; Run
// closes it.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"OffsetsAndEpochs", testOffsetsAndEpochs},
		{"Ranges", testRanges},
		{"TrimByCount", testTrimByCount},
		{"TrimByAge", testTrimByAge},
		{"Acks", testAcks},
		{"CapsReportGap", testCapsReportGap},
		{"AckedByAllDropped", testAckedByAllDropped},
		{"ExpireByAge", testExpireByAge},
		{"ExpireBytes", testExpireBytes},
		{"ForgetDevices", testForgetDevices},
		{"ExpireAgain", testExpireAgain},
		{"Receipts", testReceipts},
		{"ReceiptsOutliveMessages", testReceiptsOutliveMessages},
		{"ReceiptsOnlyWhatWasHad", testReceiptsOnlyWhatWasHad},
		{"Listing", testListing},
		{"Devices", testDevices},
		{"Escalations", testEscalations},
		{"Idempotency", testIdempotency},
		{"ForgetKeysBefore", testForgetKeysBefore},
		{"InvalidInput", testInvalidInput},
		{"ConcurrentAppends", testConcurrentAppends},
		{"AppendBatch", testAppendBatch},
		{"ConcurrentBatches", testConcurrentBatches},
		{"ConcurrentPushes", testConcurrentPushes},
		{"PushMany", testPushMany},
		{"ConcurrentPushMany", testConcurrentPushMany},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			defer func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func data(i int) []byte { return fmt.Appendf(nil, `{"i":%d}`, i) }

func appendN(t *testing.T, s store.Store, channel string, n int, at func(i int) time.Time) {
	t.Helper()
	for i := range n {
		if _, err := s.Append(context.Background(), channel, at(i), data(i)); err != nil {
			t.Fatalf("append %d to %s: %v", i, channel, err)
		}
	}
}

func pushN(t *testing.T, s store.Store, user string, n int, at func(i int) time.Time) {
	t.Helper()
	for i := range n {
		if _, err := s.Push(context.Background(), user, newID(), at(i), data(i)); err != nil {
			t.Fatalf("push %d to %s: %v", i, user, err)
		}
	}
}

var lastID atomic.Uint64

// newID returns a message id no other call returned.
func newID() string { return fmt.Sprintf("m%d", lastID.Add(1)) }

func same(time.Time) func(int) time.Time { return func(int) time.Time { return t0 } }

func minutes(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }

func offsets(recs []store.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Offset
	}
	return out
}

func wantOffsets(t *testing.T, what string, recs []store.Record, want ...uint64) {
	t.Helper()
	if got := offsets(recs); !slices.Equal(got, want) {
		t.Fatalf("%s: offsets %v, want %v", what, got, want)
	}
}

func read(t *testing.T, s store.Store, channel string, r store.Range) ([]store.Record, store.Position) {
	t.Helper()
	recs, pos, err := s.Read(context.Background(), channel, r)
	if err != nil {
		t.Fatalf("read %s %+v: %v", channel, r, err)
	}
	return recs, pos
}

func pending(t *testing.T, s store.Store, user, device string) store.Pending {
	t.Helper()
	p, err := s.Pending(context.Background(), user, device, 1000)
	if err != nil {
		t.Fatalf("pending %s/%s: %v", user, device, err)
	}
	return p
}

func testOffsetsAndEpochs(t *testing.T, s store.Store) {
	ctx := context.Background()
	top, err := s.Top(ctx, "room:1")
	if err != nil {
		t.Fatal(err)
	}
	if top.Offset != 0 || top.Epoch == "" {
		t.Fatalf("new channel at %+v, want offset 0 and an epoch", top)
	}
	for i := 1; i <= 3; i++ {
		pos, err := s.Append(ctx, "room:1", t0, data(i))
		if err != nil {
			t.Fatal(err)
		}
		if pos != (store.Position{Offset: uint64(i), Epoch: top.Epoch}) {
			t.Fatalf("append %d at %+v, want offset %d epoch %s", i, pos, i, top.Epoch)
		}
	}
	if again, _ := s.Top(ctx, "room:1"); again != (store.Position{Offset: 3, Epoch: top.Epoch}) {
		t.Fatalf("top %+v after 3 appends", again)
	}
	other, err := s.Append(ctx, "room:2", t0, data(0))
	if err != nil || other.Offset != 1 {
		t.Fatalf("first append to another channel at %+v, %v", other, err)
	}
	reset, err := s.Reset(ctx, "room:1")
	if err != nil {
		t.Fatal(err)
	}
	if reset.Offset != 0 || reset.Epoch == "" || reset.Epoch == top.Epoch {
		t.Fatalf("reset to %+v from epoch %s, want offset 0 and a new epoch", reset, top.Epoch)
	}
	if recs, pos := read(t, s, "room:1", store.Range{Limit: 10}); len(recs) != 0 || pos != reset {
		t.Fatalf("after reset: %d records at %+v", len(recs), pos)
	}
	if pos, err := s.Append(ctx, "room:1", t0, data(9)); err != nil || pos != (store.Position{Offset: 1, Epoch: reset.Epoch}) {
		t.Fatalf("append after reset at %+v, %v", pos, err)
	}
	if pos, _ := s.Top(ctx, "room:2"); pos.Offset != 1 {
		t.Fatalf("reset of room:1 moved room:2 to %+v", pos)
	}
}

func testRanges(t *testing.T, s store.Store) {
	appendN(t, s, "c", 10, minutes)
	recs, pos := read(t, s, "c", store.Range{Limit: 3})
	wantOffsets(t, "first 3", recs, 1, 2, 3)
	if pos.Offset != 10 || pos.Epoch == "" {
		t.Fatalf("read position %+v", pos)
	}
	for i, r := range recs {
		if string(r.Data) != string(data(i)) || !r.Time.Equal(minutes(i)) {
			t.Fatalf("record %d: %s at %v", r.Offset, r.Data, r.Time)
		}
	}
	recs, _ = read(t, s, "c", store.Range{From: 4, Limit: 100})
	wantOffsets(t, "from 4", recs, 4, 5, 6, 7, 8, 9, 10)
	recs, _ = read(t, s, "c", store.Range{Backwards: true, Limit: 3})
	wantOffsets(t, "newest 3", recs, 10, 9, 8)
	recs, _ = read(t, s, "c", store.Range{From: 5, Backwards: true, Limit: 2})
	wantOffsets(t, "back from 5", recs, 5, 4)
	recs, _ = read(t, s, "c", store.Range{From: 50, Backwards: true, Limit: 1})
	wantOffsets(t, "back from beyond the top", recs, 10)
	recs, _ = read(t, s, "c", store.Range{From: 11, Limit: 5})
	wantOffsets(t, "from beyond the top", recs)
	recs, pos = read(t, s, "never", store.Range{Limit: 5})
	if len(recs) != 0 || pos.Offset != 0 {
		t.Fatalf("unknown channel: %d records at %+v", len(recs), pos)
	}
}

func testTrimByCount(t *testing.T, s store.Store) {
	ctx := context.Background()
	appendN(t, s, "c", 10, same(t0))
	before, _ := s.Top(ctx, "c")
	n, err := s.Trim(ctx, "c", 4, time.Time{})
	if err != nil || n != 6 {
		t.Fatalf("trim to 4 dropped %d, %v; want 6", n, err)
	}
	recs, pos := read(t, s, "c", store.Range{From: 1, Limit: 100})
	wantOffsets(t, "after trim", recs, 7, 8, 9, 10)
	if pos != before {
		t.Fatalf("trim moved the position from %+v to %+v", before, pos)
	}
	if n, err := s.Trim(ctx, "c", 4, time.Time{}); err != nil || n != 0 {
		t.Fatalf("second trim dropped %d, %v", n, err)
	}
	if n, err := s.Trim(ctx, "c", 0, time.Time{}); err != nil || n != 4 {
		t.Fatalf("trim to 0 dropped %d, %v", n, err)
	}
	if pos, err := s.Append(ctx, "c", t0, data(11)); err != nil || pos != (store.Position{Offset: 11, Epoch: before.Epoch}) {
		t.Fatalf("append after trimming everything at %+v, %v; want offset 11 in epoch %s", pos, err, before.Epoch)
	}
}

func testTrimByAge(t *testing.T, s store.Store) {
	ctx := context.Background()
	appendN(t, s, "c", 6, minutes)
	n, err := s.Trim(ctx, "c", 100, minutes(3))
	if err != nil || n != 3 {
		t.Fatalf("trim before minute 3 dropped %d, %v; want 3", n, err)
	}
	recs, _ := read(t, s, "c", store.Range{Limit: 100})
	wantOffsets(t, "after age trim", recs, 4, 5, 6)
	if n, err := s.Trim(ctx, "c", 1, minutes(4)); err != nil || n != 2 {
		t.Fatalf("trim by count and age dropped %d, %v; want 2", n, err)
	}
}

func testAcks(t *testing.T, s store.Store) {
	ctx := context.Background()
	pushN(t, s, "u", 5, same(t0))
	p := pending(t, s, "u", "phone")
	if p.Acked != 0 || p.Missed != 0 || p.Known {
		t.Fatalf("new device: %+v", p)
	}
	wantOffsets(t, "new device", p.Records, 1, 2, 3, 4, 5)
	if string(p.Records[0].Data) != string(data(0)) {
		t.Fatalf("first record %s", p.Records[0].Data)
	}
	if err := s.Ack(ctx, "u", "phone", 2); err != nil {
		t.Fatalf("ack 2: %v", err)
	}
	p = pending(t, s, "u", "phone")
	wantOffsets(t, "after ack 2", p.Records, 3, 4, 5)
	if p.Acked != 2 || !p.Known {
		t.Fatalf("acked %d (known %t), want 2 (known)", p.Acked, p.Known)
	}
	if err := s.Ack(ctx, "u", "phone", 1); !errors.Is(err, store.ErrAckBackwards) {
		t.Fatalf("ack backwards: %v", err)
	}
	if err := s.Ack(ctx, "u", "phone", 2); err != nil {
		t.Fatalf("ack 2 again: %v", err)
	}
	if err := s.Ack(ctx, "u", "phone", 6); !errors.Is(err, store.ErrAckBeyondEnd) {
		t.Fatalf("ack beyond the end: %v", err)
	}
	if err := s.Ack(ctx, "nobody", "phone", 1); !errors.Is(err, store.ErrAckBeyondEnd) {
		t.Fatalf("ack on an empty inbox: %v", err)
	}
	if p := pending(t, s, "u", "phone"); p.Acked != 2 {
		t.Fatalf("refused acks moved the position to %d", p.Acked)
	}
	if p, err := s.Pending(ctx, "u", "phone", 2); err != nil || len(p.Records) != 2 {
		t.Fatalf("pending limited to 2: %d records, %v", len(p.Records), err)
	}
	if p := pending(t, s, "u", "laptop"); p.Acked != 0 || len(p.Records) != 5 {
		t.Fatalf("second device: %+v", p)
	}
	if err := s.Ack(ctx, "u", "phone", 5); err != nil {
		t.Fatal(err)
	}
	if p := pending(t, s, "u", "phone"); len(p.Records) != 0 || p.Missed != 0 {
		t.Fatalf("everything acked: %+v", p)
	}
	if seq, err := s.Push(ctx, "u", newID(), t0, data(6)); err != nil || seq != 6 {
		t.Fatalf("push after acks: %d, %v", seq, err)
	}
	wantOffsets(t, "new message", pending(t, s, "u", "phone").Records, 6)
}

func testCapsReportGap(t *testing.T, s store.Store) {
	ctx := context.Background()
	pushN(t, s, "u", 5, same(t0))
	if err := s.Ack(ctx, "u", "phone", 1); err != nil {
		t.Fatal(err)
	}
	// 1 is acknowledged by the only known device; then 2 and 3 go to the cap.
	n, err := s.Expire(ctx, "u", store.InboxLimits{MaxCount: 2})
	if err != nil || n != 3 {
		t.Fatalf("cap at 2 dropped %d, %v; want 3", n, err)
	}
	p := pending(t, s, "u", "phone")
	if p.Acked != 1 || p.Missed != 2 {
		t.Fatalf("device behind the cap: acked %d missed %d, want 1 and 2", p.Acked, p.Missed)
	}
	wantOffsets(t, "behind the cap", p.Records, 4, 5)
	p = pending(t, s, "u", "laptop")
	if p.Acked != 3 || p.Missed != 0 {
		t.Fatalf("unknown device: acked %d missed %d, want 3 (oldest kept - 1) and 0", p.Acked, p.Missed)
	}
	wantOffsets(t, "unknown device", p.Records, 4, 5)
	if err := s.Ack(ctx, "u", "laptop", 2); !errors.Is(err, store.ErrAckBackwards) {
		t.Fatalf("unknown device acking below the oldest kept: %v", err)
	}
	if err := s.Ack(ctx, "u", "phone", 4); err != nil {
		t.Fatalf("ack across the gap: %v", err)
	}
	// Everything dropped: the whole rest is the gap.
	if _, err := s.Expire(ctx, "u", store.InboxLimits{Before: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	p = pending(t, s, "u", "phone")
	if p.Acked != 4 || p.Missed != 1 || len(p.Records) != 0 {
		t.Fatalf("all dropped: %+v, want acked 4, missed 1", p)
	}
	if seq, err := s.Push(ctx, "u", newID(), t0, data(6)); err != nil || seq != 6 {
		t.Fatalf("push after everything was dropped: %d, %v; want 6", seq, err)
	}
}

func testAckedByAllDropped(t *testing.T, s store.Store) {
	ctx := context.Background()
	pushN(t, s, "u", 3, same(t0))
	if n, err := s.Expire(ctx, "u", store.InboxLimits{}); err != nil || n != 0 {
		t.Fatalf("no device known: dropped %d, %v", n, err)
	}
	if err := s.Ack(ctx, "u", "a", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "u", "b", 1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Expire(ctx, "u", store.InboxLimits{}); err != nil || n != 1 {
		t.Fatalf("acked by all up to 1: dropped %d, %v", n, err)
	}
	p := pending(t, s, "u", "b")
	if p.Missed != 0 {
		t.Fatalf("b missed %d", p.Missed)
	}
	wantOffsets(t, "b", p.Records, 2, 3)
}

func testExpireByAge(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Ack(ctx, "u", "phone", 0); err != nil {
		t.Fatalf("register a device on an empty inbox: %v", err)
	}
	pushN(t, s, "u", 4, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour) })
	n, err := s.Expire(ctx, "u", store.InboxLimits{Before: t0.Add(90 * time.Minute)})
	if err != nil || n != 2 {
		t.Fatalf("expire before 1h30 dropped %d, %v; want 2", n, err)
	}
	p := pending(t, s, "u", "phone")
	if p.Missed != 2 {
		t.Fatalf("missed %d, want 2", p.Missed)
	}
	wantOffsets(t, "after expiry", p.Records, 3, 4)
}

func testExpireBytes(t *testing.T, s store.Store) {
	ctx := context.Background()
	for range 3 {
		if _, err := s.Push(ctx, "u", newID(), t0, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Expire(ctx, "u", store.InboxLimits{MaxBytes: 25}); err != nil || n != 1 {
		t.Fatalf("cap at 25 bytes dropped %d, %v; want 1", n, err)
	}
	wantOffsets(t, "after byte cap", pending(t, s, "u", "d").Records, 2, 3)
	// The caps count what was pushed since, and only that: 4 records of
	// 10 bytes are over a cap of 3 and of 35 bytes by one each.
	for range 2 {
		if _, err := s.Push(ctx, "u", newID(), t0, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Expire(ctx, "u", store.InboxLimits{MaxCount: 3, MaxBytes: 35}); err != nil || n != 1 {
		t.Fatalf("caps of 3 messages and 35 bytes dropped %d, %v; want 1", n, err)
	}
	if n, err := s.Expire(ctx, "u", store.InboxLimits{MaxCount: 3, MaxBytes: 35}); err != nil || n != 0 {
		t.Fatalf("the same caps again dropped %d, %v; want 0", n, err)
	}
	if n, err := s.Expire(ctx, "u", store.InboxLimits{MaxBytes: 15}); err != nil || n != 2 {
		t.Fatalf("a cap of 15 bytes dropped %d, %v; want 2", n, err)
	}
	wantOffsets(t, "after the caps", pending(t, s, "u", "d").Records, 5)
}

func testIdempotency(t *testing.T, s store.Store) {
	ctx := context.Background()
	const window = time.Hour
	got, fresh, err := s.Remember(ctx, "k1", []byte("h1"), []byte("r1"), t0, window)
	if err != nil || !fresh || string(got) != "r1" {
		t.Fatalf("first: %q %v %v", got, fresh, err)
	}
	got, fresh, err = s.Remember(ctx, "k1", []byte("h1"), []byte("r2"), t0.Add(time.Minute), window)
	if err != nil || fresh || string(got) != "r1" {
		t.Fatalf("retry: %q %v %v; want the first result", got, fresh, err)
	}
	if _, _, err := s.Remember(ctx, "k1", []byte("h2"), []byte("r2"), t0.Add(time.Minute), window); !errors.Is(err, store.ErrIdempotencyConflict) {
		t.Fatalf("different body: %v", err)
	}
	got, fresh, err = s.Remember(ctx, "k1", []byte("h2"), []byte("r3"), t0.Add(window), window)
	if err != nil || !fresh || string(got) != "r3" {
		t.Fatalf("after the window: %q %v %v", got, fresh, err)
	}
	if err := s.Forget(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, fresh, err := s.Remember(ctx, "k1", []byte("h4"), []byte("r4"), t0.Add(window), window); err != nil || !fresh {
		t.Fatalf("after forget: %v %v", fresh, err)
	}

	// Concurrent first calls with one key: exactly one stores.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var stored int
	results := map[string]bool{}
	for i := range 8 {
		wg.Go(func() {
			got, fresh, err := s.Remember(ctx, "k2", []byte("h"), fmt.Appendf(nil, "r%d", i), t0, window)
			if err != nil {
				t.Errorf("concurrent remember: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			results[string(got)] = true
			if fresh {
				stored++
			}
		})
	}
	wg.Wait()
	if stored != 1 || len(results) != 1 {
		t.Fatalf("concurrent remember: %d stored, results %v", stored, results)
	}
}

func testInvalidInput(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, name := range []string{"", "a\x00b"} {
		if _, err := s.Append(ctx, name, t0, nil); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("append to %q: %v", name, err)
		}
		if _, err := s.Push(ctx, name, newID(), t0, nil); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("push to %q: %v", name, err)
		}
		if _, err := s.Push(ctx, "u", name, t0, nil); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("push with id %q: %v", name, err)
		}
		if err := s.Ack(ctx, "u", name, 0); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("ack by device %q: %v", name, err)
		}
		if err := s.Delivered(ctx, "u", name, 0, t0); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("delivered to device %q: %v", name, err)
		}
		if _, err := s.Receipt(ctx, name); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("receipt of %q: %v", name, err)
		}
		if _, _, err := s.Remember(ctx, name, nil, nil, t0, time.Hour); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("remember %q: %v", name, err)
		}
	}
	if _, _, err := s.Read(ctx, "c", store.Range{}); !errors.Is(err, store.ErrInvalidLimit) {
		t.Errorf("read with no limit: %v", err)
	}
	if _, err := s.Pending(ctx, "u", "d", 0); !errors.Is(err, store.ErrInvalidLimit) {
		t.Errorf("pending with no limit: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Append(canceled, "c", t0, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("append with a canceled context: %v", err)
	}
	if _, err := s.AppendBatch(canceled, "c", t0, [][]byte{nil}); !errors.Is(err, context.Canceled) {
		t.Errorf("append a batch with a canceled context: %v", err)
	}
	if _, err := s.AppendBatch(ctx, "c", t0, nil); !errors.Is(err, store.ErrEmptyBatch) {
		t.Errorf("append an empty batch: %v", err)
	}
	if _, err := s.AppendBatch(ctx, "a\x00b", t0, [][]byte{nil}); !errors.Is(err, store.ErrInvalidName) {
		t.Errorf("append a batch to an invalid name: %v", err)
	}
	if recs, pos := read(t, s, "c", store.Range{Limit: 10}); len(recs) != 0 || pos.Offset != 0 {
		t.Errorf("refused batches stored %d records, top %d", len(recs), pos.Offset)
	}
}

const (
	writers   = 8
	perWriter = 100
)

// testConcurrentAppends: offsets are unique and gapless, and history
// holds every message at the offset its append returned.
func testConcurrentAppends(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	at := map[uint64]string{}
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				d := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
				pos, err := s.Append(ctx, "hot", t0, []byte(d))
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				if prev, dup := at[pos.Offset]; dup {
					t.Errorf("offset %d given to %s and %s", pos.Offset, prev, d)
				}
				at[pos.Offset] = d
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	const total = writers * perWriter
	recs, pos := read(t, s, "hot", store.Range{Limit: 2 * total})
	if len(recs) != total || pos.Offset != total {
		t.Fatalf("%d records, top %d; want %d", len(recs), pos.Offset, total)
	}
	for i, r := range recs {
		if r.Offset != uint64(i+1) || string(r.Data) != at[r.Offset] {
			t.Fatalf("record %d: offset %d data %s, want %s", i, r.Offset, r.Data, at[r.Offset])
		}
	}
}

func testConcurrentPushes(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]bool{}
	for range writers {
		wg.Go(func() {
			for i := range perWriter / 4 {
				seq, err := s.Push(ctx, "u", newID(), t0, data(i))
				if err != nil {
					t.Errorf("push: %v", err)
					return
				}
				mu.Lock()
				if seen[seq] {
					t.Errorf("sequence %d given twice", seq)
				}
				seen[seq] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	p, err := s.Pending(ctx, "u", "d", 10000)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range p.Records {
		if r.Offset != uint64(i+1) {
			t.Fatalf("record %d has sequence %d", i, r.Offset)
		}
	}
	if len(p.Records) != len(seen) {
		t.Fatalf("%d pending, %d pushed", len(p.Records), len(seen))
	}
	head, err := s.Head(ctx, "u")
	if err != nil || head != uint64(len(seen)) {
		t.Fatalf("head = %d, %v; want %d", head, err, len(seen))
	}
	if head, err := s.Head(ctx, "nobody"); err != nil || head != 0 {
		t.Fatalf("head of an empty inbox = %d, %v; want 0", head, err)
	}
}

// testForgetDevices: a device inactive since before lim.Before no longer
// keeps messages; an active one does.
// testExpireAgain expires one inbox again and again, with a change before
// each call: each must see what changed since the one before, whatever an
// implementation remembers between them.
func testExpireAgain(t *testing.T, s store.Store) {
	ctx := context.Background()
	expire := func(what string, lim store.InboxLimits, want int) {
		t.Helper()
		if n, err := s.Expire(ctx, "u", lim); err != nil || n != want {
			t.Fatalf("%s: dropped %d, %v; want %d", what, n, err, want)
		}
	}
	ack := func(device string, seq uint64) {
		t.Helper()
		if err := s.Ack(ctx, "u", device, seq); err != nil {
			t.Fatalf("ack %s %d: %v", device, seq, err)
		}
	}
	two := store.InboxLimits{MaxCount: 2}
	none := store.InboxLimits{}
	expire("empty", two, 0)
	pushN(t, s, "u", 3, minutes) // 1-3 at minutes 0-2
	expire("three over a cap of two", two, 1)
	expire("nothing new", two, 0)
	pushN(t, s, "u", 1, func(int) time.Time { return minutes(3) }) // 4
	expire("one more over the cap", two, 1)
	expire("no device known", none, 0)
	ack("phone", 3)
	expire("acknowledged by the only device", none, 1)
	expire("nothing new", none, 0)
	ack("phone", 4)
	expire("all acknowledged", none, 1)
	expire("empty again", none, 0)

	pushN(t, s, "u", 2, func(i int) time.Time { return minutes(10 + i) }) // 5, 6
	expire("nothing acknowledged", none, 0)
	expire("none older than minute 10", store.InboxLimits{Before: minutes(10)}, 0)
	expire("one older than minute 11", store.InboxLimits{Before: minutes(11)}, 1)

	// A second device, seen long ago, holds the rest until it is
	// forgotten.
	if err := s.Seen(ctx, "u", "tablet", t0); err != nil {
		t.Fatal(err)
	}
	ack("phone", 6)
	expire("the tablet has not acknowledged", none, 0)
	expire("the tablet seen at minute 0, nothing before it", store.InboxLimits{Before: t0}, 0)
	expire("the tablet forgotten", store.InboxLimits{Before: minutes(1)}, 1)
	if p := pending(t, s, "u", "phone"); p.Acked != 6 || len(p.Records) != 0 {
		t.Fatalf("phone after all: %+v", p)
	}
}

func testForgetDevices(t *testing.T, s store.Store) {
	ctx := context.Background()
	hours := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour) }
	pushN(t, s, "u", 3, func(i int) time.Time { return hours(3 + i) })
	if err := s.Seen(ctx, "u", "lost", hours(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Seen(ctx, "u", "tablet", hours(5)); err != nil {
		t.Fatal(err)
	}
	if p := pending(t, s, "u", "tablet"); p.Acked != 0 || len(p.Records) != 3 {
		t.Fatalf("seen moved the position: %+v", p)
	}
	if err := s.Delivered(ctx, "u", "tablet", 3, hours(6)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"laptop", "tablet"} {
		if err := s.Ack(ctx, "u", d, 3); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Expire(ctx, "u", store.InboxLimits{Before: hours(0)}); err != nil || n != 0 {
		t.Fatalf("a known device has not acknowledged: dropped %d, %v", n, err)
	}
	if n, err := s.Expire(ctx, "u", store.InboxLimits{Before: hours(2)}); err != nil || n != 3 {
		t.Fatalf("the device inactive since hour 1 forgotten: dropped %d, %v; want 3", n, err)
	}
	if p := pending(t, s, "u", "lost"); p.Acked != 3 || p.Missed != 0 || len(p.Records) != 0 {
		t.Fatalf("forgotten device back: %+v, want a new device's start", p)
	}
	// The tablet, active at hour 6, still keeps what it has not acknowledged.
	pushN(t, s, "u", 1, func(int) time.Time { return hours(7) })
	if err := s.Ack(ctx, "u", "laptop", 4); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Expire(ctx, "u", store.InboxLimits{Before: hours(2)}); err != nil || n != 0 {
		t.Fatalf("tablet active since: dropped %d, %v", n, err)
	}
	if err := s.Seen(ctx, "u", "", t0); !errors.Is(err, store.ErrInvalidName) {
		t.Fatalf("seen with no device: %v", err)
	}
}

func list(t *testing.T, what string, f func(ctx context.Context, after string, limit int) ([]string, error), after string, limit int, want ...string) {
	t.Helper()
	got, err := f(context.Background(), after, limit)
	if err != nil {
		t.Fatalf("%s after %q: %v", what, after, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s after %q, limit %d: %q, want %q", what, after, limit, got, want)
	}
}

// testListing: channels and users with data are listed in order, in pages.
func testListing(t *testing.T, s store.Store) {
	ctx := context.Background()
	list(t, "channels", s.Channels, "", 10)
	list(t, "users", s.Users, "", 10)
	for _, c := range []string{"b", "a/b", "c", "a"} {
		appendN(t, s, c, 2, same(t0))
	}
	if _, err := s.Top(ctx, "quiet"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reset(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	list(t, "channels", s.Channels, "", 2, "a", "a/b")
	list(t, "channels", s.Channels, "a/b", 2, "b")
	list(t, "channels", s.Channels, "b", 2)
	if _, err := s.Channels(ctx, "", 0); !errors.Is(err, store.ErrInvalidLimit) {
		t.Fatalf("channels with no limit: %v", err)
	}

	pushN(t, s, "u2", 1, same(t0))
	if err := s.Seen(ctx, "u1", "phone", t0); err != nil {
		t.Fatal(err)
	}
	pushN(t, s, "u3", 1, same(t0))
	if err := s.Ack(ctx, "u3", "phone", 1); err != nil {
		t.Fatal(err)
	}
	list(t, "users", s.Users, "", 10, "u1", "u2", "u3")
	list(t, "users", s.Users, "u1", 1, "u2")
	// Once its messages, devices and receipts are gone, a user is not listed.
	far := time.Now().Add(time.Hour)
	if _, err := s.Expire(ctx, "u3", store.InboxLimits{Before: far, ReceiptsBefore: far}); err != nil {
		t.Fatal(err)
	}
	list(t, "users", s.Users, "", 10, "u1", "u2")
	if _, err := s.Users(ctx, "", -1); !errors.Is(err, store.ErrInvalidLimit) {
		t.Fatalf("users with a negative limit: %v", err)
	}
}

func testDevices(t *testing.T, s store.Store) {
	ctx := context.Background()
	if ds, err := s.Devices(ctx, "nobody"); err != nil || len(ds) != 0 {
		t.Fatalf("devices of a user never seen: %v, %v", ds, err)
	}
	pushN(t, s, "u", 3, same(t0))
	if err := s.Seen(ctx, "u", "phone", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(ctx, "u", "phone", 3, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "u", "laptop", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pending(ctx, "u", "tablet", 10); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Devices(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].Name != "laptop" || ds[1].Name != "phone" {
		t.Fatalf("devices %+v, want laptop and phone (a device only asked about is not known)", ds)
	}
	if d := ds[0]; d.Acked != 2 || d.Delivered != 2 || d.Seen.IsZero() {
		t.Fatalf("laptop %+v, want acked and delivered 2, seen", d)
	}
	if d := ds[1]; d.Acked != 0 || d.Delivered != 3 || !d.Seen.Equal(t0.Add(time.Minute)) {
		t.Fatalf("phone %+v, want acked 0, delivered 3, seen at %v", d, t0.Add(time.Minute))
	}
	// Forgotten devices are not listed.
	far := time.Now().Add(time.Hour)
	if _, err := s.Expire(ctx, "u", store.InboxLimits{Before: far, ReceiptsBefore: far}); err != nil {
		t.Fatal(err)
	}
	if ds, err := s.Devices(ctx, "u"); err != nil || len(ds) != 0 {
		t.Fatalf("devices after they were forgotten: %+v, %v", ds, err)
	}
	if _, err := s.Devices(ctx, ""); !errors.Is(err, store.ErrInvalidName) {
		t.Fatalf("devices of an empty user: %v", err)
	}
}

func testForgetKeysBefore(t *testing.T, s store.Store) {
	ctx := context.Background()
	window := time.Hour
	for i, at := range []time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Minute)} {
		if _, fresh, err := s.Remember(ctx, fmt.Sprint("k", i), []byte("h"), []byte("r"), at, window); err != nil || !fresh {
			t.Fatalf("remember k%d: %v %v", i, fresh, err)
		}
	}
	n, err := s.ForgetBefore(ctx, t0.Add(90*time.Second))
	if err != nil || n != 2 {
		t.Fatalf("forget before: %d, %v; want 2 dropped", n, err)
	}
	// k0 and k1 are free: another body is no conflict. k2 is kept.
	if _, fresh, err := s.Remember(ctx, "k0", []byte("other"), []byte("r2"), t0.Add(3*time.Minute), window); err != nil || !fresh {
		t.Fatalf("k0 after it was dropped: %v %v", fresh, err)
	}
	if _, _, err := s.Remember(ctx, "k2", []byte("other"), []byte("r2"), t0.Add(3*time.Minute), window); !errors.Is(err, store.ErrIdempotencyConflict) {
		t.Fatalf("k2 was dropped: %v", err)
	}
	if n, err := s.ForgetBefore(ctx, t0); err != nil || n != 0 {
		t.Fatalf("nothing to drop: %d, %v", n, err)
	}
}
