package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldpush/herald/client"
)

// The state file is read back as written, replaced whole (no temporary
// file is left beside it), and refused when it is not one.
func TestStateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	f, err := openState(path)
	if err != nil || f.device() != "" || !f.position("chat:x").IsZero() {
		t.Fatalf("a missing file: %v %+v", err, f.state)
	}
	if err := f.save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("an unchanged state was written: %v", err)
	}
	f.setDevice("laptop")
	f.setPosition("chat:x", client.Position{Offset: 7, Epoch: "e1"})
	for range 2 {
		if err := f.save(); err != nil {
			t.Fatal(err)
		}
	}
	f.setPosition("chat:x", client.Position{Offset: 9, Epoch: "e1"})
	if err := f.save(); err != nil {
		t.Fatal(err)
	}
	g, err := openState(path)
	if err != nil || g.device() != "laptop" || g.position("chat:x") != (client.Position{Offset: 9, Epoch: "e1"}) {
		t.Fatalf("read back: %v %+v", err, g.state)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("files beside the state: %v", entries)
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openState(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a broken file: %v, want an error naming it", err)
	}
	if _, err := openState(dir); err == nil {
		t.Fatal("a directory was taken for a state file")
	}
}
