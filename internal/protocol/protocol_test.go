package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		frame string
		code  Code
		check func(t *testing.T, r Request)
	}{
		{frame: `{"id":7,"op":"publish","channel":"room:1","data":{ "a" : [1, 2] }}`, check: func(t *testing.T, r Request) {
			if r.ID != 7 || r.Op != OpPublish || r.Channel != "room:1" || string(r.Data) != `{"a":[1,2]}` {
				t.Fatalf("got %+v (data %s)", r, r.Data)
			}
		}},
		{frame: "  {\"op\":\"send\",\"to\":\"bob\",\"data\":\"line\\nbreak\"}\r\n", check: func(t *testing.T, r Request) {
			if r.To != "bob" || string(r.Data) != `"line\nbreak"` {
				t.Fatalf("got %+v", r)
			}
		}},
		{frame: `{"op":"connect","token":"t","unknown":{"x":1}}`},
		{frame: `{"op":"pong"}`},
		{frame: ``, code: CodeInvalidFrame},
		{frame: `null`, code: CodeInvalidFrame},
		{frame: `{"op":"ping"`, code: CodeInvalidFrame},
		{frame: "{\"op\":\"ping\",\"x\":\"\xc3\x28\"}", code: CodeInvalidFrame},
		// An absent (or null) field is missing; a present one that is
		// empty is invalid, like any other malformed value.
		{frame: `{"id":1}`, code: CodeMissingField},
		{frame: `{"op":null}`, code: CodeMissingField},
		{frame: `{"op":""}`, code: CodeUnknownOp},
		{frame: `{"op":"ping","OP":""}`, code: CodeUnknownOp}, // keys match as encoding/json matches them
		{frame: `{"op":"fly"}`, code: CodeUnknownOp},
		{frame: `{"id":3,"op":true}`, code: CodeInvalidField, check: func(t *testing.T, r Request) {
			if r.ID != 3 {
				t.Fatalf("id lost on a type error: %+v", r)
			}
		}},
		{frame: `{"id":1.5,"op":"ping"}`, code: CodeInvalidField},
		{frame: `{"op":"subscribe"}`, code: CodeMissingField},
		{frame: `{"op":"subscribe","channel":null}`, code: CodeMissingField},
		{frame: `{"op":"subscribe","channel":""}`, code: CodeInvalidChannel},
		{frame: `{"op":"unsubscribe","channel" : ""}`, code: CodeInvalidChannel},
		{frame: `{"op":"subscribe","channel":"a","offset":3,"epoch":""}`, code: CodeInvalidField},
		{frame: `{"op":"subscribe","channel":"a","epoch":""}`, code: CodeInvalidField},
		{frame: `{"op":"subscribe","channel":"a","offset":3}`, code: CodeMissingField},
		{frame: `{"op":"subscribe","channel":"a","offset":3,"epoch":null}`, code: CodeMissingField},
		{frame: `{"op":"subscribe","channel":"a","epoch":"e1"}`, code: CodeMissingField},
		{frame: `{"op":"publish","channel":"","data":1}`, code: CodeInvalidChannel},
		{frame: `{"op":"publish","data":1,"note":""}`, code: CodeMissingField}, // an empty string elsewhere
		{frame: `{"op":"send","data":1}`, code: CodeMissingField},
		{frame: `{"op":"send","to":"","data":1}`, code: CodeInvalidUser},
		{frame: `{"op":"connect","token":"t"}`},
		{frame: `{"op":"connect","token":"t","user":null}`},
		{frame: `{"op":"connect","token":"t","user":""}`, code: CodeInvalidUser},
		{frame: `{"op":"connect","user":""}`, code: CodeInvalidUser},
		{frame: `{"op":"connect"}`}, // whether a user is needed is the server's to say
		{frame: `{"op":"subscribe","channel":"a b"}`, code: CodeInvalidChannel},
		{frame: `{"op":"publish","channel":"a","data":null}`, code: CodeMissingField},
		{frame: `{"op":"send","to":"x y","data":1}`, code: CodeInvalidUser},
		{frame: `{"op":"connect","user":"` + strings.Repeat("u", 65) + `"}`, code: CodeInvalidUser},
	}
	for _, tc := range tests {
		r, err := Decode([]byte(tc.frame))
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("Decode(%q): unexpected error %v", tc.frame, err)
		case tc.code != "" && (err == nil || err.Code != tc.code):
			t.Errorf("Decode(%q): want %s, got %v", tc.frame, tc.code, err)
		case err != nil && err.Message == "":
			t.Errorf("Decode(%q): error without a message", tc.frame)
		}
		if tc.check != nil {
			tc.check(t, r)
		}
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"a", "room:42", "user:alice@example.com", "news/sport=1", strings.Repeat("c", 128)} {
		if !ValidChannel(ok) {
			t.Errorf("ValidChannel(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "a b", "a\"b", "é", "a\nb", strings.Repeat("c", 129)} {
		if ValidChannel(bad) {
			t.Errorf("ValidChannel(%q) = true", bad)
		}
	}
	if ValidUser("a:b") || !ValidUser("alice.smith@corp") {
		t.Error("ValidUser")
	}
	if Namespace("room:1:2") != "room" || Namespace("lobby") != "" {
		t.Error("Namespace")
	}
}

// The hand-written message encoding matches encoding/json, and every wire
// form frames it correctly.
func TestMessageFrame(t *testing.T) {
	for _, size := range []int{1, 100, 125, 126, 1000, 65535, 70000} {
		m := Message{ID: "d4ad0ig3f1hbmdd0ec10", Kind: KindChannel, Channel: "room:1", From: "alice", Time: 1764208800123,
			Data: json.RawMessage(`"` + strings.Repeat("x", size) + `"`)}
		f := m.Frame()
		want, _ := json.Marshal(struct {
			Type string `json:"type"`
			Message
		}{"message", m})
		if !bytes.Equal(f.Payload(), want) {
			t.Fatalf("payload\n got %s\nwant %s", f.Payload(), want)
		}
		line := f.Bytes(WireLine)
		if !bytes.Equal(line, append(want, '\n')) {
			t.Fatalf("line form wrong")
		}
		ws := f.Bytes(WireWebSocket)
		if ws[0] != 0x81 {
			t.Fatalf("first byte %x", ws[0])
		}
		var n, hdr int
		switch l := ws[1]; {
		case l < 126:
			n, hdr = int(l), 2
		case l == 126:
			n, hdr = int(binary.BigEndian.Uint16(ws[2:])), 4
		default:
			n, hdr = int(binary.BigEndian.Uint64(ws[2:])), 10
		}
		if n != len(want) || !bytes.Equal(ws[hdr:], want) {
			t.Fatalf("size %d: websocket frame declares %d bytes, header %d", size, n, hdr)
		}
	}
}

func TestControlFrames(t *testing.T) {
	if got := string(PingFrame.Payload()); got != `{"type":"ping"}` {
		t.Fatalf("ping %s", got)
	}
	d := string(DisconnectFrame(DisconnectShutdown).Payload())
	if d != `{"type":"disconnect","code":3000,"reason":"shutdown","reconnect":true}` {
		t.Fatalf("disconnect %s", d)
	}
	r := string(ReplyFrame(3, nil, Errorf(CodeForbidden, "no")).Payload())
	if r != `{"type":"reply","id":3,"error":{"code":"forbidden","message":"no"}}` {
		t.Fatalf("reply %s", r)
	}
}

// FuzzDecode checks that no input panics the decoder, and that whatever it
// accepts is safe to forward: data is valid, compact JSON on one line.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":"connect","user":"alice"}`,
		`{"id":2,"op":"publish","channel":"room:1","data":{"a":[1,2,{"b":null}]}}`,
		`{"op":"send","to":"bob","data":"x\ny"}`,
		`{"op":"broadcast","data":1e308}`,
		`{"id":18446744073709551615,"op":"ping"}`,
		`{"op":"subscribe","channel":"` + strings.Repeat("a", 200) + `"}`,
		`{"op":"send","to":"","data":""}`,
		`{"op":"","channel":""}`,
		`[{"op":"ping"}]`,
		"{\"op\":\"ping\"}\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		r, err := Decode(frame)
		if err != nil {
			if err.Code == "" || err.Message == "" {
				t.Fatalf("error without code or message: %+v", err)
			}
			return
		}
		if len(r.Data) > 0 {
			if !json.Valid(r.Data) || bytes.ContainsAny(r.Data, "\n\r") {
				t.Fatalf("accepted data unsafe to forward: %q", r.Data)
			}
			m := Message{ID: "x", Kind: KindChannel, Channel: "c", Data: r.Data}
			if !json.Valid(m.Frame().Payload()) {
				t.Fatalf("message frame not valid JSON: %q", m.Frame().Payload())
			}
		}
		if r.Channel != "" && !ValidChannel(r.Channel) {
			t.Fatalf("accepted invalid channel %q", r.Channel)
		}
	})
}

func BenchmarkMessageFrame(b *testing.B) {
	m := Message{ID: "d4ad0ig3f1hbmdd0ec10", Kind: KindChannel, Channel: "room:42", From: "alice", Time: 1764208800123,
		Data: json.RawMessage(`{"text":"` + strings.Repeat("x", 160) + `"}`)}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Frame()
	}
}

func BenchmarkDecodePublish(b *testing.B) {
	frame := []byte(`{"id":12,"op":"publish","channel":"room:42","data":{"text":"` + strings.Repeat("x", 160) + `"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}
