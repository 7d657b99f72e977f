package bench

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// The command name may hold spaces and parentheses.
	stat := "4242 (her ald) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 1000000 2000 18446744073709551615"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 325 {
		t.Errorf("parseStatCPU = %d, %v; want 325", got, err)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("a short stat parsed")
	}
}

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
	write("stat", "77 (herald) S 1 77 77 0 -1 0 0 0 0 0 300 100 0 0 20 0 9 0 1 1 1\n")
	write("status", "Name:\therald\nThreads:\t9\nVmRSS:\t   20480 kB\n")
	p := &procReader{pid: 77, root: root, hz: 100}
	s, err := p.sample()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU != 4*time.Second || s.RSSBytes != 20480*1024 || s.Threads != 9 {
		t.Errorf("sample = %+v, want 4s, 20 MiB, 9 threads", s)
	}
	if _, err := (&procReader{pid: 78, root: root, hz: 100}).sample(); err == nil {
		t.Error("a missing process read")
	}
	if s, err := newProcReader(os.Getpid()).sample(); err != nil || s.RSSBytes <= 0 {
		t.Errorf("own process: %+v, %v", s, err)
	}
}

func TestClockTicks(t *testing.T) {
	t.Parallel()
	aux := make([]byte, 48)
	binary.NativeEndian.PutUint64(aux[0:], 6) // AT_PAGESZ
	binary.NativeEndian.PutUint64(aux[8:], 4096)
	binary.NativeEndian.PutUint64(aux[16:], atClkTck)
	binary.NativeEndian.PutUint64(aux[24:], 250)
	if got := parseAuxvClkTck(aux, 100); got != 250 {
		t.Errorf("AT_CLKTCK = %d, want 250", got)
	}
	if got := parseAuxvClkTck(aux[:16], 100); got != 100 {
		t.Errorf("without AT_CLKTCK = %d, want the default 100", got)
	}
	if hz := clockTicks(); hz <= 0 {
		t.Errorf("clockTicks = %d", hz)
	}
}
