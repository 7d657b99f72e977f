// Package broker is the contract for fan-out between the nodes of a
// cluster. A node publishes every message it accepts through its broker;
// the broker hands each message to every node, the publisher included, and
// each node delivers it to its own connections. A node tells its broker
// which channels and users it has local interest in (Subscribe,
// Unsubscribe), so that a broker over a shared bus carries to each node only
// what its connections need. One node alone uses the
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

// TopicKind says what a topic gathers.
type TopicKind uint8

const (
	// TopicChannel gathers the messages of one channel (KindChannel).
	TopicChannel TopicKind = iota + 1
	// TopicUser gathers the direct messages to one user (KindDirect).
	TopicUser
)

// Topic is what a node can ask to receive: one channel's messages or one
// user's direct messages. Broadcasts need no topic: every node gets them.
type Topic struct {
	Kind TopicKind
	Name string
}

// ChannelTopic is the topic of channel's messages.
func ChannelTopic(channel string) Topic { return Topic{Kind: TopicChannel, Name: channel} }

// UserTopic is the topic of the direct messages to user.
func UserTopic(user string) Topic { return Topic{Kind: TopicUser, Name: user} }

// TopicOf returns the topic m belongs to, and false for a broadcast (or a
// message of no known kind).
func TopicOf(m *protocol.Message) (Topic, bool) {
	switch m.Kind {
	case protocol.KindChannel:
		return ChannelTopic(m.Channel), true
	case protocol.KindDirect, protocol.KindControl:
		return UserTopic(m.To), true
	}
	return Topic{}, false
}

// Broker carries messages between nodes.
//
// A node receives every broadcast, and the messages of the topics it
// subscribed to. A broker may hand a node more than it asked for (the
// single-node broker hands back everything): the node's hub delivers only
// to its connections that want a message, so interest is an optimization of
// the bus, never a filter the node relies on. Subscribe and Unsubscribe are
// not counted: the node subscribes a topic when its first local interest
// appears and unsubscribes it when the last one leaves.
type Broker interface {
	// Publish sends m, already stamped with its id and time, to every node
	// subscribed to its topic (every node, for a broadcast). A nil error
	// means the broker accepted it.
	Publish(ctx context.Context, m *protocol.Message) error
	// Start begins handing the messages this node receives to h and
	// returns once the broker delivers. Publish, Subscribe and Unsubscribe
	// may be called between Start and Close.
	Start(ctx context.Context, h Handler) error
	// Subscribe asks for the messages of t. When it returns nil, every
	// message published to t afterwards (by any node) reaches h; a topic
	// already subscribed stays as it is.
	Subscribe(ctx context.Context, t Topic) error
	// Unsubscribe withdraws the interest in t; messages of t published
	// after it returns may still arrive, but need not. A topic not
	// subscribed is no error.
	Unsubscribe(ctx context.Context, t Topic) error
	// Close stops delivery and waits for the broker's goroutines to end.
	Close() error
}
