// Package memory is the broker of a single node: Publish hands the message
// straight to the node's handler, on the caller's goroutine, so delivery
// costs no copy, no encoding and no hop.
package memory

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/heraldpush/herald/internal/broker"
	"github.com/heraldpush/herald/internal/protocol"
)

// ErrNotRunning is returned by Publish before Start or after Close.
var ErrNotRunning = errors.New("memory broker is not running")

// Broker is the in-process broker.
type Broker struct {
	h atomic.Pointer[broker.Handler]
}

var _ broker.Broker = (*Broker)(nil)

// New returns a broker; call Start before Publish.
func New() *Broker { return &Broker{} }

// Publish delivers m to the handler synchronously.
func (b *Broker) Publish(_ context.Context, m *protocol.Message) error {
	h := b.h.Load()
	if h == nil {
		return ErrNotRunning
	}
	(*h)(m)
	return nil
}

// Start installs h.
func (b *Broker) Start(_ context.Context, h broker.Handler) error {
	b.h.Store(&h)
	return nil
}

// Subscribe does nothing: the one node gets every message.
func (b *Broker) Subscribe(context.Context, broker.Topic) error { return nil }

// Unsubscribe does nothing.
func (b *Broker) Unsubscribe(context.Context, broker.Topic) error { return nil }

// Close uninstalls the handler.
func (b *Broker) Close() error {
	b.h.Store(nil)
	return nil
}
