package embedded

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/store"
	"github.com/heraldpush/herald/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), Options{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	})
}

// TestConformanceEvictingState runs the contract with every idle state
// dropped at once, so that each operation loads its channel or user from
// disk again: results stay right across evictions.
func TestConformanceEvictingState(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), Options{IdleState: time.Nanosecond})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	})
}

// statesHeld sweeps every shard as if time had passed by idle, and
// returns how many states are held.
func statesHeld(s *Store, idle time.Duration) int {
	n := 0
	for _, shards := range []*[shards]stateShard{&s.channels, &s.users} {
		for i := range shards {
			sh := &shards[i]
			sh.mu.Lock()
			sh.sweep(time.Now(), idle)
			n += len(sh.m)
			sh.mu.Unlock()
		}
	}
	return n
}

// TestIdleStateDropped: the heads of channels and users no longer used are
// dropped, those in use are kept, and a dropped one is reloaded the same.
func TestIdleStateDropped(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	const names = 100
	for i := range names {
		if _, err := s.Append(ctx, fmt.Sprint("c", i), t0, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Push(ctx, fmt.Sprint("u", i), fmt.Sprint("m", i), t0, nil); err != nil {
			t.Fatal(err)
		}
	}
	epoch, _ := s.Top(ctx, "c0")
	if held := statesHeld(s, time.Hour); held != 2*names {
		t.Fatalf("%d states held, want %d: none idle for an hour", held, 2*names)
	}
	// One operation in flight: its state stays.
	st, leave, err := s.channel(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Unlock()
	if held := statesHeld(s, 0); held != 1 {
		t.Fatalf("%d states held after all went idle but one in use", held)
	}
	leave()
	if pos, err := s.Append(ctx, "c0", t0, nil); err != nil || pos.Offset != 2 || pos.Epoch != epoch.Epoch {
		t.Fatalf("append after the state was dropped: %+v, %v; want offset 2 in epoch %s", pos, err, epoch.Epoch)
	}
	if seq, err := s.Push(ctx, "u0", "m-again", t0, nil); err != nil || seq != 2 {
		t.Fatalf("push after the state was dropped: %d, %v; want 2", seq, err)
	}
}
