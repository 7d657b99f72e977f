package server

import (
	"runtime/debug"
	"syscall"
	"testing"
)

// Start changes nothing process-wide: tests run many servers in one
// process, and the memory and open-file limits are the serve command's.
func TestStartLeavesProcessSettings(t *testing.T) {
	const sentinel = 1<<40 + 12345
	prevMem := debug.SetMemoryLimit(sentinel)
	t.Cleanup(func() { debug.SetMemoryLimit(prevMem) })

	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	// Below the hard limit, so that raising it would show.
	lowered := orig
	if lowered.Max > 2048 {
		lowered.Cur = lowered.Max / 2
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })

	startServer(t, testConfig())

	if got := debug.SetMemoryLimit(-1); got != sentinel {
		t.Errorf("memory limit %d after Start, want %d as before", got, sentinel)
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if now != lowered {
		t.Errorf("open-file limit %+v after Start, want %+v as before", now, lowered)
	}
}
