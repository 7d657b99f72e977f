package client

import "testing"

// The client remembers the ids of the last messages only, so that its
// memory stays bounded.
func TestDedupeWindow(t *testing.T) {
	in := newInbox(&options{dedupeWindow: 2})
	in.remember("a")
	in.remember("b")
	in.remember("b")
	if !in.isDuplicate("a") || !in.isDuplicate("b") {
		t.Fatal("forgot an id within the window")
	}
	in.remember("c")
	if in.isDuplicate("a") || !in.isDuplicate("b") || !in.isDuplicate("c") {
		t.Fatalf("after a third id: a %v b %v c %v, want a forgotten", in.isDuplicate("a"), in.isDuplicate("b"), in.isDuplicate("c"))
	}
	if len(in.seen) != 2 {
		t.Fatalf("%d ids remembered, want 2", len(in.seen))
	}
}
