package cli

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

// tuneProcess applies the process-wide settings a server wants: a soft
// memory limit for the garbage collector, and a word when the open-file
// limit caps connections. It belongs to the command that starts the
// server, not to the server, which tests start many times in one process.
func tuneProcess(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		checkFileLimit(log, lim)
	}
	setMemoryLimit(log)
}

// lowFileLimit is the soft open-file limit below which the server warns.
// Go raises the soft limit to one below the hard limit when the process
// starts (since Go 1.19), so a hard limit of 65536 gives 65535, and the
// hard limit is the one to raise.
const lowFileLimit = 65535

// checkFileLimit warns when the open-file limit is low: every connection
// is a file descriptor.
func checkFileLimit(log *slog.Logger, lim syscall.Rlimit) {
	if lim.Cur < lowFileLimit {
		log.Warn("open-file limit is low; it caps concurrent connections (raise the hard limit: LimitNOFILE= in a systemd unit, ulimit -Hn in a shell)",
			"soft", lim.Cur, "hard", lim.Max)
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
