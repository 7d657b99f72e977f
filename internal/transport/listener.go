package transport

import (
	"net"
	"sync"
)

// drainListener lets the server stop accepting before the engine stops.
// nbio's accept loops retry on every error until their engine is stopped,
// so the real listener cannot simply be closed early: Drain closes it (new
// connections are refused by the kernel) and parks the accept loop until
// the engine's Stop closes the wrapper.
type drainListener struct {
	net.Listener
	draining  chan struct{}
	closed    chan struct{}
	drainOnce sync.Once
	closeOnce sync.Once
}

func newDrainListener(ln net.Listener) *drainListener {
	return &drainListener{Listener: ln, draining: make(chan struct{}), closed: make(chan struct{})}
}

func (l *drainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		select {
		case <-l.draining:
			<-l.closed
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
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}
