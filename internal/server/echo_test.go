package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// connectID connects as user and returns the connection's client id.
func (c *conn) connectID(user string) string {
	c.t.Helper()
	f := c.reply(c.send(map[string]any{"op": "connect", "user": user}))
	var r struct{ Client string }
	if err := json.Unmarshal(f.Result, &r); err != nil || r.Client == "" {
		c.t.Fatalf("connect reply without a client id: %s", f.raw)
	}
	return r.Client
}

// expectNs reads the next messages and checks their data's n, in order.
func (c *conn) expectNs(name string, want ...int) {
	c.t.Helper()
	var got []int
	for range want {
		var d struct{ N int }
		f := c.expect("message")
		if err := json.Unmarshal(f.Data, &d); err != nil {
			c.t.Fatalf("%s: %s", name, f.raw)
		}
		got = append(got, d.N)
	}
	if !slices.Equal(got, want) {
		c.t.Fatalf("%s received %v, want %v", name, got, want)
	}
}

// A client's publish with echo false skips that connection alone; the
// server API leaves out the connection or the user it names, from a
// channel, a direct message and a broadcast. Every client then receives
// an unexcluded message last, so what it did not receive would have come
// before it.
func TestExcludeSender(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	api := newAPI(t, srv)
	alice1, alice2, bob := dialWS(t, srv), dialTCP(t, srv), dialWS(t, srv)
	alice1.connectID("alice")
	id2 := alice2.connectID("alice")
	bob.connectID("bob")
	for _, c := range []*conn{alice1, alice2, bob} {
		c.subscribe("room:1")
	}
	publish := func(c *conn, n int, echo any) {
		t.Helper()
		req := map[string]any{"op": "publish", "channel": "room:1", "data": map[string]int{"n": n}}
		if echo != nil {
			req["echo"] = echo
		}
		c.reply(c.send(req))
	}
	publish(alice1, 1, false)
	publish(bob, 2, true)
	api.ok("POST", "/v1/publish", fmt.Sprintf(`{"channel":"room:1","data":{"n":3},"exclude_client":%q}`, id2))
	api.ok("POST", "/v1/publish", `{"channel":"room:1","data":{"n":4},"exclude_user":"alice"}`)
	api.ok("POST", "/v1/broadcast", `{"data":{"n":5},"exclude_user":"bob"}`)
	api.ok("POST", "/v1/send", fmt.Sprintf(`{"to":"alice","data":{"n":6},"exclude_client":%q}`, id2))
	alice1.reply(alice1.send(map[string]any{"op": "broadcast", "data": map[string]int{"n": 7}, "echo": false}))
	publish(bob, 8, nil)

	alice1.expectNs("alice's first connection", 2, 3, 5, 6, 8)
	alice2.expectNs("alice's second connection", 1, 2, 5, 7, 8)
	bob.expectNs("bob", 1, 2, 3, 4, 7, 8)

	// echo must be true or false.
	alice1.send(map[string]any{"op": "publish", "channel": "room:1", "data": 1, "echo": "no"})
	alice1.wantError("invalid_field")
	// A client id that names no open connection leaves out nothing.
	api.ok("POST", "/v1/publish", `{"channel":"room:1","data":{"n":9},"exclude_client":"zzzz"}`)
	bob.expectNs("bob", 9)
}
