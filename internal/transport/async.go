package transport

import (
	"crypto/tls"
	"net"
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
	c net.Conn
	outbox
}

func newAsyncWriter(c net.Conn, max int) *asyncWriter {
	return &asyncWriter{c: c, outbox: newOutbox(max)}
}

// Write queues frames and reports them all written; a connection whose
// queue overflows is closed.
func (w *asyncWriter) Write(frames [][]byte) (int, error) {
	n, err := w.push(frames)
	if err == errOverflow {
		_ = w.c.Close()
	}
	return n, err
}

// CloseAfterFlush writes what is queued, then closes the connection
// gracefully: the write side first, the rest when the peer closes or
// lingerTimeout passes.
func (w *asyncWriter) CloseAfterFlush() { w.closeAfterFlush() }

// run writes until the connection closes. Its owner runs it in a goroutine
// tracked by the transport.
func (w *asyncWriter) run() {
	for range w.signal {
		for {
			q, closing, closed := w.take()
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
