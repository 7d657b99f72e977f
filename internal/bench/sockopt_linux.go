//go:build linux

package bench

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindNoPort is a net.Dialer Control for dials bound to a source address:
// IP_BIND_ADDRESS_NO_PORT lets the kernel pick the port at connect time,
// knowing the destination, instead of at bind time. Without it every
// bound dial needs a port unused by any socket of that address, TIME_WAIT
// ones included, and a churn run soon exhausts them (and the kernel's
// search for a free port grows slow).
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	}); err != nil {
		return fmt.Errorf("set IP_BIND_ADDRESS_NO_PORT: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("set IP_BIND_ADDRESS_NO_PORT: %w", serr)
	}
	return nil
}

// receiveBuffer is a net.Dialer Control that sets SO_RCVBUF before the
// connection is made, when it still bounds the window the peer sees.
func receiveBuffer(bytes int) func(_, _ string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, bytes)
		}); err != nil {
			return fmt.Errorf("set SO_RCVBUF: %w", err)
		}
		if serr != nil {
			return fmt.Errorf("set SO_RCVBUF: %w", serr)
		}
		return nil
	}
}
