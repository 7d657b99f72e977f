package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/store"
)

// testAppendBatch: a batch takes the next offsets in order, after what
// single appends stored, and they after it; records keep the batch's time
// and trim like any others.
func testAppendBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	appendN(t, s, "b", 2, same(t0))
	top, err := s.Top(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	batch := [][]byte{data(10), data(11), data(12)}
	at := t0.Add(time.Minute)
	pos, err := s.AppendBatch(ctx, "b", at, batch)
	if err != nil {
		t.Fatal(err)
	}
	if pos != (store.Position{Offset: 3, Epoch: top.Epoch}) {
		t.Fatalf("batch at %+v, want offset 3 in epoch %s", pos, top.Epoch)
	}
	if next, err := s.Append(ctx, "b", t0, data(13)); err != nil || next.Offset != 6 {
		t.Fatalf("append after the batch: %+v, %v; want offset 6", next, err)
	}
	recs, top := read(t, s, "b", store.Range{Limit: 10})
	wantOffsets(t, "history", recs, 1, 2, 3, 4, 5, 6)
	if top.Offset != 6 {
		t.Fatalf("top %d, want 6", top.Offset)
	}
	for i, d := range batch {
		r := recs[2+i]
		if string(r.Data) != string(d) || !r.Time.Equal(at) {
			t.Fatalf("record %d: %s at %v, want %s at %v", r.Offset, r.Data, r.Time, d, at)
		}
	}
	if n, err := s.Trim(ctx, "b", 2, time.Time{}); err != nil || n != 4 {
		t.Fatalf("trim to 2: dropped %d, %v; want 4", n, err)
	}
	recs, _ = read(t, s, "b", store.Range{Limit: 10})
	wantOffsets(t, "after trim", recs, 5, 6)

	first, err := s.AppendBatch(ctx, "new", t0, [][]byte{data(0)})
	if err != nil || first.Offset != 1 || first.Epoch == "" {
		t.Fatalf("batch of one to a new channel: %+v, %v", first, err)
	}
	if again, err := s.Top(ctx, "new"); err != nil || again != first {
		t.Fatalf("top of the new channel %+v, %v; want %+v", again, err, first)
	}
}

// testConcurrentBatches: batches and single appends to one channel at
// once; each batch holds consecutive offsets, and history holds every
// message at the offset it was given.
func testConcurrentBatches(t *testing.T, s store.Store) {
	ctx := context.Background()
	const batchLen = 7
	var wg sync.WaitGroup
	var mu sync.Mutex
	at := map[uint64]string{}
	put := func(off uint64, d string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, dup := at[off]; dup {
			t.Errorf("offset %d given to %s and %s", off, prev, d)
		}
		at[off] = d
	}
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter / batchLen {
				if w%2 == 0 {
					d := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
					pos, err := s.Append(ctx, "hot", t0, []byte(d))
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
					put(pos.Offset, d)
					continue
				}
				batch := make([][]byte, batchLen)
				for j := range batch {
					batch[j] = fmt.Appendf(nil, `{"w":%d,"i":%d,"j":%d}`, w, i, j)
				}
				pos, err := s.AppendBatch(ctx, "hot", t0, batch)
				if err != nil {
					t.Errorf("append a batch: %v", err)
					return
				}
				for j, d := range batch {
					put(pos.Offset+uint64(j), string(d))
				}
			}
		})
	}
	wg.Wait()
	total := len(at)
	recs, pos := read(t, s, "hot", store.Range{Limit: 2 * total})
	if len(recs) != total || pos.Offset != uint64(total) {
		t.Fatalf("%d records, top %d; want %d", len(recs), pos.Offset, total)
	}
	for i, r := range recs {
		if r.Offset != uint64(i+1) || string(r.Data) != at[r.Offset] {
			t.Fatalf("record %d: offset %d data %s, want %s", i, r.Offset, r.Data, at[r.Offset])
		}
	}
}

