package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProcReader(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "77")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The command name may hold spaces and parentheses; utime 300 and
	// stime 100 are fields 14 and 15, the thread count field 20.
	write("stat", "77 (her ald) (x)) S 1 77 77 0 -1 4194560 1234 0 0 0 300 100 0 0 20 0 9 0 100 1000000 5 18446744073709551615"+strings.Repeat(" 0", 20)+"\n")
	write("status", "Name:\therald\nThreads:\t9\nVmRSS:\t   20480 kB\n")
	p := &procReader{pid: 77, root: root, hz: 100}
	s, err := p.sample()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU != 4*time.Second || s.RSSBytes != 20480*1024 || s.Threads != 9 {
		t.Errorf("sample = %+v, want 4s, 20 MiB, 9 threads", s)
	}
	write("stat", "77 (x) S 1 2\n")
	if _, err := p.sample(); err == nil {
		t.Error("a short stat parsed")
	}
	if _, err := (&procReader{pid: 78, root: root, hz: 100}).sample(); err == nil {
		t.Error("a missing process read")
	}
	if s, err := newProcReader(os.Getpid()).sample(); err != nil || s.RSSBytes <= 0 || s.Threads <= 0 {
		t.Errorf("own process: %+v, %v", s, err)
	}
}

func TestClockTicks(t *testing.T) {
	t.Parallel()
	aux := [][2]uintptr{{6, 4096}, {atClkTck, 250}} // AT_PAGESZ, AT_CLKTCK
	if got := clkTck(aux, 100); got != 250 {
		t.Errorf("AT_CLKTCK = %d, want 250", got)
	}
	if got := clkTck(aux[:1], 100); got != 100 {
		t.Errorf("without AT_CLKTCK = %d, want the default 100", got)
	}
	if hz := clockTicks(); hz <= 0 {
		t.Errorf("clockTicks = %d", hz)
	}
}
