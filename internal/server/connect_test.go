package server

import (
	"net"
	"testing"
	"time"
)

// A failed connect is final, however it fails: the client gets the error
// reply, then disconnect 3502 (no reconnect), then the connection closes,
// and a connect sent right behind the failed one is never answered.
func TestFailedConnectEndsConnection(t *testing.T) {
	t.Parallel()
	insecure := startServer(t, testConfig())
	secure := startServer(t, secureConfig(t))
	good := `{"id":2,"op":"connect","user":"good"}`
	goodToken := `{"id":2,"op":"connect","token":"` + hmacToken(t, "good", nil, time.Hour) + `"}`
	cases := []struct {
		name        string
		srv         *Server
		frame, next string
		code        string
	}{
		{"invalid user id", insecure, `{"id":1,"op":"connect","user":"bad user"}`, good, "invalid_user"},
		{"empty user", insecure, `{"id":1,"op":"connect","user":""}`, good, "invalid_user"},
		{"no user", insecure, `{"id":1,"op":"connect"}`, good, "missing_field"},
		{"user wrong type", insecure, `{"id":1,"op":"connect","user":42}`, good, "invalid_field"},
		{"bad token", secure, `{"id":1,"op":"connect","token":"not.a.token"}`, goodToken, "unauthorized"},
		{"token wrong type", secure, `{"id":1,"op":"connect","token":7}`, goodToken, "invalid_field"},
		{"invalid user with a token", secure, `{"id":1,"op":"connect","token":"x","user":"a b"}`, goodToken, "invalid_user"},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					c := tr.dial(t, tc.srv)
					c.writeRaw(tc.frame)
					c.writeRaw(tc.next)

					var got []frame
					var raw []string
					deadline := time.Now().Add(5 * time.Second)
					for {
						f, err := c.readFrameErr(time.Until(deadline))
						if err != nil {
							if ne, ok := err.(net.Error); ok && ne.Timeout() {
								t.Fatalf("connection still open; frames so far: %q", raw)
							}
							break // closed
						}
						got = append(got, f)
						raw = append(raw, f.raw)
					}
					if len(got) != 2 {
						t.Fatalf("want the error reply and the disconnect, got %q", raw)
					}
					if r := got[0]; r.Type != "reply" || string(r.ID) != "1" || r.Error == nil || r.Error.Code != tc.code {
						t.Fatalf("want a %s reply to 1, got %s", tc.code, r.raw)
					}
					if d := got[1]; d.Type != "disconnect" || d.Code != 3502 || d.Reason != "unauthorized" || d.Reconnect {
						t.Fatalf("want disconnect 3502, got %s", d.raw)
					}
				})
			}
		})
	}
}
