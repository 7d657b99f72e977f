package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// offsetsOf returns the offset (or seq) of each message of a read.
func offsetsOf(list []any, field string) string {
	var got []string
	for _, m := range list {
		got = append(got, fmt.Sprint(m.(map[string]any)[field]))
	}
	return fmt.Sprint(got)
}

// The receipt of a direct message tells who it was for and, per device,
// whether it was delivered and acknowledged, and when.
func TestMessageReceipt(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	api := newAPI(t, srv)

	laptop := dialWS(t, srv)
	laptop.connectDevice("bob", "laptop")
	laptop.close()
	// The laptop is gone before the message is sent.
	api.waitOffline("bob")
	before := time.Now().UnixMilli()
	id := api.ok("POST", "/v1/send", `{"to":"bob","data":"hi"}`)["id"].(string)
	r := api.ok("GET", "/v1/messages/"+id, "")
	if r["id"] != id || r["user"] != "bob" || r["seq"] != 1.0 || r["accepted"].(float64) < float64(before) {
		t.Fatalf("receipt: %v", r)
	}
	if got := fmt.Sprint(r["devices"]); got != "[map[device:laptop state:pending]]" {
		t.Fatalf("before any device got it: %s", got)
	}

	phone := dialWS(t, srv)
	phone.connectDevice("bob", "phone")
	phone.expect("message")
	device := func(name string) map[string]any {
		for _, d := range api.ok("GET", "/v1/messages/"+id, "")["devices"].([]any) {
			if d := d.(map[string]any); d["device"] == name {
				return d
			}
		}
		return nil
	}
	// Delivered marks are written off the delivery path.
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d := device("phone"); d == nil || d["state"] != "delivered" || d["acked"] != nil {
			return fmt.Errorf("phone: %v", d)
		}
		return nil
	})
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 1}))
	d := device("phone")
	if d["state"] != "acked" || d["acked"].(float64) < d["delivered"].(float64) || d["delivered"].(float64) < float64(before) {
		t.Fatalf("after the ack: %v", d)
	}
	if d := device("laptop"); d["state"] != "pending" {
		t.Fatalf("laptop: %v", d)
	}

	pub := api.ok("POST", "/v1/publish", `{"channel":"room","data":1}`)["id"].(string)
	api.wantCodes(map[string]string{
		"/v1/messages/" + pub:                     "not_found",
		"/v1/messages/d4aeq1g3f1hbmdd0ec10":       "not_found",
		"/v1/messages/a.b":                        "invalid_id",
		"/v1/messages/" + strings.Repeat("a", 65): "invalid_id",
	})

	cfg := testConfig()
	cfg.InboxTTL = 0
	newAPI(t, startServer(t, cfg)).wantCodes(map[string]string{
		"/v1/messages/" + id:  "no_inbox",
		"/v1/users/bob/inbox": "no_inbox",
	})
}

// A device that will never get a message, because the inbox dropped it
// before the device had it, is reported missed, not pending: one known
// before the message and away while the cap dropped it, and one first seen
// after the message was dropped.
func TestMessageReceiptMissed(t *testing.T) {
	t.Parallel()
	srv, api := startAwayDevice(t, "laptop")
	// Three messages over a cap of two: the first goes when the inbox is
	// next held to its cap, as the laptop's next connection would.
	ids := sendN(t, api, "bob", 1, 3)
	states := func(id string) string {
		var got []string
		for _, d := range api.ok("GET", "/v1/messages/"+id, "")["devices"].([]any) {
			d := d.(map[string]any)
			got = append(got, fmt.Sprint(d["device"], ":", d["state"]))
		}
		return fmt.Sprint(got)
	}
	if got := states(ids[0]); got != "[laptop:missed]" {
		t.Fatalf("the message over the cap: %s", got)
	}
	if got := states(ids[2]); got != "[laptop:pending]" {
		t.Fatalf("a message kept: %s", got)
	}

	tablet := dialWS(t, srv)
	if in := tablet.connectDevice("bob", "tablet"); in.Pending != 2 {
		t.Fatalf("tablet's inbox: %+v", in)
	}
	tablet.expectDirect(2, 2)
	if got := states(ids[0]); got != "[laptop:missed tablet:missed]" {
		t.Fatalf("a message dropped before the tablet was first seen: %s", got)
	}
}