// testPushMany: one call stores messages for several users after what
// single pushes stored, a user named twice in order; each has its receipt;
// bad input stores nothing.
func testPushMany(t *testing.T, s store.Store) {
	ctx := context.Background()
	pushN(t, s, "a", 1, same(t0))
	at := t0.Add(time.Minute)
	ps := []store.Push{
		{User: "a", ID: newID(), Data: data(1)},
		{User: "b", ID: newID(), Data: data(2)},
		{User: "a", ID: newID(), Data: data(3)},
		{User: "c", ID: newID(), Data: data(4)},
	}
	seqs, err := s.PushMany(ctx, at, ps)
	if err != nil || !slices.Equal(seqs, []uint64{2, 1, 3, 1}) {
		t.Fatalf("PushMany = %v, %v; want [2 1 3 1]", seqs, err)
	}
	for _, user := range []string{"a", "b", "c"} {
		p := pending(t, s, user, "phone")
		var want []uint64
		for i, q := range ps {
			if q.User == user {
				want = append(want, seqs[i])
			}
		}
		if user == "a" {
			want = append([]uint64{1}, want...)
		}
		wantOffsets(t, "inbox of "+user, p.Records, want...)
	}
	if r := pending(t, s, "a", "phone").Records[2]; string(r.Data) != string(data(3)) || !r.Time.Equal(at) {
		t.Fatalf("a's third message: %s at %v, want %s at %v", r.Data, r.Time, data(3), at)
	}
	for i, q := range ps {
		if r := receipt(t, s, q.ID); r.User != q.User || r.Seq != seqs[i] || !r.Accepted.Equal(at) {
			t.Fatalf("receipt of message %d: %+v; want %s/%d at %v", i, r, q.User, seqs[i], at)
		}
	}
	if seq, err := s.Push(ctx, "a", newID(), t0, data(5)); err != nil || seq != 4 {
		t.Fatalf("push after PushMany: %d, %v; want 4", seq, err)
	}
	users, err := s.Users(ctx, "", 10)
	if err != nil || !slices.Equal(users, []string{"a", "b", "c"}) {
		t.Fatalf("users %v, %v; want [a b c]", users, err)
	}

	for _, bad := range [][]store.Push{
		{{User: "b", ID: newID()}, {User: "", ID: newID()}},
		{{User: "b", ID: newID()}, {User: "x\x00y", ID: newID()}},
		{{User: "b", ID: newID()}, {User: "b", ID: ""}},
	} {
		if seqs, err := s.PushMany(ctx, at, bad); !errors.Is(err, store.ErrInvalidName) {
			t.Fatalf("PushMany %q = %v, %v; want ErrInvalidName", bad, seqs, err)
		}
	}
	if head, err := s.Head(ctx, "b"); err != nil || head != 1 {
		t.Fatalf("b's head after refused calls: %d, %v; want 1", head, err)
	}
	if seqs, err := s.PushMany(ctx, at, nil); err != nil || len(seqs) != 0 {
		t.Fatalf("PushMany of nothing = %v, %v", seqs, err)
	}

	// Inboxes known to be empty, then filled by PushMany, are held to
	// their caps and their age like any others.
	for _, u := range []string{"d", "e"} {
		if head, err := s.Head(ctx, u); err != nil || head != 0 {
			t.Fatalf("head of %s = %d, %v; want 0", u, head, err)
		}
	}
	ps = []store.Push{
		{User: "d", ID: newID(), Data: data(1)},
		{User: "e", ID: newID(), Data: data(2)},
		{User: "d", ID: newID(), Data: data(3)},
		{User: "d", ID: newID(), Data: data(4)},
	}
	if _, err := s.PushMany(ctx, at, ps); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Expire(ctx, "d", store.InboxLimits{MaxCount: 1}); err != nil || n != 2 {
		t.Fatalf("d over a cap of one: dropped %d, %v; want 2", n, err)
	}
	wantOffsets(t, "d after its cap", pending(t, s, "d", "phone").Records, 3)
	if n, err := s.Expire(ctx, "e", store.InboxLimits{Before: at.Add(time.Second)}); err != nil || n != 1 {
		t.Fatalf("e older than its age: dropped %d, %v; want 1", n, err)
	}
}

// testConcurrentPushMany: calls naming the same users in different orders
// run at once; every user's sequences come out once each, with no gap.
func testConcurrentPushMany(t *testing.T, s store.Store) {
	ctx := context.Background()
	users := []string{"u1", "u2", "u3", "u4", "u5"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]map[uint64]bool{}
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter / 10 {
				ps := make([]store.Push, 0, 2*len(users))
				for j := range 2 * len(users) {
					// Each writer walks the users from its own start,
					// some forwards, some backwards.
					k := (w + j) % len(users)
					if w%2 == 1 {
						k = len(users) - 1 - k
					}
					ps = append(ps, store.Push{User: users[k], ID: newID(), Data: data(i)})
				}
				seqs, err := s.PushMany(ctx, t0, ps)
				if err != nil {
					t.Errorf("PushMany: %v", err)
					return
				}
				mu.Lock()
				for j, seq := range seqs {
					u := ps[j].User
					if seen[u] == nil {
						seen[u] = map[uint64]bool{}
					}
					if seen[u][seq] {
						t.Errorf("%s: sequence %d given twice", u, seq)
					}
					seen[u][seq] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, u := range users {
		p, err := s.Pending(ctx, u, "d", 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Records) != len(seen[u]) {
			t.Fatalf("%s: %d pending, %d pushed", u, len(p.Records), len(seen[u]))
		}
		for i, r := range p.Records {
			if r.Offset != uint64(i+1) {
				t.Fatalf("%s: record %d has sequence %d", u, i, r.Offset)
			}
		}
	}
}
