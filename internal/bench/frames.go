package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Client frames. Names (users, channels) are validated to need no JSON
// escaping; tokens are base64url and dots. The hot frame is publish, built
// with appends and no reflection.

// pongFrame answers a server ping.
var pongFrame = []byte(`{"op":"pong"}`)

// Reply ids the handshake uses; publishes count up from firstPublishID.
// An inbox acknowledgement has the id ackID, below them.
const (
	connectID      = 1
	subscribeID    = 2
	ackID          = 3
	firstPublishID = 4
)

// appendConnect appends a connect frame: with a token when token is not
// empty, else with the user id (insecure mode); with a device when device
// is not empty.
func appendConnect(buf []byte, user, token, device string) []byte {
	buf = append(buf, `{"id":`...)
	buf = strconv.AppendUint(buf, connectID, 10)
	if token != "" {
		buf = append(buf, `,"op":"connect","token":`...)
		buf = strconv.AppendQuote(buf, token)
	} else {
		buf = append(buf, `,"op":"connect","user":"`...)
		buf = append(buf, user...)
		buf = append(buf, '"')
	}
	if device != "" {
		buf = append(buf, `,"device":`...)
		buf = strconv.AppendQuote(buf, device)
	}
	return append(buf, '}')
}

// appendSubscribe appends a subscribe frame, recovering from from when it
// is not nil.
func appendSubscribe(buf []byte, channel string, from *position) []byte {
	buf = append(buf, `{"id":`...)
	buf = strconv.AppendUint(buf, subscribeID, 10)
	buf = append(buf, `,"op":"subscribe","channel":"`...)
	buf = append(buf, channel...)
	buf = append(buf, '"')
	if from != nil {
		buf = append(buf, `,"offset":`...)
		buf = strconv.AppendUint(buf, from.Offset, 10)
		buf = append(buf, `,"epoch":`...)
		buf = strconv.AppendQuote(buf, from.Epoch)
	}
	return append(buf, '}')
}

// appendAck appends an ack frame for an inbox up to seq.
func appendAck(buf []byte, seq uint64) []byte {
	buf = append(buf, `{"id":`...)
	buf = strconv.AppendUint(buf, ackID, 10)
	buf = append(buf, `,"op":"ack","seq":`...)
	buf = strconv.AppendUint(buf, seq, 10)
	return append(buf, '}')
}

// appendPublish appends a publish frame carrying data.
func appendPublish(buf []byte, id uint64, channel string, data []byte) []byte {
	buf = append(buf, `{"id":`...)
	buf = strconv.AppendUint(buf, id, 10)
	buf = append(buf, `,"op":"publish","channel":"`...)
	buf = append(buf, channel...)
	buf = append(buf, `","data":`...)
	buf = append(buf, data...)
	return append(buf, '}')
}

// Payloads are {"t":<unix nanos>,"pad":"xxx..."}: the send time first, so
// a receiver finds it without decoding the rest.
const (
	stampKey      = `{"t":`
	payloadFixed  = len(stampKey) + 19 + len(`,"pad":""}`) // 19 digits of unix nanos
	dataKey       = `"data":`
	seqKey        = `,"seq":`
	stampedData   = dataKey + stampKey
	messagePrefix = `{"type":"message"`
	replyPrefix   = `{"type":"reply","id":`
)

// payload builds one message payload of about size bytes (exactly size when
// size is at least payloadFixed), stamped with sentAt.
type payload struct {
	pad int
	buf []byte
}

func newPayload(size int) *payload {
	return &payload{pad: max(0, size-payloadFixed)}
}

// stamp returns the payload for sentAt. The slice is reused by the next
// call.
func (p *payload) stamp(sentAt int64) []byte {
	b := append(p.buf[:0], stampKey...)
	b = strconv.AppendInt(b, sentAt, 10)
	b = append(b, `,"pad":"`...)
	for range p.pad {
		b = append(b, 'x')
	}
	b = append(b, `"}`...)
	p.buf = b
	return b
}

// frameType is what a server frame is.
type frameType uint8

const (
	frameOther frameType = iota
	frameMessage
	frameReply
	framePing
	frameDisconnect
)

