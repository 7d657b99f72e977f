package storetest

import (
	"context"
	"fmt"
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
