package transport

import (
	"net"
	"sync"
)

// drainListener lets the server stop accepting before the engine stops.
// nbio's accept loops retry on every error until their engine marks itself
// stopped, so the real listener cannot simply be closed early: Drain
// closes it (the kernel then refuses new connections) and from then on
// Accept reports a timeout, on which the loops wait a moment and retry
// until their engine stops them.
type drainListener struct {
	net.Listener
	draining  chan struct{}
	drainOnce sync.Once
	// accepting is closed at the first Accept: nbio's accept loop resets
	// its stop flag when it starts, so stopping an engine whose loop has
	// not started yet would be forgotten. Start waits for this.
	accepting  chan struct{}
	acceptOnce sync.Once
}

func newDrainListener(ln net.Listener) *drainListener {
	return &drainListener{Listener: ln, draining: make(chan struct{}), accepting: make(chan struct{})}
}

// errDraining is a timeout, so that accept loops back off and retry.
type errDraining struct{}

func (errDraining) Error() string   { return "listener is draining" }
func (errDraining) Timeout() bool   { return true }
func (errDraining) Temporary() bool { return true }

func (l *drainListener) Accept() (net.Conn, error) {
	l.acceptOnce.Do(func() { close(l.accepting) })
	select {
	case <-l.draining:
		return nil, errDraining{}
	default:
	}
	c, err := l.Listener.Accept()
	if err != nil {
		select {
		case <-l.draining:
			return nil, errDraining{}
		default:
		}
	}
	return c, err
}

// Drain stops accepting new connections.
func (l *drainListener) Drain() {
	l.drainOnce.Do(func() {
		close(l.draining)
		_ = l.Listener.Close()
	})
}

func (l *drainListener) Close() error {
	l.Drain()
	return nil
}
