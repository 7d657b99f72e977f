package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procSample is one reading of a process's resource use from /proc.
type procSample struct {
	CPU      time.Duration // user + system time
	RSSBytes int64
	Threads  int
}

// procReader reads /proc for one process. The zero pid reads nothing.
type procReader struct {
	pid  int
	root string // "/proc", replaced in tests
	hz   int64  // clock ticks per second of the CPU times in stat
}

func newProcReader(pid int) *procReader {
	return &procReader{pid: pid, root: "/proc", hz: clockTicks()}
}

// sample reads the process's CPU time, resident memory and thread count.
func (p *procReader) sample() (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", p.root, p.pid))
	if err != nil {
		return procSample{}, fmt.Errorf("%w: %w", ErrProc, err)
	}
	ticks, err := parseStatCPU(stat)
	if err != nil {
		return procSample{}, fmt.Errorf("%w: pid %d: %w", ErrProc, p.pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("%s/%d/status", p.root, p.pid))
	if err != nil {
		return procSample{}, fmt.Errorf("%w: %w", ErrProc, err)
	}
	s := procSample{CPU: time.Duration(ticks) * time.Second / time.Duration(p.hz)}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			s.RSSBytes = n * 1024 // the kernel reports kB
		case "Threads":
			s.Threads = int(n)
		}
	}
	return s, nil
}

// parseStatCPU returns utime+stime, in clock ticks, from /proc/PID/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %.40q", stat)
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("stat has %d fields after the name", len(fields))
	}
	u, err := strconv.ParseUint(fields[utime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	s, err := strconv.ParseUint(fields[stime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return u + s, nil
}

// atClkTck is the auxiliary vector entry that carries the kernel's clock
// tick rate (sysconf(_SC_CLK_TCK) reads the same value).
const atClkTck = 17

// clockTicks returns the rate /proc reports CPU times in, read from this
// process's auxiliary vector, or 100 (USER_HZ on every mainstream Linux
// build) when that cannot be read.
func clockTicks() int64 {
	auxv, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	return parseAuxvClkTck(auxv, 100)
}

// parseAuxvClkTck finds AT_CLKTCK in a 64-bit native-endian auxiliary
// vector (pairs of words), returning def when it is absent.
func parseAuxvClkTck(auxv []byte, def int64) int64 {
	for i := 0; i+16 <= len(auxv); i += 16 {
		key := binary.NativeEndian.Uint64(auxv[i:])
		val := binary.NativeEndian.Uint64(auxv[i+8:])
		if key == 0 {
			break
		}
		if key == atClkTck && val > 0 && val < 1e6 {
			return int64(val)
		}
	}
	return def
}
