package client

import (
	"encoding/json"
	"time"
)

// Kind is how a message was addressed.
type Kind string

// Message kinds.
const (
	KindChannel   Kind = "channel"   // published on a channel
	KindDirect    Kind = "direct"    // sent to one user
	KindBroadcast Kind = "broadcast" // sent to every connected client
)

// Message is a message delivered by the server. Its JSON encoding is the
// wire form's fields without "type".
type Message struct {
	// ID is the server-assigned id, unique across the server's lifetime and
	// sortable by time. Publish, Send and Broadcast return the same id.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Channel is the channel of a KindChannel message.
	Channel string `json:"channel,omitempty"`
	// To is the recipient user id of a KindDirect message.
	To string `json:"to,omitempty"`
	// From is the sender's user id as the server authenticated it; empty
	// for messages pushed by the server API.
	From string `json:"from,omitempty"`
	// TS is when the server accepted the message, in Unix milliseconds.
	TS int64 `json:"ts"`
	// Offset and Epoch are the message's place in its channel, for a
	// KindChannel message of a channel with history (Epoch empty
	// otherwise). Offsets grow by one per message and compare only within
	// one epoch.
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
	// Seq is the message's sequence in its recipient's inbox, for a
	// KindDirect message on a server that keeps inboxes (0 otherwise). It
	// is what Ack takes.
	Seq uint64 `json:"seq,omitempty"`
	// Data is the content, the JSON value the sender gave.
	Data json.RawMessage `json:"data"`
	// Raw is the whole frame as the server sent it, fields unknown to this
	// package included.
	Raw json.RawMessage `json:"-"`
}

// Position returns the message's place in its channel; its Epoch is empty
// unless the channel keeps history.
func (m Message) Position() Position { return Position{Offset: m.Offset, Epoch: m.Epoch} }

// Time returns TS as a time.Time.
func (m Message) Time() time.Time { return time.UnixMilli(m.TS) }
