package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/store"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func open(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return s
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	var epoch string
	for i := range 5 {
		pos, err := s.Append(ctx, "room:1", t0, []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		epoch = pos.Epoch
	}
	if _, err := s.Trim(ctx, "room:1", 0, time.Time{}); err != nil {
		t.Fatal(err)
	}
	quiet, _ := s.Top(ctx, "room:quiet")
	for i := range 3 {
		if _, err := s.Push(ctx, "u", fmt.Sprint("m", i), t0, []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(ctx, "u", "phone", 2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Remember(ctx, "k", []byte("h"), []byte("r"), t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "room:1", t0, nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}

	s = open(t, dir)
	defer s.Close()
	pos, err := s.Append(ctx, "room:1", t0, []byte("after"))
	if err != nil || pos != (store.Position{Offset: 6, Epoch: epoch}) {
		t.Fatalf("append after reopen at %+v, %v; want offset 6 in epoch %s", pos, err, epoch)
	}
	if got, _ := s.Top(ctx, "room:quiet"); got != quiet {
		t.Fatalf("empty channel came back at %+v, was %+v", got, quiet)
	}
	p, err := s.Pending(ctx, "u", "phone", 10)
	if err != nil || p.Acked != 2 || len(p.Records) != 1 || p.Records[0].Offset != 3 {
		t.Fatalf("pending after reopen: %+v, %v", p, err)
	}
	if seq, err := s.Push(ctx, "u", "m-after", t0, nil); err != nil || seq != 4 {
		t.Fatalf("push after reopen: %d, %v", seq, err)
	}
	if got, fresh, err := s.Remember(ctx, "k", []byte("h"), []byte("x"), t0, time.Hour); err != nil || fresh || string(got) != "r" {
		t.Fatalf("idempotency key after reopen: %q %v %v", got, fresh, err)
	}
}

// An inbox read back from disk, not pushed to since, is held to its limits
// from what is on disk: its oldest record is noted as its size is counted.
func TestExpireAfterReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir)
	for i := range 4 {
		if _, err := s.Push(ctx, "u", fmt.Sprint("id", i), t0.Add(time.Duration(i)*time.Minute), []byte(`{"i":0}`)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	for _, step := range []struct {
		lim  store.InboxLimits
		want int
	}{
		{store.InboxLimits{Before: t0}, 0},
		{store.InboxLimits{Before: t0.Add(90 * time.Second)}, 2}, // 1 and 2
		{store.InboxLimits{Before: t0.Add(90 * time.Second)}, 0},
		{store.InboxLimits{MaxCount: 1}, 1}, // 3
		{store.InboxLimits{MaxCount: 1}, 0},
	} {
		if n, err := s.Expire(ctx, "u", step.lim); err != nil || n != step.want {
			t.Fatalf("expire %+v: dropped %d, %v; want %d", step.lim, n, err, step.want)
		}
	}
	if p, err := s.Pending(ctx, "u", "phone", 10); err != nil || len(p.Records) != 1 || p.Records[0].Offset != 4 {
		t.Fatalf("pending: %+v, %v; want only 4", p, err)
	}
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	_, err := Open(dir, Options{})
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second open: %v; want ErrLocked naming the directory", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, dir).Close() // released on close
}

func TestNewerFormatRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir).Close()
	if err := os.WriteFile(filepath.Join(dir, formatFile), []byte("99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if !errors.Is(err, store.ErrNewerFormat) || !strings.Contains(err.Error(), "99") {
		t.Fatalf("open of a newer format: %v", err)
	}
	// The refusal released the lock.
	os.WriteFile(filepath.Join(dir, formatFile), []byte("1\n"), 0o600)
	open(t, dir).Close()
}

func TestDataWithoutFormatRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir).Close()
	os.Remove(filepath.Join(dir, formatFile))
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "not a Herald store") {
		t.Fatalf("open without a format file: %v", err)
	}
}

func TestUnwritableDirRefused(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere")
	}
	parent := t.TempDir()
	if err := os.Chmod(parent, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(parent, 0o700) })
	if _, err := Open(filepath.Join(parent, "store"), Options{}); err == nil || !strings.Contains(err.Error(), "store directory") {
		t.Fatalf("open under a read-only directory: %v", err)
	}
	if _, err := Open(parent, Options{}); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("open of a read-only directory: %v", err)
	}
}

