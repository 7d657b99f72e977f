package transport

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// writeTimeout bounds one blocking write; a peer that accepts nothing for
// this long is treated as a slow consumer.
const writeTimeout = 10 * time.Second

// asyncWriter gives a blocking connection (crypto/tls) the non-blocking
// Write a session needs: frames are queued, bounded in bytes, and one
// goroutine per connection writes them out, all pending frames in one
// vector write.
type asyncWriter struct {
	c      net.Conn
	max    int
	signal chan struct{}

	mu      sync.Mutex
	queue   [][]byte
	queued  int
	closing bool
	closed  bool
}

func newAsyncWriter(c net.Conn, max int) *asyncWriter {
	return &asyncWriter{c: c, max: max, signal: make(chan struct{}, 1)}
}

// Write queues frames and reports them all written. The frames are shared
// and immutable, so they are queued without copying.
func (w *asyncWriter) Write(frames [][]byte) (int, error) {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	w.mu.Lock()
	if w.closed || w.closing {
		w.mu.Unlock()
		return 0, net.ErrClosed
	}
	if w.queued+n > w.max {
		w.closed = true
		w.mu.Unlock()
		_ = w.c.Close()
		return 0, errOverflow
	}
	w.queue = append(w.queue, frames...)
	w.queued += n
	w.mu.Unlock()
	w.wake()
	return n, nil
}

func (w *asyncWriter) wake() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// CloseAfterFlush writes what is queued, then closes the connection
// gracefully: the write side first, the rest when the peer closes or
// lingerTimeout passes.
func (w *asyncWriter) CloseAfterFlush() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.wake()
}

// stop ends the writer without flushing (the connection is gone).
func (w *asyncWriter) stop() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wake()
}

// run writes until the connection closes. Its owner runs it in a goroutine
// tracked by the transport.
func (w *asyncWriter) run() {
	for range w.signal {
		for {
			w.mu.Lock()
			q, closing, closed := w.queue, w.closing, w.closed
			w.queue, w.queued = nil, 0
			w.mu.Unlock()
			if closed {
				return
			}
			if len(q) == 0 {
				if closing {
					w.finish()
					return
				}
				break
			}
			_ = w.c.SetWriteDeadline(time.Now().Add(writeTimeout))
			bufs := net.Buffers(q)
			if _, err := bufs.WriteTo(w.c); err != nil {
				w.stop()
				_ = w.c.Close()
				return
			}
		}
	}
}

func (w *asyncWriter) finish() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	if tc, ok := w.c.(*tls.Conn); ok {
		_ = w.c.SetWriteDeadline(time.Now().Add(time.Second))
		if tc.CloseWrite() == nil {
			time.AfterFunc(lingerTimeout, func() { _ = w.c.Close() })
			return
		}
	}
	_ = w.c.Close()
}
