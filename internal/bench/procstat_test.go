package bench

import (
	"os"
	"path/filepath"
	"slices"
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

func TestProcSet(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for pid, utime := range map[string]string{"11": "100", "12": "300"} {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := pid + " (x) S 1 1 1 0 -1 0 0 0 0 0 " + utime + " 0 0 0 20 0 4 0 100 1000000 5 0" + strings.Repeat(" 0", 20) + "\n"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte("Name:\tx\nVmRSS:\t1024 kB\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ps := newProcSet([]int{11, 12})
	for _, p := range ps.readers {
		p.root, p.hz = root, 100
	}
	s, err := ps.sample()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU != 4*time.Second || s.RSSBytes != 2<<20 || s.Threads != 8 || len(s.each) != 2 || s.each[1].CPU != 3*time.Second {
		t.Errorf("sum = %+v, want 4s, 2 MiB, 8 threads, and each", s)
	}
	ps.readers = append(ps.readers, &procReader{pid: 13, root: root, hz: 100})
	if _, err := ps.sample(); err == nil {
		t.Error("a missing process summed")
	}
}

func TestServerProcessBreakdown(t *testing.T) {
	t.Parallel()
	p := newServerProcess([]int{11, 12}, 100)
	before := procSample{CPU: time.Second, each: []procSample{{CPU: time.Second / 2}, {CPU: time.Second / 2}}}
	after := procSample{CPU: 4 * time.Second, RSSBytes: 30, each: []procSample{{CPU: time.Second, RSSBytes: 10}, {CPU: 3 * time.Second, RSSBytes: 20}}}
	p.record(before, after, func(q *ServerProcess, before, after procSample) {
		q.CPUSeconds += (after.CPU - before.CPU).Seconds()
	})
	p.recordMemory(before, after)
	p.recordDeliveries(2e6)
	if p.PID != 0 || !slices.Equal(p.PIDs, []int{11, 12}) || p.CPUSeconds != 3 || p.CPUSecondsPerMillionDeliveries != 1.5 || p.RSSAfterBytes != 30 {
		t.Errorf("sum = %+v", p)
	}
	if q := p.Processes; len(q) != 2 || q[0].PID != 11 || q[0].CPUSeconds != 0.5 || q[1].CPUSeconds != 2.5 || q[1].CPUSecondsPerMillionDeliveries != 1.25 || q[1].RSSAfterBytes != 20 {
		t.Errorf("each = %+v", q)
	}
	if one := newServerProcess([]int{11}, 100); one.PID != 11 || one.PIDs != nil || one.Processes != nil {
		t.Errorf("one process = %+v", one)
	}
}
