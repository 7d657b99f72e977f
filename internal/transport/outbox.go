package transport

import (
	"net"
	"sync"
)

// outbox is the bounded queue between a session and the goroutine that
// writes for one blocking connection (TLS, an SSE stream). Frames are
// shared and immutable, so they are queued without copying; the writer is
// woken through signal and takes everything queued at once.
type outbox struct {
	max    int
	signal chan struct{}

	mu      sync.Mutex
	queue   [][]byte
	queued  int
	closing bool // write what is queued, then end
	closed  bool // end now
}

func newOutbox(max int) outbox {
	return outbox{max: max, signal: make(chan struct{}, 1)}
}

// push queues frames and reports them all written. Past max bytes it
// closes the outbox and returns errOverflow: the client does not read.
func (o *outbox) push(frames [][]byte) (int, error) {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	o.mu.Lock()
	if o.closed || o.closing {
		o.mu.Unlock()
		return 0, net.ErrClosed
	}
	if o.queued+n > o.max {
		o.closed = true
		o.queue, o.queued = nil, 0
		o.mu.Unlock()
		o.wake()
		return 0, errOverflow
	}
	o.queue = append(o.queue, frames...)
	o.queued += n
	o.mu.Unlock()
	o.wake()
	return n, nil
}

func (o *outbox) wake() {
	select {
	case o.signal <- struct{}{}:
	default:
	}
}

// take hands the writer what is queued, and whether to end after it
// (closing) or at once (closed).
func (o *outbox) take() (q [][]byte, closing, closed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	q, o.queue, o.queued = o.queue, nil, 0
	return q, o.closing, o.closed
}

// closeAfterFlush makes the writer end once what is queued is written.
func (o *outbox) closeAfterFlush() {
	o.mu.Lock()
	o.closing = true
	o.mu.Unlock()
	o.wake()
}

// stop makes the writer end at once, dropping what is queued.
func (o *outbox) stop() {
	o.mu.Lock()
	o.closed = true
	o.queue, o.queued = nil, 0
	o.mu.Unlock()
	o.wake()
}