// A channel's history reads newest or oldest first, by pages.
func TestHistoryRead(t *testing.T) {
	t.Parallel()
	srv := startServer(t, historyConfig(t, 100))
	api := newAPI(t, srv)
	var ids []any
	for i := 1; i <= 5; i++ {
		ids = append(ids, api.ok("POST", "/v1/publish", fmt.Sprintf(`{"channel":"chat:room","data":{"n":%d}}`, i))["id"])
	}
	c := dialWS(t, srv)
	c.connect("alice")
	epoch := c.subscribeAt("chat:room", 0, "").Epoch

	for _, tc := range []struct {
		query, offsets string
		next           any
	}{
		{"", "[5 4 3 2 1]", nil},
		{"?limit=2", "[5 4]", 3.0},
		{"?limit=2&from=3", "[3 2]", 1.0},
		{"?limit=2&from=1", "[1]", nil},
		{"?order=oldest&limit=2", "[1 2]", 3.0},
		{"?order=oldest&limit=2&from=4", "[4 5]", nil},
		{"?order=newest&from=9", "[5 4 3 2 1]", nil},
	} {
		out := api.ok("GET", "/v1/channels/chat:room/history"+tc.query, "")
		msgs, _ := out["messages"].([]any)
		if got := offsetsOf(msgs, "offset"); got != tc.offsets || out["next"] != tc.next || out["offset"] != 5.0 || out["epoch"] != epoch {
			t.Errorf("%q: offsets %s next %v (want %s next %v): %v", tc.query, got, out["next"], tc.offsets, tc.next, out)
		}
	}
	out := api.ok("GET", "/v1/channels/chat:room/history?limit=1", "")
	m := out["messages"].([]any)[0].(map[string]any)
	if m["id"] != ids[4] || m["kind"] != "channel" || m["channel"] != "chat:room" || m["epoch"] != epoch || fmt.Sprint(m["data"]) != "map[n:5]" || m["ts"] == nil || m["type"] != nil {
		t.Fatalf("message %v", m)
	}

	if out := api.ok("GET", "/v1/channels/chat:quiet/history", ""); fmt.Sprint(out["messages"]) != "[]" || out["offset"] != 0.0 || out["epoch"] == "" {
		t.Fatalf("a channel with no messages yet: %v", out)
	}
	api.wantCodes(map[string]string{
		"/v1/channels/room:1/history":                    "no_history",
		"/v1/channels/chat:room/history?limit=0":         "invalid_field",
		"/v1/channels/chat:room/history?limit=1001":      "invalid_field",
		"/v1/channels/chat:room/history?limit=x":         "invalid_field",
		"/v1/channels/chat:room/history?order=up":        "invalid_field",
		"/v1/channels/chat:room/history?from=-1":         "invalid_field",
		"/v1/channels/chat:room/history?since=1":         "invalid_field",
		"/v1/channels/chat:room/history?limit=1&limit=2": "invalid_field",
		"/v1/channels/a%20b/history":                     "invalid_channel",
	})
}

