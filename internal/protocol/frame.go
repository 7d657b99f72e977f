package protocol

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"time"
)

// Wire is a framing of server frames on a transport.
type Wire uint8

const (
	// WireWebSocket frames each JSON document as one unmasked, final
	// WebSocket text frame.
	WireWebSocket Wire = iota
	// WireLine frames each JSON document as one line ending in '\n'.
	WireLine
)

// maxWSHeader is the largest header of an unmasked server-to-client
// WebSocket frame: 2 bytes plus an 8-byte extended length.
const maxWSHeader = 10

// Frame is one encoded server frame, ready for every wire form at once. It
// is built once per message and shared, read-only, by every connection that
// receives it: the buffer holds [WebSocket header][JSON]['\n'], and each wire
// form is a sub-slice of it, so no connection copies or re-encodes it.
type Frame struct {
	buf   []byte // [maxWSHeader reserved][payload]['\n']
	wsOff int    // where the WebSocket header starts
}

// Bytes returns the frame as it goes on the given wire. The caller must not
// modify the returned slice.
func (f *Frame) Bytes(w Wire) []byte {
	if w == WireLine {
		return f.buf[maxWSHeader:]
	}
	return f.buf[f.wsOff : len(f.buf)-1]
}

// Payload returns the JSON document alone.
func (f *Frame) Payload() []byte { return f.buf[maxWSHeader : len(f.buf)-1] }

// newFrameBuffer returns a buffer with room reserved for the WebSocket header,
// ready for the payload to be appended.
func newFrameBuffer(payloadHint int) []byte {
	buf := make([]byte, maxWSHeader, maxWSHeader+payloadHint+1)
	return buf
}

// seal terminates the payload and writes the WebSocket header in front of it.
func seal(buf []byte) *Frame {
	n := len(buf) - maxWSHeader
	buf = append(buf, '\n')
	var off int
	switch {
	case n < 126:
		off = maxWSHeader - 2
		buf[off+1] = byte(n)
	case n <= 0xFFFF:
		off = maxWSHeader - 4
		buf[off+1] = 126
		binary.BigEndian.PutUint16(buf[off+2:], uint16(n))
	default:
		off = 0
		buf[1] = 127
		binary.BigEndian.PutUint64(buf[2:], uint64(n))
	}
	buf[off] = 0x81 // FIN + text opcode
	return &Frame{buf: buf, wsOff: off}
}

// EncodeJSON marshals v into a Frame. It is for the rare frames (replies,
// disconnects); messages use Message.Frame, which avoids reflection.
func EncodeJSON(v any) *Frame {
	payload, err := json.Marshal(v)
	if err != nil {
		// Every value the server encodes is a plain struct of strings,
		// numbers and raw JSON already validated; failure is a bug.
		panic("protocol: encode frame: " + err.Error())
	}
	buf := newFrameBuffer(len(payload))
	return seal(append(buf, payload...))
}

// Kind is how a message was addressed.
type Kind string

// Message kinds.
const (
	KindBroadcast Kind = "broadcast"
	KindChannel   Kind = "channel"
	KindDirect    Kind = "direct"
	// KindControl carries an order of the server API (disconnect,
	// unsubscribe) to the nodes of a cluster that hold the user it is
	// To; it never reaches a client.
	KindControl Kind = "control"
)

// Message is a delivered message. The server sets every field except Data;
// From is the sender's user id as the server authenticated it, empty for
// messages pushed through the server API.
type Message struct {
	ID      string `json:"id"`
	Kind    Kind   `json:"kind"`
	Channel string `json:"channel,omitempty"`
	To      string `json:"to,omitempty"`
	From    string `json:"from,omitempty"`
	// Offset and Epoch place a message of a channel with history in it:
	// offsets grow by one per message within an epoch.
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
	// Seq is a direct message's sequence in its recipient's inbox, the
	// number a device acknowledges.
	Seq  uint64          `json:"seq,omitempty"`
	Time int64           `json:"ts"` // Unix milliseconds
	Data json.RawMessage `json:"data"`
	// Accepted is when this node accepted the message, for the delivery
	// latency metric; it does not travel.
	Accepted time.Time `json:"-"`
	// ExceptClient and ExceptUser leave connections out of the live
	// delivery: the connection with that client id on this node, and
	// every connection of that user. They are not part of the frame nor
	// of what the store keeps: a message read from history or an inbox
	// goes to whoever reads it.
	ExceptClient string `json:"-"`
	ExceptUser   string `json:"-"`
}

// Frame encodes the message push. Names and ids are validated to need no
// JSON escaping and Data is compacted JSON, so the encoding is a plain
// append with a single allocation.
func (m *Message) Frame() *Frame {
	buf := newFrameBuffer(160 + len(m.ID) + len(m.Channel) + len(m.To) + len(m.From) + len(m.Epoch) + len(m.Data))
	buf = append(buf, `{"type":"message","id":"`...)
	buf = append(buf, m.ID...)
	buf = append(buf, `","kind":"`...)
	buf = append(buf, m.Kind...)
	if m.Channel != "" {
		buf = append(buf, `","channel":"`...)
		buf = append(buf, m.Channel...)
	}
	if m.To != "" {
		buf = append(buf, `","to":"`...)
		buf = append(buf, m.To...)
	}
	if m.From != "" {
		buf = append(buf, `","from":"`...)
		buf = append(buf, m.From...)
	}
	buf = append(buf, '"')
	if m.Offset != 0 {
		buf = append(buf, `,"offset":`...)
		buf = strconv.AppendUint(buf, m.Offset, 10)
		buf = append(buf, `,"epoch":"`...)
		buf = append(buf, m.Epoch...)
		buf = append(buf, '"')
	}
	if m.Seq != 0 {
		buf = append(buf, `,"seq":`...)
		buf = strconv.AppendUint(buf, m.Seq, 10)
	}
	buf = append(buf, `,"ts":`...)
	buf = strconv.AppendInt(buf, m.Time, 10)
	buf = append(buf, `,"data":`...)
	buf = append(buf, m.Data...)
	buf = append(buf, '}')
	return seal(buf)
}