// TestDamagedFiles: a damaged file either makes Open fail with an error,
// or the store opens and serves only what was written, never garbage.
func TestDamagedFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		match  string // file name suffix
		damage func(path string) error
	}{
		{"truncated WAL", ".log", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()/2)
		}},
		{"garbage MANIFEST", "MANIFEST-", func(p string) error {
			return os.WriteFile(p, []byte(strings.Repeat("garbage!", 64)), 0o600)
		}},
		{"truncated sstable", ".sst", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()/2)
		}},
		{"garbage sstable", ".sst", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i := range b {
				b[i] ^= 0x5a
			}
			return os.WriteFile(p, b, 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := open(t, dir)
			const n = 200
			for i := range n {
				if _, err := s.Append(ctx, "c", t0, fmt.Appendf(nil, "message-%04d", i)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.match == ".sst" {
				if err := s.db.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			entries, _ := os.ReadDir(dir)
			damaged := 0
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), tc.match) || strings.HasPrefix(e.Name(), tc.match) {
					if err := tc.damage(filepath.Join(dir, e.Name())); err != nil {
						t.Fatal(err)
					}
					damaged++
				}
			}
			if damaged == 0 {
				t.Fatalf("no %s file in %v", tc.match, entries)
			}
			s, err := Open(dir, Options{})
			if err != nil {
				t.Logf("refused: %v", err)
				if !strings.Contains(err.Error(), dir) {
					t.Errorf("error does not name the directory: %v", err)
				}
				return
			}
			defer s.Close()
			recs, _, err := s.Read(ctx, "c", store.Range{Limit: 2 * n})
			if err != nil {
				t.Logf("read refused: %v", err)
				return
			}
			for i, r := range recs {
				if want := fmt.Sprintf("message-%04d", r.Offset-1); string(r.Data) != want || r.Offset != uint64(i+1) {
					t.Fatalf("served record %d at offset %d: %q, want %q", i, r.Offset, r.Data, want)
				}
			}
			t.Logf("recovered %d of %d records", len(recs), n)
		})
	}
}

// payload is a channel message as the server stores it.
var payload = []byte(`{"id":"d1b2c3","kind":"channel","channel":"room:1","from":"u1","ts":1735787045000,"data":{"text":"hello"}}`)

// openBench opens a store in a fresh directory, closed when b ends.
func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkDurableAppend measures synced appends from concurrent writers,
// each to its own channel, so that the WAL syncs are shared.
//
//	go test -run '^$' -bench DurableAppend -benchtime 200000x -cpu 2 ./internal/store/embedded/
func BenchmarkDurableAppend(b *testing.B) {
	for _, sameChannel := range []bool{false, true} {
		name := "ChannelPerWriter"
		if sameChannel {
			name = "OneChannel"
		}
		b.Run(name, func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			var writer atomic.Int64
			b.SetParallelism(128) // writers per core: the syncs are shared by whoever waits
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ch := "room:1"
				if !sameChannel {
					ch = fmt.Sprintf("room:%d", writer.Add(1))
				}
				for pb.Next() {
					if _, err := s.Append(ctx, ch, t0, payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// BenchmarkDurableAppendBatch measures synced batch appends from a few
// concurrent writers, each to its own channel: one write and one sync per
// batch, records/s counting each record.
//
//	go test -run '^$' -bench DurableAppendBatch -benchtime 2000x -cpu 2 ./internal/store/embedded/
func BenchmarkDurableAppendBatch(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprint("Batch", size), func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			batch := make([][]byte, size)
			for i := range batch {
				batch[i] = payload
			}
			var writer atomic.Int64
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ch := fmt.Sprintf("room:%d", writer.Add(1))
				for pb.Next() {
					if _, err := s.AppendBatch(ctx, ch, t0, batch); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkDurablePush measures synced inbox pushes to many users, each
// message with its receipt and id index: from 128 writers per core, which
// share the WAL's syncs, and from one, which waits for a sync of its own
// each time.
//
//	go test -run '^$' -bench DurablePush -benchtime 3s -count 6 -cpu 2 ./internal/store/embedded/
func BenchmarkDurablePush(b *testing.B) {
	payload := []byte(`{"type":"message","id":"d1b2c3","kind":"direct","to":"u1","from":"u2","ts":1735787045000,"data":{"text":"hello"}}`)
	for _, writers := range []int{128, 1} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			var n atomic.Int64
			push := func() bool {
				i := n.Add(1)
				if _, err := s.Push(ctx, fmt.Sprintf("user%d", i%5000), fmt.Sprintf("id%012d", i), t0, payload); err != nil {
					b.Error(err)
					return false
				}
				return true
			}
			b.ReportAllocs()
			b.ResetTimer()
			if writers == 1 {
				for range b.N {
					if !push() {
						return
					}
				}
			} else {
				b.SetParallelism(writers)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() && push() {
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pushes/s")
		})
	}
}

// cachedStates counts the heads of users and channels held in memory.
func cachedStates(s *Store) (users, channels int) {
	count := func(shards *[shards]stateShard) (n int) {
		for i := range shards {
			shards[i].mu.Lock()
			n += len(shards[i].m)
			shards[i].mu.Unlock()
		}
		return n
	}
	return count(&s.users), count(&s.channels)
}

// Expire and Trim, which the periodic sweep calls for every name the
// store holds, leave no head in memory that was not there before them;
// one that was there stays.
func TestSweepLoadsNoStates(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir)
	for _, u := range []string{"a", "b"} {
		if _, err := s.Push(ctx, u, "id-"+u, t0, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, "room", t0, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	for _, u := range []string{"a", "b", "nobody"} {
		if _, err := s.Expire(ctx, u, store.InboxLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Trim(ctx, "room", 10, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if users, channels := cachedStates(s); users != 0 || channels != 0 {
		t.Fatalf("after expiring and trimming: %d users' and %d channels' heads in memory, want none", users, channels)
	}
	if _, err := s.Push(ctx, "a", "id-a2", t0, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expire(ctx, "a", store.InboxLimits{}); err != nil {
		t.Fatal(err)
	}
	if users, _ := cachedStates(s); users != 1 {
		t.Fatalf("a pushed to, then expired: %d users' heads in memory, want 1", users)
	}
}
