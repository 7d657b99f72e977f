package bench

import (
	"fmt"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// procSample is one reading of a process's resource use from /proc, or
// the sum of readings of several processes.
type procSample struct {
	CPU      time.Duration // user + system time
	RSSBytes int64
	Threads  int
	// each is, for a sum of several processes, each one's reading, in
	// the order of their pids.
	each []procSample
}

// procSet reads one process or several, summing them.
type procSet struct {
	readers []*procReader
}

func newProcSet(pids []int) *procSet {
	ps := &procSet{}
	for _, pid := range pids {
		ps.readers = append(ps.readers, newProcReader(pid))
	}
	return ps
}

// sample reads every process; the result is their sum, with each one's
// reading in each when there are several. One failed read fails it.
func (ps *procSet) sample() (procSample, error) {
	if len(ps.readers) == 1 {
		return ps.readers[0].sample()
	}
	var sum procSample
	for _, p := range ps.readers {
		s, err := p.sample()
		if err != nil {
			return procSample{}, err
		}
		sum.CPU += s.CPU
		sum.RSSBytes += s.RSSBytes
		sum.Threads += s.Threads
		sum.each = append(sum.each, s)
	}
	return sum, nil
}

// procReader reads /proc for one process. The zero pid reads nothing.
type procReader struct {
	pid  int
	root string // procfs.DefaultMountPoint, replaced in tests
	hz   int64  // clock ticks per second of the CPU times in stat
}

func newProcReader(pid int) *procReader {
	return &procReader{pid: pid, root: procfs.DefaultMountPoint, hz: clockTicks()}
}

// sample reads the process's CPU time and thread count (from
// /proc/PID/stat) and its resident memory (VmRSS, from /proc/PID/status).
func (p *procReader) sample() (procSample, error) {
	fs, err := procfs.NewFS(p.root)
	if err != nil {
		return procSample{}, fmt.Errorf("%w: %w", ErrProc, err)
	}
	proc, err := fs.Proc(p.pid)
	if err != nil {
		return procSample{}, fmt.Errorf("%w: %w", ErrProc, err)
	}
	stat, err := proc.Stat()
	if err != nil {
		return procSample{}, fmt.Errorf("%w: pid %d: %w", ErrProc, p.pid, err)
	}
	status, err := proc.NewStatus()
	if err != nil {
		return procSample{}, fmt.Errorf("%w: pid %d: %w", ErrProc, p.pid, err)
	}
	return procSample{
		CPU:      time.Duration(stat.UTime+stat.STime) * time.Second / time.Duration(p.hz),
		RSSBytes: int64(status.VmRSS),
		Threads:  stat.NumThreads,
	}, nil
}

// atClkTck is the auxiliary vector entry that carries the kernel's clock
// tick rate (sysconf(_SC_CLK_TCK) reads the same value).
const atClkTck = 17

// clockTicks returns the rate /proc reports CPU times in, from this
// process's auxiliary vector, or 100 (USER_HZ on every mainstream Linux
// build, and what procfs assumes) when that cannot be read.
func clockTicks() int64 {
	auxv, err := unix.Auxv()
	if err != nil {
		return 100
	}
	return clkTck(auxv, 100)
}

// clkTck finds AT_CLKTCK in an auxiliary vector, returning def when it is
// absent.
func clkTck(auxv [][2]uintptr, def int64) int64 {
	for _, kv := range auxv {
		if kv[0] == atClkTck && kv[1] > 0 && kv[1] < 1e6 {
			return int64(kv[1])
		}
	}
	return def
}
