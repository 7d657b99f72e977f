package server

import "testing"

// What is not stored reaches only the connections there when it is sent:
// a broadcast, a message to a channel without history, and a direct
// message on a server that keeps no inbox. A device that comes back gets
// only what its inbox keeps.
func TestAtMostOnce(t *testing.T) {
	t.Parallel()
	cfg := historyConfig(t, 100)
	srv := startServer(t, cfg)
	api := newAPI(t, srv)
	c := dialWS(t, srv)
	c.connectDevice("bob", "phone")
	c.subscribe("room:plain")
	c.close()

	api.ok("POST", "/v1/broadcast", `{"data":"to whoever is there"}`)
	api.ok("POST", "/v1/publish", `{"channel":"room:plain","data":"to the subscribers there"}`)
	ids := sendN(t, api, "bob", 1, 1)
	c = dialTCP(t, srv)
	if st := c.connectDevice("bob", "phone"); st.Pending != 1 {
		t.Fatalf("inbox %+v, want only the direct message", st)
	}
	if f := c.expect("message"); mustIDRaw(t, f) != ids[0] {
		t.Fatalf("got %s, want the direct message %s", f.raw, ids[0])
	}
	c.subscribe("room:plain")
	c.send(map[string]any{"op": "ping"})
	if f := c.expect("reply"); f.Error != nil {
		t.Fatalf("ping: %s", f.raw)
	}

	cfg = testConfig()
	cfg.InboxTTL = 0
	srv = startServer(t, cfg)
	sendN(t, newAPI(t, srv), "bob", 1, 1)
	c = dialWS(t, srv)
	c.connect("bob")
	c.send(map[string]any{"op": "ping"})
	if f := c.expect("reply"); f.Error != nil {
		t.Fatalf("ping: %s", f.raw)
	}
}
