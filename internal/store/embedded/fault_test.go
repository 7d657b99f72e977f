package embedded

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// failingWALSync returns a file system whose write-ahead log syncs fail
// while the toggle is on.
func failingWALSync() (vfs.FS, *errorfs.Toggle) {
	toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if strings.HasSuffix(op.Path, ".log") {
				return errorfs.ErrInjected
			}
		}
		return nil
	})}
	return errorfs.Wrap(vfs.Default, toggle), toggle
}

// TestSyncFailureReturnsOffset: a write whose sync fails returns the offset
// it was given together with the error, and that offset is not given to
// another record.
func TestSyncFailureReturnsOffset(t *testing.T) {
	ctx := context.Background()
	fs, toggle := failingWALSync()
	s, err := Open(t.TempDir(), Options{fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if seq, err := s.Push(ctx, "u", "m1", t0, nil); err != nil || seq != 1 {
		t.Fatalf("push before the fault: %d, %v", seq, err)
	}
	if pos, err := s.Append(ctx, "c", t0, nil); err != nil || pos.Offset != 1 {
		t.Fatalf("append before the fault: %+v, %v", pos, err)
	}
	toggle.On()
	seq, err := s.Push(ctx, "u", "m2", t0, nil)
	if !errors.Is(err, errorfs.ErrInjected) || seq != 2 {
		t.Fatalf("push with a failing sync: %d, %v; want 2 and the sync error", seq, err)
	}
	pos, err := s.Append(ctx, "c", t0, nil)
	if !errors.Is(err, errorfs.ErrInjected) || pos.Offset != 2 || pos.Epoch == "" {
		t.Fatalf("append with a failing sync: %+v, %v; want offset 2 and the sync error", pos, err)
	}
	toggle.Off()
	if seq, err := s.Push(ctx, "u", "m3", t0, nil); err == nil && seq <= 2 {
		t.Fatalf("push after the fault reused sequence %d", seq)
	}
}
