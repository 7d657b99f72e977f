package server

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Every kind of bad input gets a clear error or close reason, the server
// stays up, and a bystander keeps receiving.
func TestBadInput(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxFrameBytes = 1024
	srv := startServer(t, cfg)
	// The flood's own server refills no operation during the test: at
	// the usual rate a slow run (the race detector on a busy machine)
	// lets a token in between the refused ones, and that success rightly
	// resets the count of the flood.
	floodCfg := cfg
	floodCfg.OpsPerSecond = 0.01
	floodSrv := startServer(t, floodCfg)
	bystander := dialWS(t, srv)
	bystander.connect("bystander")
	bystander.subscribe("room:calm")

	replies := []struct {
		name, frame, code string
	}{
		{"malformed json", `{"op":"connect",`, "invalid_frame"},
		{"not an object", `[1,2,3]`, "invalid_frame"},
		{"plain text", `hello`, "invalid_frame"},
		{"unknown op", `{"id":1,"op":"launch"}`, "unknown_op"},
		{"missing op", `{"id":1}`, "missing_field"},
		{"empty op", `{"id":1,"op":""}`, "unknown_op"},
		{"op wrong type", `{"id":1,"op":7}`, "invalid_field"},
		{"id wrong type", `{"id":"one","op":"ping"}`, "invalid_field"},
		{"negative id", `{"id":-1,"op":"ping"}`, "invalid_field"},
		{"channel wrong type", `{"id":1,"op":"subscribe","channel":["a"]}`, "invalid_field"},
		{"missing channel", `{"id":1,"op":"subscribe"}`, "missing_field"},
		{"null channel", `{"id":1,"op":"subscribe","channel":null}`, "missing_field"},
		{"empty channel", `{"id":1,"op":"subscribe","channel":""}`, "invalid_channel"},
		{"empty channel to publish", `{"id":1,"op":"publish","channel":"","data":1}`, "invalid_channel"},
		{"invalid channel", `{"id":1,"op":"subscribe","channel":"has space"}`, "invalid_channel"},
		{"channel too long", `{"id":1,"op":"subscribe","channel":"` + strings.Repeat("c", 129) + `"}`, "invalid_channel"},
		{"missing data", `{"id":1,"op":"publish","channel":"room:calm"}`, "missing_field"},
		{"null data", `{"id":1,"op":"publish","channel":"room:calm","data":null}`, "missing_field"},
		{"missing to", `{"id":1,"op":"send","data":1}`, "missing_field"},
		{"invalid to", `{"id":1,"op":"send","to":"a/b","data":1}`, "invalid_user"},
		{"empty to", `{"id":1,"op":"send","to":"","data":1}`, "invalid_user"},
		{"unsubscribe unknown", `{"id":1,"op":"unsubscribe","channel":"room:never"}`, "not_subscribed"},
		{"connect twice", `{"id":1,"op":"connect","user":"again"}`, "already_connected"},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for _, tc := range replies {
				t.Run(tc.name, func(t *testing.T) {
					c := tr.dial(t, srv)
					c.connect("tester")
					c.writeRaw(tc.frame)
					c.wantError(tc.code)
					// The connection is still usable.
					c.reply(c.send(map[string]any{"op": "ping"}))
				})
			}

			t.Run("before connect", func(t *testing.T) {
				c := tr.dial(t, srv)
				c.writeRaw(`{"id":1,"op":"subscribe","channel":"room:calm"}`)
				c.wantError("not_connected")
				c.writeRaw(`{"id":2,"op":"connect","user":"bad user"}`)
				c.wantError("invalid_user")
				// A failed connect is final, even one the server cannot read.
				if d := c.expectClosed(3 * time.Second); d == nil || d.Code != 3502 || d.Reconnect {
					t.Fatalf("want disconnect 3502, got %+v", d)
				}
			})

			t.Run("connect without user in insecure mode", func(t *testing.T) {
				c := tr.dial(t, srv)
				c.writeRaw(`{"id":1,"op":"connect"}`)
				c.wantError("missing_field")
				if d := c.expectClosed(3 * time.Second); d == nil || d.Code != 3502 {
					t.Fatalf("want disconnect 3502, got %+v", d)
				}
			})

			t.Run("frame too large", func(t *testing.T) {
				c := tr.dial(t, srv)
				c.connect("big")
				c.writeRaw(`{"op":"publish","channel":"room:calm","data":"` + strings.Repeat("x", 2000) + `"}`)
				if d := c.expectClosed(3 * time.Second); d == nil || d.Code != 3501 || d.Reason != "frame_too_large" {
					t.Fatalf("want disconnect 3501, got %+v", d)
				}
			})

			t.Run("repeated violations", func(t *testing.T) {
				c := tr.dial(t, srv)
				c.connect("noisy")
				for range cfg.MaxStrikes {
					c.writeRaw(`{"op":"nonsense"}`)
				}
				for range cfg.MaxStrikes {
					c.wantError("unknown_op")
				}
				if d := c.expectClosed(3 * time.Second); d == nil || d.Code != 3500 || d.Reason != "protocol_violation" || d.Reconnect {
					t.Fatalf("want disconnect 3500, got %+v", d)
				}
			})

			t.Run("flood", func(t *testing.T) {
				// Beyond the burst, operations are refused with rate_limited;
				// a flood that goes on past a second burst without a single
				// success ends in a protocol_violation disconnect.
				c := tr.dial(t, floodSrv)
				c.connect("flood")
				n := 3 * cfg.OpsBurst
				for i := range n {
					if c.tryWrite(`{"id":`+itoa(i+1)+`,"op":"ping"}`) != nil {
						break
					}
				}
				limited := 0
				for {
					f, err := c.readFrameErr(3 * time.Second)
					if err != nil {
						t.Fatalf("connection ended without a disconnect frame: %v", err)
					}
					if f.Type == "disconnect" {
						if f.Code != 3500 {
							t.Fatalf("flood: want disconnect 3500, got %s", f.raw)
						}
						break
					}
					if f.Error != nil {
						if f.Error.Code != "rate_limited" {
							t.Fatalf("flood: %s", f.raw)
						}
						limited++
					}
				}
				if limited <= cfg.OpsBurst {
					t.Fatalf("%d rate_limited replies before the disconnect, want more than %d", limited, cfg.OpsBurst)
				}
			})
		})
	}

	t.Run("tcp invalid utf-8", func(t *testing.T) {
		c := dialTCP(t, srv)
		c.connect("utf")
		c.writeRaw("{\"id\":1,\"op\":\"publish\",\"channel\":\"room:calm\",\"data\":\"\xff\xfe\"}")
		c.wantError("invalid_frame")
	})
	t.Run("ws invalid utf-8", func(t *testing.T) {
		c := dialWS(t, srv)
		c.connect("utf")
		_ = c.ws.WriteMessage(websocket.TextMessage, []byte("{\"op\":\"ping\",\"x\":\"\xff\"}"))
		_, _, err := c.ws.ReadMessage()
		var ce *websocket.CloseError
		if !asCloseError(err, &ce) || ce.Code != websocket.CloseProtocolError {
			t.Fatalf("want close 1002, got %v", err)
		}
	})
	t.Run("ws binary frame", func(t *testing.T) {
		c := dialWS(t, srv)
		c.connect("bin")
		_ = c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"op":"ping","id":1}`))
		c.wantError("binary_not_supported")
		c.reply(c.send(map[string]any{"op": "ping"}))
	})

	// The server is up and the bystander was never disturbed.
	pub := dialTCP(t, srv)
	pub.connect("pub")
	pub.reply(pub.send(map[string]any{"op": "publish", "channel": "room:calm", "data": "still here"}))
	if m := bystander.expect("message"); string(m.Data) != `"still here"` {
		t.Fatalf("bystander got %s", m.raw)
	}
}
