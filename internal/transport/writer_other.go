//go:build !linux

package transport

import (
	"errors"

	"github.com/lesismal/nbio"

	"github.com/heraldpush/herald/internal/session"
)

// Outside Linux, frames go through the event loop's own write path, which
// buffers what a socket cannot take now (a copy per connection, bounded by
// the engines' MaxWriteBufferSize). The zero-copy path with its own epoll
// set is Linux's.

type writePoller struct{}

func newWritePoller() (*writePoller, error) { return &writePoller{}, nil }
func (*writePoller) run()                   {}
func (*writePoller) stop()                  {}

type sockWriter struct{ nc *nbio.Conn }

func newSockWriter(nc *nbio.Conn, _ *writePoller, _ func()) (*sockWriter, error) {
	return &sockWriter{nc: nc}, nil
}

// Write hands every frame to the event loop, one at a time.
func (w *sockWriter) Write(frames [][]byte) (int, error) {
	n := 0
	for _, f := range frames {
		if _, err := w.nc.Write(f); err != nil {
			if errors.Is(err, nbio.ErrOverflow) {
				err = session.ErrOverflow
			}
			return n, err
		}
		n += len(f)
	}
	return n, nil
}

func (*sockWriter) close() {}
