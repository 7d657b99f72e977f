package bench

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestClientFramesAreValidJSON(t *testing.T) {
	t.Parallel()
	pl := newPayload(200)
	data := pl.stamp(1764208800123456789)
	if len(data) != 200 {
		t.Errorf("payload is %d bytes, want 200", len(data))
	}
	if got := len(newPayload(5).stamp(1764208800123456789)); got != payloadFixed {
		t.Errorf("smallest payload is %d bytes, want %d", got, payloadFixed)
	}
	for _, f := range [][]byte{
		appendConnect(nil, "b1", "", ""),
		appendConnect(nil, "b1", "eyJ.abc.def", ""),
		appendConnect(nil, "b1", "", "phone"),
		appendSubscribe(nil, "room:1", nil),
		appendSubscribe(nil, "room:1", &position{Offset: 42, Epoch: "a1b2"}),
		appendAck(nil, 17),
		appendPublish(nil, 7, "room:1", data),
		pongFrame,
	} {
		var v map[string]any
		if err := json.Unmarshal(f, &v); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseServerFrame(t *testing.T) {
	t.Parallel()
	stamped := string(newPayload(60).stamp(1764208800123456789))
	for _, tc := range []struct {
		name string
		in   string
		want serverFrame
	}{
		{"message, fast path", `{"type":"message","id":"d4ad","kind":"channel","channel":"room:1","from":"a","ts":1,"data":` + stamped + `}`,
			serverFrame{typ: frameMessage, sentAt: 1764208800123456789}},
		{"message, other key order", `{"data":` + stamped + `,"type":"message","id":"x"}`,
			serverFrame{typ: frameMessage, sentAt: 1764208800123456789}},
		{"inbox message, fast path", `{"type":"message","id":"d4ad","kind":"direct","to":"b","seq":13,"ts":1,"data":` + stamped + `}`,
			serverFrame{typ: frameMessage, sentAt: 1764208800123456789, seq: 13}},
		{"inbox message, other key order", `{"data":` + stamped + `,"type":"message","seq":14}`,
			serverFrame{typ: frameMessage, sentAt: 1764208800123456789, seq: 14}},
		{"foreign message", `{"type":"message","id":"x","kind":"direct","to":"b","ts":1,"data":{"text":"hi"}}`,
			serverFrame{typ: frameMessage}},
		{"ping", `{"type":"ping"}`, serverFrame{typ: framePing}},
		{"reply", `{"type":"reply","id":12}`, serverFrame{typ: frameReply, replyID: 12}},
		{"reply with result", `{"type":"reply","id":1,"result":{"client":"2s","user":"b1","ping_interval":25,"pong_timeout":10}}`,
			serverFrame{typ: frameReply, replyID: 1}},
		{"error reply", `{"type":"reply","id":4,"error":{"code":"rate_limited","message":"slow down"}}`,
			serverFrame{typ: frameReply, replyID: 4, errCode: "rate_limited", errMsg: "slow down"}},
		{"error reply without id", `{"type":"reply","error":{"code":"invalid_frame","message":"m"}}`,
			serverFrame{typ: frameReply, errCode: "invalid_frame", errMsg: "m"}},
		{"disconnect", `{"type":"disconnect","code":3001,"reason":"slow_consumer","reconnect":true}`,
			serverFrame{typ: frameDisconnect, code: 3001, reason: "slow_consumer"}},
		{"unknown type", `{"type":"future"}`, serverFrame{typ: frameOther}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseServerFrame([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := parseServerFrame([]byte("not json")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestDecodeResult(t *testing.T) {
	t.Parallel()
	var pos position
	if err := decodeResult([]byte(`{"type":"reply","id":2,"result":{"offset":50,"epoch":"e1","recovered":true,"missed":8}}`), &pos); err != nil {
		t.Fatal(err)
	}
	if pos.Offset != 50 || pos.Epoch != "e1" || pos.Recovered == nil || !*pos.Recovered || pos.Missed != 8 {
		t.Errorf("position = %+v", pos)
	}
	pos = position{Offset: 7}
	if err := decodeResult([]byte(`{"type":"reply","id":2}`), &pos); err != nil || pos.Offset != 7 {
		t.Errorf("reply without result: %v, %+v", err, pos)
	}
}

func TestTrimEOL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"a\n": "a", "a\r\n": "a", "a": "a", "\n": ""} {
		if got := string(trimEOL([]byte(in))); got != want {
			t.Errorf("trimEOL(%q) = %q, want %q", in, got, want)
		}
	}
	if strings.Contains(string(pongFrame), "\n") {
		t.Error("pong frame holds a newline")
	}
}
