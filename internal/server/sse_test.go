package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/transport"
)

// errorCode reads a JSON error response's code.
func errorCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var body struct{ Error struct{ Code string } }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s: not a JSON error: %q", resp.Status, b)
	}
	return body.Error.Code
}

// POST /sse refuses what names no stream, and what is too large, with
// JSON errors; a frame over the size limit ends the stream as on TCP.
func TestSSEPostBadInput(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxFrameBytes = 1024
	srv := startServer(t, cfg)
	base := "http://" + srv.HTTPAddr().String() + "/sse"

	post := func(key, body string) *http.Response {
		req, _ := http.NewRequest("POST", base, strings.NewReader(body))
		if key != "" {
			req.Header.Set(transport.SessionHeader, key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, tc := range []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"no session", "", `{"op":"ping"}`, 400, "missing_session"},
		{"unknown session", "nope", `{"op":"ping"}`, 404, "unknown_session"},
	} {
		resp := post(tc.key, tc.body)
		if resp.StatusCode != tc.status || errorCode(t, resp) != tc.code {
			t.Errorf("%s: want %d %s, got %s", tc.name, tc.status, tc.code, resp.Status)
		}
	}

	for _, method := range []string{"PUT", "DELETE", "PATCH"} {
		req, _ := http.NewRequest(method, base, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, POST" || errorCode(t, resp) != "method_not_allowed" {
			t.Errorf("%s /sse: %s allow %q", method, resp.Status, resp.Header.Get("Allow"))
		}
	}

	c := dialSSE(t, srv)
	c.connect("poster")
	// A body over the bound is refused whole, and the stream lives on.
	resp := post(c.sse.key, strings.Repeat(`{"op":"ping"}`+"\n", 400))
	if resp.StatusCode != 413 || errorCode(t, resp) != "too_large" {
		t.Fatalf("large body: %s", resp.Status)
	}
	c.reply(c.send(map[string]any{"op": "ping"}))
	// Several frames in one POST are handled in order; malformed ones get
	// their error replies on the stream, as on the other transports.
	resp = post(c.sse.key, `{"id":7,"op":"subscribe","channel":"room:a"}`+"\r\n\nnot json\n"+`{"id":8,"op":"ping"}`)
	if resp.StatusCode != 204 {
		t.Fatalf("batch: %s", resp.Status)
	}
	if f := c.expect("reply"); string(f.ID) != "7" || f.Error != nil {
		t.Fatalf("want reply 7, got %s", f.raw)
	}
	c.wantError("invalid_frame")
	if f := c.expect("reply"); string(f.ID) != "8" {
		t.Fatalf("want reply 8, got %s", f.raw)
	}
	// A line over the frame limit ends the stream with 3501.
	resp = post(c.sse.key, `{"op":"publish","channel":"room:a","data":"`+strings.Repeat("x", 2000)+`"}`)
	if resp.StatusCode != 413 || errorCode(t, resp) != "frame_too_large" {
		t.Fatalf("oversize frame: %s", resp.Status)
	}
	if d := c.expectClosed(3 * time.Second); d == nil || d.Code != 3501 {
		t.Fatalf("want disconnect 3501, got %+v", d)
	}
	resp = post(c.sse.key, `{"op":"ping"}`)
	if resp.StatusCode != 404 || errorCode(t, resp) != "unknown_session" {
		t.Fatalf("post to an ended stream: %s", resp.Status)
	}
}

// A secure server lets only its own pages, or the allowed origins, open
// streams and post; an allowed page of another origin gets CORS headers.
func TestSSEOrigins(t *testing.T) {
	t.Parallel()
	cfg := secureConfig(t)
	cfg.AllowedOrigins = []string{"https://app.example"}
	srv := startServer(t, cfg)

	_, resp := openSSE(t, srv, http.Header{"Origin": {"https://evil.example"}})
	if resp.StatusCode != 403 || errorCode(t, resp) != "forbidden_origin" {
		t.Fatalf("foreign origin: %s", resp.Status)
	}
	c, resp := openSSE(t, srv, http.Header{"Origin": {"https://app.example"}})
	if c == nil {
		t.Fatalf("allowed origin: %s", resp.Status)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Fatalf("Access-Control-Allow-Origin %q", got)
	}
	req, _ := http.NewRequest("OPTIONS", "http://"+srv.HTTPAddr().String()+"/sse", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	pre, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pre.Body.Close()
	if pre.StatusCode != 204 || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), transport.SessionHeader) {
		t.Fatalf("preflight: %s %v", pre.Status, pre.Header)
	}
	// Same authentication as the other transports: no token, no connect.
	sc := &conn{t: t, sse: c}
	f := sc.replyTo(sc.send(map[string]any{"op": "connect", "user": "mallory"}))
	if f.Error == nil || f.Error.Code != "unauthorized" {
		t.Fatalf("declared user on a secure server: %s", f.raw)
	}
}

// The presence op lists a channel's subscribers to a client that may
// subscribe to it, and refuses one that may not.
func TestPresenceOp(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t))
	alice := dialSSE(t, srv)
	alice.connectToken(hmacToken(t, "alice", nil, time.Hour))
	alice.subscribe("room:p")
	bob := dialWS(t, srv)
	bob.connectToken(hmacToken(t, "bob", nil, time.Hour))
	bob.subscribe("room:p")

	f := bob.reply(bob.send(map[string]any{"op": "presence", "channel": "room:p"}))
	var res struct {
		Channel     string
		Users       int
		Connections int
		Members     []struct{ User string }
	}
	if err := json.Unmarshal(f.Result, &res); err != nil || res.Channel != "room:p" || res.Users != 2 || res.Connections != 2 || len(res.Members) != 2 {
		t.Fatalf("presence: %s", f.raw)
	}
	// vip:* needs a grant to subscribe, and so to see who is there.
	if f := bob.replyTo(bob.send(map[string]any{"op": "presence", "channel": "vip:x"})); f.Error == nil || f.Error.Code != "forbidden" {
		t.Fatalf("presence without a grant: %s", f.raw)
	}
	if f := bob.replyTo(bob.send(map[string]any{"op": "presence"})); f.Error == nil || f.Error.Code != "missing_field" {
		t.Fatalf("presence without a channel: %s", f.raw)
	}
}

// Streams are new connections: the per-address connect rate bounds them
// as it bounds WebSocket upgrades.
func TestSSEConnectRate(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.ConnectsPerIP, cfg.ConnectsBurst = 1, 2
	srv := startServer(t, cfg)
	for range 2 {
		if c, resp := openSSE(t, srv, nil); c == nil {
			t.Fatalf("within the burst: %s", resp.Status)
		}
	}
	_, resp := openSSE(t, srv, nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || errorCode(t, resp) != "connect_rate_limited" {
		t.Fatalf("past the burst: %s", resp.Status)
	}
}
