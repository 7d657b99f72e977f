package server

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// No socket of the server leaks into a child process: every one, the event
// loop's duplicated sockets included, is closed on exec. A socket a child
// holds stays open when the server closes it: its client never learns
// that the connection ended.
func TestDescriptorsCloseOnExec(t *testing.T) {
	srv := startServer(t, testConfig())
	for _, d := range transports {
		c := d.dial(t, srv)
		c.connect("fd-" + d.name)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			continue // closed since the listing
		}
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if flags&unix.FD_CLOEXEC == 0 && strings.HasPrefix(target, "socket:") {
			t.Errorf("descriptor %d (%s) is inherited by child processes", fd, target)
		}
	}
}