// Reply answers a client operation that carried an id, or reports an error
// for one that did not (then ID is 0 and omitted).
type Reply struct {
	Type   string `json:"type"` // always "reply"
	ID     uint64 `json:"id,omitempty"`
	Result any    `json:"result,omitempty"`
	Error  *Error `json:"error,omitempty"`
}

// ReplyFrame encodes a reply; err nil means success.
func ReplyFrame(id uint64, result any, err *Error) *Frame {
	return EncodeJSON(Reply{Type: "reply", ID: id, Result: result, Error: err})
}

// Version is the protocol version, given in the connect reply. Version 2
// added channel history (offsets, epochs, recovery) and device inboxes
// (device, seq, ack); a version 1 client that uses neither sees no change.
const Version = 2

// ConnectResult is the result of a successful connect.
type ConnectResult struct {
	Protocol     int           `json:"protocol"`         // Version
	Client       string        `json:"client"`           // this connection's id
	User         string        `json:"user"`             // the authenticated user id
	Device       string        `json:"device,omitempty"` // the device named in connect
	PingInterval int           `json:"ping_interval"`    // seconds between server pings
	PongTimeout  int           `json:"pong_timeout"`     // seconds the server waits past a ping
	Limits       ConnectLimits `json:"limits"`
	// Inbox is the state of the device's inbox, for a connection that
	// named a device.
	Inbox *InboxState `json:"inbox,omitempty"`
}

// InboxState is where a device stands in its user's inbox when it
// connects. Pending messages follow the connect reply, oldest first.
type InboxState struct {
	// Acked is the device's position: it acknowledged every message up to
	// this sequence.
	Acked uint64 `json:"acked"`
	// Pending is how many unacknowledged messages follow.
	Pending int `json:"pending"`
	// Missed counts messages after Acked that the device will never get:
	// they expired or were dropped for the inbox's cap before it
	// acknowledged them.
	Missed uint64 `json:"missed,omitempty"`
	// New is set when the server does not know the device: never seen,
	// or forgotten after being away longer than the inbox keeps
	// messages. It starts at the oldest message kept, and what it may
	// have missed before cannot be told: an application with state
	// should reload it.
	New bool `json:"new,omitempty"`
}

// ConnectLimits tells a client the limits it runs under, so it can pace
// itself.
type ConnectLimits struct {
	MaxFrameBytes    int     `json:"max_frame_bytes"`
	OpsPerSecond     float64 `json:"ops_per_second"`
	OpsBurst         int     `json:"ops_burst"`
	PublishPerSecond float64 `json:"publish_per_second"`
	PublishBurst     int     `json:"publish_burst"`
	MaxSubscriptions int     `json:"max_subscriptions"` // 0: no limit
}

// SubscribeResult is the result of subscribing to a channel with history:
// the channel's position when the subscription took effect. Messages after
// Offset follow the reply; when the client asked to recover, the ones it
// missed come first, in order.
type SubscribeResult struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
	// Recovered is set when the subscribe asked to recover: true when every
	// message after the client's position follows, false when some are
	// lost to the client (no longer kept, another epoch, or too many to
	// send), so it should reload its state.
	Recovered *bool `json:"recovered,omitempty"`
	// Missed is how many stored messages follow the reply before live ones.
	Missed int `json:"missed,omitempty"`
}

// PublishResult is the result of publish, send and broadcast.
type PublishResult struct {
	ID string `json:"id"` // the message id
}

// Member is one user among a channel's subscribers: in the result of the
// presence op and in the server API's channel presence.
type Member struct {
	User        string          `json:"user"`
	Connections int             `json:"connections"`
	Info        json.RawMessage `json:"info,omitempty"`
}

// PresenceResult is the result of presence: who subscribes to a channel.
type PresenceResult struct {
	Channel     string   `json:"channel"`
	Users       int      `json:"users"`       // distinct users
	Connections int      `json:"connections"` // their connections
	Members     []Member `json:"members"`     // never null
}

// NewPresenceResult totals members into the result for channel.
func NewPresenceResult(channel string, members []Member) PresenceResult {
	conns := 0
	for _, m := range members {
		conns += m.Connections
	}
	if members == nil {
		members = []Member{}
	}
	return PresenceResult{Channel: channel, Users: len(members), Connections: conns, Members: members}
}

// DisconnectFrame encodes the push sent just before the server closes a
// connection.
func DisconnectFrame(d Disconnect) *Frame {
	return EncodeJSON(struct {
		Type string `json:"type"`
		Disconnect
	}{"disconnect", d})
}

// UnsubscribedFrame tells a client the server removed it from channel.
func UnsubscribedFrame(channel string) *Frame {
	return EncodeJSON(struct {
		Type    string `json:"type"`
		Channel string `json:"channel"`
	}{"unsubscribed", channel})
}

// PingFrame is the server heartbeat. It is the same for every connection, so
// it is encoded once.
var PingFrame = seal(append(newFrameBuffer(15), `{"type":"ping"}`...))