// A user's inbox lists its devices with their positions, and what one
// device has not acknowledged.
func TestInboxRead(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	api := newAPI(t, srv)
	if out := api.ok("GET", "/v1/users/bob/inbox", ""); out["head"] != 0.0 || fmt.Sprint(out["devices"]) != "[]" {
		t.Fatalf("an empty inbox: %v", out)
	}
	ids := sendN(t, api, "bob", 1, 3)
	phone := dialWS(t, srv)
	phone.connectDevice("bob", "phone")
	phone.expectDirect(1, 3)
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 2}))
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		out := api.ok("GET", "/v1/users/bob/inbox", "")
		ds, _ := out["devices"].([]any)
		if out["head"] != 3.0 || len(ds) != 1 {
			return fmt.Errorf("inbox %v", out)
		}
		if d := ds[0].(map[string]any); d["device"] != "phone" || d["acked"] != 2.0 || d["delivered"] != 3.0 || d["seen"].(float64) <= 0 {
			return fmt.Errorf("phone %v", d)
		}
		return nil
	})

	out := api.ok("GET", "/v1/users/bob/inbox?device=phone", "")
	d := out["device"].(map[string]any)
	msgs := d["messages"].([]any)
	if d["known"] != true || d["acked"] != 2.0 || d["missed"] != 0.0 || offsetsOf(msgs, "seq") != "[3]" || msgs[0].(map[string]any)["id"] != ids[2] {
		t.Fatalf("phone's pending: %v", out)
	}
	// A device never seen would start at the oldest message kept: the
	// ones every known device acknowledged are gone.
	sendN(t, api, "bob", 4, 2)
	out = api.ok("GET", "/v1/users/bob/inbox?device=tablet&limit=2", "")
	d = out["device"].(map[string]any)
	if d["known"] != false || d["acked"] != 2.0 || offsetsOf(d["messages"].([]any), "seq") != "[3 4]" {
		t.Fatalf("a device never seen: %v", out)
	}
	// Reading does not make the device known.
	if ds := api.ok("GET", "/v1/users/bob/inbox", "")["devices"].([]any); len(ds) != 1 {
		t.Fatalf("devices after a read: %v", ds)
	}
	api.wantCodes(map[string]string{
		"/v1/users/bob/inbox?limit=5":              "invalid_field",
		"/v1/users/bob/inbox?device=phone&limit=0": "invalid_field",
		"/v1/users/bob/inbox?device=bad%20device":  "invalid_field",
		"/v1/users/bob/inbox?device=":              "invalid_field",
		"/v1/users/b%20b/inbox":                    "invalid_user",
		"/v1/users/bob/inbox?device=phone&other=1": "invalid_field",
	})
}

// Over the inbox's cap, a device's read tells what its next connection
// gets: the cap is enforced before the read, as at connect.
func TestInboxReadOverCap(t *testing.T) {
	t.Parallel()
	srv, api := startAwayDevice(t, "phone")
	sendN(t, api, "bob", 1, 5)
	d := api.ok("GET", "/v1/users/bob/inbox?device=phone", "")["device"].(map[string]any)
	if d["missed"] != 3.0 || offsetsOf(d["messages"].([]any), "seq") != "[4 5]" {
		t.Fatalf("phone's inbox over the cap: %v", d)
	}
	phone := dialWS(t, srv)
	if in := phone.connectDevice("bob", "phone"); in.Pending != 2 || in.Missed != 3 {
		t.Fatalf("the connection after the read: %+v", in)
	}
}

// startAwayDevice starts a server whose inboxes keep 2 messages, where
// bob's device is known and offline.
func startAwayDevice(t *testing.T, device string) (*Server, apiClient) {
	t.Helper()
	cfg := testConfig()
	cfg.InboxMaxMessages = 2
	srv := startServer(t, cfg)
	api := newAPI(t, srv)
	c := dialWS(t, srv)
	c.connectDevice("bob", device)
	c.close()
	api.waitOffline("bob")
	return srv, api
}

// waitOffline waits until the server no longer counts user online.
func (a apiClient) waitOffline(user string) {
	a.t.Helper()
	checkFor(a.t, 5*time.Second, 5*time.Millisecond, func() error {
		if out := a.ok("GET", "/v1/presence/users/"+user, ""); out["online"] != false {
			return fmt.Errorf("%s still online: %v", user, out)
		}
		return nil
	})
}

// wantCodes checks the error code of a GET of each path.
func (a apiClient) wantCodes(codes map[string]string) {
	a.t.Helper()
	for path, want := range codes {
		if _, out := a.do("GET", path, ""); errCode(out) != want {
			a.t.Errorf("%s: %v, want %s", path, out, want)
		}
	}
}
