//go:build !linux

package bench

import "syscall"

// bindNoPort does nothing where IP_BIND_ADDRESS_NO_PORT does not exist.
func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }

// receiveBuffer leaves the kernel's receive buffer where setting it before
// connecting is not known to work.
func receiveBuffer(int) func(_, _ string, c syscall.RawConn) error {
	return func(_, _ string, _ syscall.RawConn) error { return nil }
}
