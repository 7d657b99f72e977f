// Package transport is the I/O engine: the WebSocket and raw TCP listeners
// that drive sessions. It is the only package that touches sockets. Both
// listeners run on nbio, an epoll event loop, so an idle connection costs no
// goroutine: a few pollers watch every socket, reads are handed to a shared
// task pool, and writes are non-blocking with a bounded user-space buffer.
package transport

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
)

// lingerTimeout is how long a connection the server closes may take to
// close its side after the server has shut down writing. Closing at once
// would discard frames the client has not read yet (the kernel resets a
// socket closed with unread input), including the disconnect reason.
const lingerTimeout = 2 * time.Second

// rawConn returns the nbio connection under c, or nil (for TLS).
func rawConn(c net.Conn) *nbio.Conn {
	switch v := c.(type) {
	case *nbio.Conn:
		return v
	case *nbhttp.Conn:
		return rawConn(v.Conn)
	}
	return nil
}

// bufPool holds buffers for joining frames on connections that cannot
// take a vector write (TLS).
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writeFrames writes frames to c in one call and maps the engine's overflow
// error to session.ErrOverflow.
func writeFrames(c net.Conn, frames [][]byte) error {
	var err error
	if nc := rawConn(c); nc != nil {
		if len(frames) == 1 {
			_, err = nc.Write(frames[0])
		} else {
			_, err = nc.Writev(frames)
		}
	} else {
		bp := bufPool.Get().(*[]byte)
		b := (*bp)[:0]
		for _, f := range frames {
			b = append(b, f...)
		}
		_, err = c.Write(b)
		*bp = b[:0]
		if cap(b) <= 64<<10 {
			bufPool.Put(bp)
		}
	}
	return mapError(err)
}

// closeGracefully shuts down the write side so that everything written is
// delivered and the client sees end-of-stream, then closes for good when the
// client closes its side or lingerTimeout passes.
func closeGracefully(c net.Conn) {
	if nc := rawConn(c); nc != nil && shutdownWrite(nc) {
		time.AfterFunc(lingerTimeout, func() { _ = c.Close() })
		return
	}
	_ = c.Close()
}

// shutdownWrite half-closes nc. It holds the connection's lock while it
// checks that nbio has not closed it: once closed, the descriptor number
// may already belong to a newer connection, which must not be touched.
func shutdownWrite(nc *nbio.Conn) bool {
	raw, err := nc.SyscallConn()
	if err != nil {
		return false
	}
	nc.Lock()
	defer nc.Unlock()
	if closed, _ := nc.IsClosed(); closed {
		return false
	}
	var serr error
	_ = raw.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_WR) })
	return serr == nil
}

func mapError(err error) error {
	if errors.Is(err, nbio.ErrOverflow) {
		return errOverflow
	}
	return err
}
