// Package transport is the I/O engine: the HTTP, WebSocket and raw TCP
// listeners that drive sessions. It is the only package that touches
// sockets. HTTP is Go's net/http; plaintext WebSocket and TCP connections
// live on nbio, an epoll event loop, so an idle one costs no goroutine: a
// few pollers watch every socket, reads are handed to a shared task pool,
// and writes go straight to the socket, what it cannot take now staying
// queued in the session as references to shared frames. TLS connections
// have a reader and a writer goroutine each.
package transport

import (
	"net"
	"net/http"
	"slices"
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

// loopConn is an event-loop connection as the WebSocket engine holds it.
// The engine closes a connection it finds broken (a protocol error in a
// client's frame) from the goroutine that parsed the frame; a descriptor
// closed off its event loop frees its number while the loop may still
// hold an event for it, which the loop would apply to the next connection
// given that number. Close only hangs up (closeConn), and the event loop
// closes the descriptor.
type loopConn struct{ *nbio.Conn }

func (c loopConn) Close() error {
	closeConn(c.Conn)
	return nil
}

// rawConn returns the nbio connection under c, or nil (for TLS).
func rawConn(c net.Conn) *nbio.Conn {
	switch v := c.(type) {
	case loopConn:
		return v.Conn
	case *nbio.Conn:
		return v
	case *nbhttp.Conn:
		return rawConn(v.Conn)
	}
	return nil
}

// closeGracefully shuts down the write side so that everything written is
// delivered and the client sees end-of-stream, then closes for good when the
// client closes its side or lingerTimeout passes.
func closeGracefully(c net.Conn) {
	if nc := rawConn(c); nc != nil && shutdown(nc, syscall.SHUT_WR) {
		time.AfterFunc(lingerTimeout, func() { closeConn(c) })
		return
	}
	closeConn(c)
}

// closeConn closes c at once. An event-loop connection is hung up: its
// socket is shut down both ways, and its poller, woken by that, closes the
// descriptor itself. Closing the descriptor from another goroutine frees
// its number while the poller may still hold an event for it, which the
// poller would then apply to the next connection given that number.
func closeConn(c net.Conn) {
	if nc := rawConn(c); nc != nil {
		shutdown(nc, syscall.SHUT_RDWR)
		return
	}
	_ = c.Close()
}

// shutdown shuts nc down in direction how. It holds the connection's lock
// while it checks that nbio has not closed it: once closed, the descriptor
// number may already belong to a newer connection, which must not be
// touched.
func shutdown(nc *nbio.Conn, how int) bool {
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
	_ = raw.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), how) })
	return serr == nil
}

// Headered is a Transport opened by an HTTP request (a WebSocket upgrade,
// an SSE stream) that kept the request's headers named in
// Config.KeepHeaders.
type Headered interface {
	// Headers returns the kept headers, nil when there are none. The
	// caller must not change them.
	Headers() http.Header
}

var (
	_ Headered = (*wsConn)(nil)
	_ Headered = (*sseConn)(nil)
)

// keptHeaders copies the headers of r that the configuration keeps.
func (s *Server) keptHeaders(r *http.Request) http.Header {
	var h http.Header
	for _, name := range s.cfg.KeepHeaders {
		if v := r.Header.Values(name); len(v) > 0 {
			if h == nil {
				h = make(http.Header, len(s.cfg.KeepHeaders))
			}
			h[http.CanonicalHeaderKey(name)] = slices.Clone(v)
		}
	}
	return h
}