// serverFrame is what the load tool needs from a server frame.
type serverFrame struct {
	typ     frameType
	replyID uint64 // reply
	errCode string // reply: the error code, empty on success
	errMsg  string // reply: the error message
	sentAt  int64  // message: the payload's send stamp, 0 when it has none
	seq     uint64 // message: its seq in the recipient's inbox, 0 when none
	code    int    // disconnect
	reason  string // disconnect
}

// parseServerFrame reads one server frame. The common frames (a message
// carrying a stamp, a ping, a successful reply) are recognised without
// decoding; anything else goes through encoding/json.
func parseServerFrame(b []byte) (serverFrame, error) {
	switch {
	case bytes.HasPrefix(b, []byte(messagePrefix)):
		// No field before data can hold a quote (ids and names are
		// restricted), so the first match is the data field: a short
		// forward search, however long the payload.
		if i := bytes.Index(b, []byte(stampedData)); i >= 0 {
			if t, ok := leadingInt(b[i+len(dataKey):], stampKey); ok {
				f := serverFrame{typ: frameMessage, sentAt: t}
				if j := bytes.Index(b[:i], []byte(seqKey)); j >= 0 {
					seq, _ := leadingInt(b[j:], seqKey)
					f.seq = uint64(seq)
				}
				return f, nil
			}
		}
	case bytes.Equal(b, []byte(`{"type":"ping"}`)):
		return serverFrame{typ: framePing}, nil
	case bytes.HasPrefix(b, []byte(replyPrefix)):
		rest := b[len(replyPrefix):]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		id, err := strconv.ParseUint(string(rest[:n]), 10, 64)
		tail := rest[n:]
		if err == nil && (bytes.Equal(tail, []byte("}")) || bytes.HasPrefix(tail, []byte(`,"result":`))) {
			return serverFrame{typ: frameReply, replyID: id}, nil
		}
	}
	return decodeServerFrame(b)
}

// leadingInt parses the integer after prefix at the start of b.
func leadingInt(b []byte, prefix string) (int64, bool) {
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return 0, false
	}
	b = b[len(prefix):]
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(string(b[:n]), 10, 64)
	return v, err == nil
}

// decodeServerFrame is the general, slower path of parseServerFrame.
func decodeServerFrame(b []byte) (serverFrame, error) {
	var f struct {
		Type  string          `json:"type"`
		ID    json.RawMessage `json:"id"` // a number in replies, a string in messages
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Code   int             `json:"code"`
		Reason string          `json:"reason"`
		Seq    uint64          `json:"seq"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return serverFrame{}, fmt.Errorf("decode server frame %.64q: %w", b, err)
	}
	switch f.Type {
	case "message":
		var stamp struct {
			T int64 `json:"t"`
		}
		_ = json.Unmarshal(f.Data, &stamp) // a foreign payload has no stamp
		return serverFrame{typ: frameMessage, sentAt: stamp.T, seq: f.Seq}, nil
	case "reply":
		sf := serverFrame{typ: frameReply}
		if len(f.ID) > 0 {
			id, err := strconv.ParseUint(string(f.ID), 10, 64)
			if err != nil {
				return serverFrame{}, fmt.Errorf("reply id %s: %w", f.ID, err)
			}
			sf.replyID = id
		}
		if f.Error != nil {
			sf.errCode, sf.errMsg = f.Error.Code, f.Error.Message
			if sf.errCode == "" {
				sf.errCode = "unknown"
			}
		}
		return sf, nil
	case "ping":
		return serverFrame{typ: framePing}, nil
	case "disconnect":
		return serverFrame{typ: frameDisconnect, code: f.Code, reason: f.Reason}, nil
	}
	return serverFrame{typ: frameOther}, nil
}

// decodeResult decodes the result of a successful reply into out; a reply
// without a result leaves out as it is.
func decodeResult(reply []byte, out any) error {
	if !bytes.Contains(reply, []byte(`"result":`)) {
		return nil
	}
	v := struct {
		Result any `json:"result"`
	}{out}
	if err := json.Unmarshal(reply, &v); err != nil {
		return fmt.Errorf("decode reply %.64q: %w", reply, err)
	}
	return nil
}
