package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A failure repeated with every request is logged once a second, the
// next line counting those held back.
func TestQuietLog(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	var q quietLog
	for range 5 {
		q.log(l, slog.LevelWarn, "redis down")
	}
	if n := strings.Count(buf.String(), "redis down"); n != 1 {
		t.Fatalf("%d lines within a second, want 1: %s", n, buf.String())
	}
	q.last.Add(-int64(quietEvery)) // as if a second had passed
	q.log(l, slog.LevelWarn, "redis down")
	if !strings.Contains(buf.String(), "similar_lines_held_back=4") {
		t.Fatalf("the next line does not count the 4 held back: %s", buf.String())
	}
}
