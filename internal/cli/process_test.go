package cli

import (
	"bytes"
	"log/slog"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// serve sets the garbage collector's memory limit (the server itself does
// not) and reports an open-file limit that caps connections.
func TestServeTunesProcess(t *testing.T) {
	avail := availableMemory()
	if avail <= 0 {
		t.Skip("no memory size to read on this machine")
	}
	t.Setenv("GOMEMLIMIT", "")
	prevMem := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(prevMem) })

	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	lowered := orig
	lowered.Cur = min(orig.Max, 1000)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })

	_, stderr, _ := serve(t, "--insecure")

	if got, want := debug.SetMemoryLimit(-1), avail/10*9; got != want {
		t.Errorf("memory limit %d, want %d (90%% of %d)", got, want, avail)
	}
	if !strings.Contains(stderr.String(), "open-file limit is low") || !strings.Contains(stderr.String(), "soft="+strconv.FormatUint(lowered.Cur, 10)) {
		t.Errorf("no warning naming the soft limit %d:\n%s", lowered.Cur, stderr.String())
	}
}

// The warning is judged by the soft limit, which Go raises to one below
// the hard limit at start.
func TestFileLimitWarning(t *testing.T) {
	for _, tc := range []struct {
		lim  syscall.Rlimit
		warn bool
	}{
		{syscall.Rlimit{Cur: 1024, Max: 1024}, true},
		{syscall.Rlimit{Cur: 1024, Max: 1 << 20}, true},
		{syscall.Rlimit{Cur: 65535, Max: 65536}, false},
		{syscall.Rlimit{Cur: 1<<20 - 1, Max: 1 << 20}, false},
	} {
		var logs bytes.Buffer
		checkFileLimit(slog.New(slog.NewTextHandler(&logs, nil)), tc.lim)
		if got := strings.Contains(logs.String(), "open-file limit is low"); got != tc.warn {
			t.Errorf("%+v: warned=%v, want %v: %s", tc.lim, got, tc.warn, logs.String())
		}
	}
}
