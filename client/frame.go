package client

import (
	"encoding/json"
	"fmt"
	"time"
)

// Client operations.
const (
	opConnect     = "connect"
	opSubscribe   = "subscribe"
	opUnsubscribe = "unsubscribe"
	opPublish     = "publish"
	opSend        = "send"
	opBroadcast   = "broadcast"
	opPing        = "ping"
	opAck         = "ack"
)

// pongFrame answers a server ping. It carries no id: it gets no reply.
var pongFrame = []byte(`{"op":"pong"}`)

// request is a client frame.
type request struct {
	ID      uint64          `json:"id,omitempty"`
	Op      string          `json:"op"`
	Token   string          `json:"token,omitempty"`
	User    string          `json:"user,omitempty"`
	Channel string          `json:"channel,omitempty"`
	To      string          `json:"to,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Device  string          `json:"device,omitempty"`
	// Offset and Epoch go together, in a subscribe that recovers.
	Offset *uint64 `json:"offset,omitempty"`
	Epoch  string  `json:"epoch,omitempty"`
	Seq    *uint64 `json:"seq,omitempty"`
	// Echo, set to false, leaves the sending connection out of a
	// publish, send or broadcast.
	Echo *bool `json:"echo,omitempty"`
}

// serverFrame holds the fields of every server frame type. ID is a number
// in replies and a string in messages, so it is decoded by type.
type serverFrame struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"`

	// reply
	Result json.RawMessage `json:"result"`
	Error  *Error          `json:"error"`

	// message
	Kind    Kind            `json:"kind"`
	Channel string          `json:"channel"`
	To      string          `json:"to"`
	From    string          `json:"from"`
	TS      int64           `json:"ts"`
	Data    json.RawMessage `json:"data"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	Seq     uint64          `json:"seq"`

	// disconnect
	Code      int    `json:"code"`
	Reason    string `json:"reason"`
	Reconnect bool   `json:"reconnect"`
	Message   string `json:"message"`
}

// replyID returns a reply's id; 0 when it has none.
func (f *serverFrame) replyID() (uint64, error) {
	if len(f.ID) == 0 || string(f.ID) == "null" {
		return 0, nil
	}
	var id uint64
	if err := json.Unmarshal(f.ID, &id); err != nil {
		return 0, fmt.Errorf("reply id %s: %w", f.ID, err)
	}
	return id, nil
}

// message builds the Message of a message frame whose encoding is raw.
func (f *serverFrame) message(raw []byte) (Message, error) {
	m := Message{
		Kind: f.Kind, Channel: f.Channel, To: f.To, From: f.From, TS: f.TS, Data: f.Data,
		Offset: f.Offset, Epoch: f.Epoch, Seq: f.Seq, Raw: raw,
	}
	if err := json.Unmarshal(f.ID, &m.ID); err != nil {
		return Message{}, fmt.Errorf("message id %s: %w", f.ID, err)
	}
	return m, nil
}

// connectResult is the wire form of ConnectInfo.
type connectResult struct {
	Client       string  `json:"client"`
	User         string  `json:"user"`
	PingInterval float64 `json:"ping_interval"` // seconds
	PongTimeout  float64 `json:"pong_timeout"`  // seconds
	Device       string  `json:"device"`
	Inbox        *struct {
		Acked   uint64 `json:"acked"`
		Pending int    `json:"pending"`
		Missed  uint64 `json:"missed"`
	} `json:"inbox"`
}

func decodeConnectResult(raw json.RawMessage) (ConnectInfo, error) {
	var r connectResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return ConnectInfo{}, fmt.Errorf("decode connect result: %w", err)
	}
	info := ConnectInfo{
		Client:       r.Client,
		User:         r.User,
		PingInterval: seconds(r.PingInterval),
		PongTimeout:  seconds(r.PongTimeout),
		Device:       r.Device,
	}
	if r.Inbox != nil {
		info.Inbox = &InboxState{Acked: r.Inbox.Acked, Pending: r.Inbox.Pending, Missed: r.Inbox.Missed}
	}
	return info, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// subscribeResult is the result of a subscribe to a channel with history;
// a channel without it has none.
type subscribeResult struct {
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Recovered *bool  `json:"recovered"`
	Missed    int    `json:"missed"`
}

// publishResult is the result of publish, send and broadcast.
type publishResult struct {
	ID string `json:"id"`
}

// encodeData marshals message data, refusing null.
func encodeData(data any) (json.RawMessage, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode data: %w", err)
	}
	if string(raw) == "null" {
		return nil, ErrNullData
	}
	return raw, nil
}
