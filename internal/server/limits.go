package server

import (
	"bufio"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// raiseFileLimit lifts the soft open-file limit to the hard limit: every
// connection is a file descriptor.
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < 65536 {
		log.Warn("open-file limit is low; it caps concurrent connections", "limit", lim.Cur)
	}
}

// setMemoryLimit gives the garbage collector a soft limit of 90% of the
// memory available (the cgroup's limit, or the machine's), unless
// GOMEMLIMIT sets one: under a burst of slow consumers the GC then works
// harder instead of the process being killed for running out of memory.
func setMemoryLimit(log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		log.Info("memory limit from GOMEMLIMIT", "bytes", debug.SetMemoryLimit(-1))
		return
	}
	avail := availableMemory()
	if avail <= 0 {
		return
	}
	limit := avail / 10 * 9
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit set", "bytes", limit)
}

// availableMemory returns the cgroup v2 memory limit, else the machine's
// total memory, else 0.
func availableMemory() int64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 && v < math.MaxInt64/2 {
			return v
		}
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
