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
}

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
	if e := req.validate(); e != nil {
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

func (r *Request) validate() *Error {
	switch r.Op {
	case "":
		return Errorf(CodeMissingField, "field \"op\" is required")
	case OpConnect:
		if r.User != "" && !ValidUser(r.User) {
			return Errorf(CodeInvalidUser, "user id %q is not valid: use 1-%d characters from A-Z a-z 0-9 _ - . @", r.User, MaxUserLen)
		}
	case OpSubscribe, OpUnsubscribe:
		return r.needChannel()
	case OpPublish:
		if e := r.needChannel(); e != nil {
			return e
		}
		return r.needData()
	case OpSend:
		if r.To == "" {
			return Errorf(CodeMissingField, "field \"to\" is required for %s", r.Op)
		}
		if !ValidUser(r.To) {
			return Errorf(CodeInvalidUser, "user id %q is not valid: use 1-%d characters from A-Z a-z 0-9 _ - . @", r.To, MaxUserLen)
		}
		return r.needData()
	case OpBroadcast:
		return r.needData()
	case OpPing, OpPong:
	default:
		return Errorf(CodeUnknownOp, "unknown op %q", r.Op)
	}
	return nil
}

func (r *Request) needChannel() *Error {
	if r.Channel == "" {
		return Errorf(CodeMissingField, "field \"channel\" is required for %s", r.Op)
	}
	if !ValidChannel(r.Channel) {
		return InvalidChannel(r.Channel)
	}
	return nil
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
	}
	return kind
}
