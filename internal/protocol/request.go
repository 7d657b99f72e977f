// Package protocol defines Herald's wire protocol: the operations a client
// sends, the replies and pushes the server sends back, their JSON encoding
// and validation, and the stable error and disconnect codes. It is a leaf
// package: it knows nothing of sockets, sessions or the hub.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Op names a client operation.
type Op string

// Client operations.
const (
	OpConnect     Op = "connect"
	OpSubscribe   Op = "subscribe"
	OpUnsubscribe Op = "unsubscribe"
	OpPublish     Op = "publish"
	OpSend        Op = "send"
	OpBroadcast   Op = "broadcast"
	OpPing        Op = "ping"
	OpPong        Op = "pong"
	OpAck         Op = "ack"
	OpPresence    Op = "presence"
)

// Request is one decoded client frame. Which fields matter depends on Op;
// Decode checks that the ones an op needs are present and well formed.
type Request struct {
	ID      uint64          `json:"id,omitempty"`
	Op      Op              `json:"op"`
	Token   string          `json:"token,omitempty"`
	User    string          `json:"user,omitempty"`
	Channel string          `json:"channel,omitempty"`
	To      string          `json:"to,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	// Device names the connecting device within its user (connect): a
	// connection with a device receives the user's inbox and acknowledges
	// it.
	Device string `json:"device,omitempty"`
	// Offset and Epoch (subscribe) are the last channel position the
	// client saw: the server sends what came after it. Both or neither.
	Offset *uint64 `json:"offset,omitempty"`
	Epoch  string  `json:"epoch,omitempty"`
	// Seq (ack) acknowledges the inbox up to and including this sequence.
	Seq *uint64 `json:"seq,omitempty"`
	// Echo (publish, send, broadcast), when false, leaves the sending
	// connection out of the message's delivery.
	Echo *bool `json:"echo,omitempty"`
}

// NoEcho reports whether the request asks that its message not come back
// to the connection that sent it.
func (r *Request) NoEcho() bool { return r.Echo != nil && !*r.Echo }

// Decode parses and validates one client frame. On failure it returns the
// request as far as it was read (so a reply can carry its id) and an *Error.
// The returned Data is compacted: it never contains a raw newline, so it can
// be framed on a line as it is.
func Decode(frame []byte) (Request, *Error) {
	var req Request
	if !utf8.Valid(frame) {
		return req, Errorf(CodeInvalidFrame, "frame is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(frame)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return req, Errorf(CodeInvalidFrame, "frame must be a JSON object")
	}
	if err := json.Unmarshal(trimmed, &req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			// json.Unmarshal fills every other field it can, so the id
			// (when well formed) is there for the error reply.
			return req, Errorf(CodeInvalidField, "field %q must be %s, not %s", typeErr.Field, typeName(typeErr.Type.Kind().String()), typeErr.Value)
		}
		return Request{}, Errorf(CodeInvalidFrame, "malformed JSON: %v", err)
	}
	if e := req.validate(trimmed); e != nil {
		return req, e
	}
	// Data was validated by Unmarshal; JSON's only insignificant whitespace
	// is space, tab, CR and LF, so data without any is already compact.
	if len(req.Data) > 0 && bytes.ContainsAny(req.Data, " \t\r\n") {
		var buf bytes.Buffer
		buf.Grow(len(req.Data))
		if err := json.Compact(&buf, req.Data); err != nil {
			return req, Errorf(CodeInvalidField, "field \"data\" is not valid JSON")
		}
		req.Data = buf.Bytes()
	}
	return req, nil
}

// validate checks the fields op needs. An absent or null field is
// missing_field; a present one of the wrong form, the empty string
// included, is unknown_op, invalid_channel or invalid_user. frame is the
// decoded frame, read again only to tell an empty name from an absent one.
func (r *Request) validate(frame []byte) *Error {
	switch r.Op {
	case "":
		if !emptyString(frame, "op") {
			return Errorf(CodeMissingField, "field \"op\" is required")
		}
	case OpConnect:
		if r.Device != "" || emptyString(frame, "device") {
			if !ValidDevice(r.Device) {
				return Errorf(CodeInvalidField, "device %q is not valid: use 1-%d characters from A-Z a-z 0-9 _ - . @", r.Device, MaxDeviceLen)
			}
		}
		if r.User != "" || emptyString(frame, "user") {
			return checkUser(r.User)
		}
		return nil
	case OpSubscribe:
		if e := r.needChannel(frame); e != nil {
			return e
		}
		switch {
		case r.Epoch == "" && emptyString(frame, "epoch"):
			return Errorf(CodeInvalidField, "field \"epoch\" is empty: send it as the subscribe reply or the last message gave it")
		case r.Offset != nil && r.Epoch == "":
			return Errorf(CodeMissingField, "field \"epoch\" is required with \"offset\": send both as the subscribe reply or the last message gave them")
		case r.Offset == nil && r.Epoch != "":
			return Errorf(CodeMissingField, "field \"offset\" is required with \"epoch\"")
		}
		return nil
	case OpUnsubscribe, OpPresence:
		return r.needChannel(frame)
	case OpAck:
		if r.Seq == nil {
			return Errorf(CodeMissingField, "field \"seq\" is required for ack")
		}
		return nil
	case OpPublish:
		if e := r.needChannel(frame); e != nil {
			return e
		}
		return r.needData()
	case OpSend:
		if r.To == "" && !emptyString(frame, "to") {
			return Errorf(CodeMissingField, "field \"to\" is required for %s", r.Op)
		}
		if e := checkUser(r.To); e != nil {
			return e
		}
		return r.needData()
	case OpBroadcast:
		return r.needData()
	case OpPing, OpPong:
		return nil
	}
	return Errorf(CodeUnknownOp, "unknown op %q: use connect, subscribe, unsubscribe, publish, send, broadcast, presence, ack, ping or pong", r.Op)
}

func checkUser(id string) *Error {
	if !ValidUser(id) {
		return Errorf(CodeInvalidUser, "user id %q is not valid: use 1-%d characters from A-Z a-z 0-9 _ - . @", id, MaxUserLen)
	}
	return nil
}

func (r *Request) needChannel(frame []byte) *Error {
	if r.Channel == "" && !emptyString(frame, "channel") {
		return Errorf(CodeMissingField, "field \"channel\" is required for %s", r.Op)
	}
	if !ValidChannel(r.Channel) {
		return InvalidChannel(r.Channel)
	}
	return nil
}

// emptyString reports whether frame, a JSON object that decoded into a
// Request, has the string field name ("op", "user", "channel", "to",
// "device" or "epoch") present and empty. A string field decodes the same whether it is
// absent, null or "", so this is how the two are told apart. It costs a
// second decode only for frames that hold an empty string at all: "" is
// the one way to write one.
func emptyString(frame []byte, name string) bool {
	if !bytes.Contains(frame, []byte(`""`)) {
		return false
	}
	// The same field names as Request, so that keys match as they did
	// there (encoding/json ignores case).
	var f struct {
		Op      json.RawMessage `json:"op"`
		User    json.RawMessage `json:"user"`
		Channel json.RawMessage `json:"channel"`
		To      json.RawMessage `json:"to"`
		Device  json.RawMessage `json:"device"`
		Epoch   json.RawMessage `json:"epoch"`
	}
	if json.Unmarshal(frame, &f) != nil {
		return false
	}
	var v json.RawMessage
	switch name {
	case "op":
		v = f.Op
	case "user":
		v = f.User
	case "channel":
		v = f.Channel
	case "to":
		v = f.To
	case "device":
		v = f.Device
	case "epoch":
		v = f.Epoch
	}
	return string(v) == `""`
}

func (r *Request) needData() *Error {
	if len(r.Data) == 0 || string(r.Data) == "null" {
		return Errorf(CodeMissingField, "field \"data\" is required for %s", r.Op)
	}
	return nil
}

// InvalidChannel is the error for a malformed channel name.
func InvalidChannel(name string) *Error {
	return Errorf(CodeInvalidChannel, "channel %q is not valid: use 1-%d characters from A-Z a-z 0-9 _ - . : @ / =", name, MaxChannelLen)
}

func typeName(kind string) string {
	switch kind {
	case "uint64":
		return "a non-negative integer"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	}
	return kind
}
