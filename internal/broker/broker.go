// Package broker is the contract for fan-out between the nodes of a
// cluster. A node publishes every message it accepts through its broker;
// the broker hands each message to every node, the publisher included, and
// each node delivers it to its own connections. One node alone uses the
// in-memory broker, which hands the message straight back; a cluster uses
// a broker over a shared bus. The hub never sees a broker: the server wires
// the broker's handler to the hub.
package broker

import (
	"context"

	"github.com/heraldpush/herald/internal/protocol"
)

// Handler receives the messages a broker delivers to this node. It runs on
// the goroutine that published (the single-node broker hands a message
// straight back) or on a broker's receiving goroutine, so it must not block.
type Handler func(m *protocol.Message)

// Broker carries messages between nodes.
type Broker interface {
	// Publish sends m, already stamped with its id and time, to every node.
	// A nil error means the broker accepted it.
	Publish(ctx context.Context, m *protocol.Message) error
	// Start begins handing every message published by any node to h and
	// returns once the broker delivers. Publish may be called between
	// Start and Close.
	Start(ctx context.Context, h Handler) error
	// Close stops delivery and waits for the broker's goroutines to end.
	Close() error
}
