package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type apiClient struct {
	t    *testing.T
	base string
	key  string
}

func (a apiClient) do(method, path, body string) (int, map[string]any) {
	a.t.Helper()
	status, _, out := a.call(method, path, body, nil)
	return status, out
}

func (a apiClient) ok(method, path, body string) map[string]any {
	a.t.Helper()
	status, out := a.do(method, path, body)
	if status != 200 {
		a.t.Fatalf("%s %s: %d %v", method, path, status, out)
	}
	return out
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// A backend pushes to a channel, a user, a batch of users and everyone;
// WebSocket and TCP clients authenticated with tokens receive it all.
func TestAPIPush(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t))
	api := apiClient{t, "http://" + srv.HTTPAddr().String(), testNewKey}
	alice := dialWS(t, srv)
	alice.connectToken(hmacToken(t, "alice", nil, time.Hour))
	bob := dialTCP(t, srv)
	bob.connectToken(hmacToken(t, "bob", nil, time.Hour))
	alice.subscribe("news:today")
	bob.subscribe("news:today")

	out := api.ok("POST", "/v1/publish", `{"channel":"news:today","data":{"headline":"Herald ships"}}`)
	for _, c := range []*conn{alice, bob} {
		m := c.expect("message")
		if m.Kind != "channel" || m.From != "" || fmt.Sprintf("%q", out["id"]) != string(m.ID) {
			t.Fatalf("publish: %s (reply %v)", m.raw, out)
		}
	}

	out = api.ok("POST", "/v1/send", `{"to":"alice","data":"order shipped"}`)
	if m := alice.expect("message"); m.To != "alice" || string(m.Data) != `"order shipped"` || fmt.Sprintf("%q", out["id"]) != string(m.ID) {
		t.Fatalf("send: %s", m.raw)
	}

	users := []string{"alice", "bob"}
	for i := range 998 {
		users = append(users, fmt.Sprintf("offline%d", i))
	}
	ub, _ := json.Marshal(users)
	out = api.ok("POST", "/v1/send", `{"users":`+string(ub)+`,"data":{"n":1}}`)
	ids, _ := out["ids"].([]any)
	if len(ids) != 1000 || ids[0] == ids[1] {
		t.Fatalf("batch ids: %d", len(ids))
	}
	for i, c := range []*conn{alice, bob} {
		if m := c.expect("message"); fmt.Sprintf("%q", ids[i]) != string(m.ID) || m.To != users[i] {
			t.Fatalf("batch to %s: %s", users[i], m.raw)
		}
	}

	api.ok("POST", "/v1/broadcast", `{"data":"all hands"}`)
	for _, c := range []*conn{alice, bob} {
		if m := c.expect("message"); m.Kind != "broadcast" {
			t.Fatalf("broadcast: %s", m.raw)
		}
	}
}

func TestAPIPresenceAndControl(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t))
	api := apiClient{t, "http://" + srv.HTTPAddr().String(), testOldKey}
	tok, _ := mintWithInfo(t, "alice", `{"name":"Alice"}`)
	a1 := dialWS(t, srv)
	a1.connectToken(tok)
	a2 := dialTCP(t, srv)
	a2.connectToken(tok)
	a1.subscribe("room:9")
	a2.subscribe("room:9")
	bob := dialWS(t, srv)
	bob.connectToken(hmacToken(t, "bob", nil, time.Hour))
	bob.subscribe("room:9")

	out := api.ok("GET", "/v1/presence/users/alice", "")
	if out["online"] != true || out["connections"] != 2.0 || fmt.Sprint(out["info"]) != "map[name:Alice]" {
		t.Fatalf("user presence: %v", out)
	}
	if out := api.ok("GET", "/v1/presence/users/nobody", ""); out["online"] != false || out["connections"] != 0.0 {
		t.Fatalf("offline presence: %v", out)
	}
	out = api.ok("GET", "/v1/presence/channels/room:9", "")
	if out["users"] != 2.0 || out["connections"] != 3.0 {
		t.Fatalf("channel presence: %v", out)
	}
	if out := api.ok("GET", "/v1/presence/channels/news%2Fsport", ""); out["channel"] != "news/sport" {
		t.Fatalf("escaped slash in a channel: %v", out)
	}
	// A channel nobody is on: zeros and an empty list, not null.
	out = api.ok("GET", "/v1/presence/channels/room:empty", "")
	if members, ok := out["members"].([]any); !ok || len(members) != 0 || out["users"] != 0.0 || out["connections"] != 0.0 {
		t.Fatalf("empty channel presence: %v", out)
	}
	if _, ok := api.ok("GET", "/v1/presence/users/nobody", "")["info"]; ok {
		t.Fatal("offline presence has an info field")
	}
	if out := api.ok("GET", "/v1/stats", ""); out["connections"] != 3.0 || out["users"] != 2.0 || out["channels"] != 1.0 {
		t.Fatalf("stats: %v", out)
	}

	out = api.ok("POST", "/v1/users/alice/unsubscribe", `{"channel":"room:9"}`)
	if out["unsubscribed"] != 2.0 {
		t.Fatalf("unsubscribe: %v", out)
	}
	for _, c := range []*conn{a1, a2} {
		if f := c.expect("unsubscribed"); !strings.Contains(f.raw, `"channel":"room:9"`) {
			t.Fatalf("unsubscribed push: %s", f.raw)
		}
	}
	api.ok("POST", "/v1/publish", `{"channel":"room:9","data":1}`)
	bob.expect("message")

	if out := api.ok("POST", "/v1/users/nobody/disconnect", ""); out["disconnected"] != 0.0 {
		t.Fatalf("disconnect without a body: %v", out)
	}
	out = api.ok("POST", "/v1/users/alice/disconnect", `{"reason":"account suspended"}`)
	if out["disconnected"] != 2.0 {
		t.Fatalf("disconnect: %v", out)
	}
	for _, c := range []*conn{a1, a2} {
		d := c.expectClosed(3 * time.Second)
		if d == nil || d.Code != 3505 || d.Reconnect || !strings.Contains(d.raw, "account suspended") {
			t.Fatalf("kicked: %+v", d)
		}
	}
	checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		if n := len(srv.Hub().UserConnections("alice")); n != 0 {
			return fmt.Errorf("alice still has %d connections", n)
		}
		return nil
	})
}

func TestAPIBadRequests(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t))
	api := apiClient{t, "http://" + srv.HTTPAddr().String(), testNewKey}
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/publish", ``, 400, "invalid_body"},
		{"POST", "/v1/publish", `{"channel":"room:1","data":1`, 400, "invalid_body"},
		{"POST", "/v1/publish", `{"channel":"room:1","data":1}{}`, 400, "invalid_body"},
		{"POST", "/v1/publish", `{"channel":"room:1"}`, 400, "missing_field"},
		{"POST", "/v1/publish", `{"channel":"room:1","data":null}`, 400, "missing_field"},
		{"POST", "/v1/publish", `{"data":1}`, 400, "missing_field"},
		{"POST", "/v1/publish", `{"channel":null,"data":1}`, 400, "missing_field"},
		{"POST", "/v1/publish", `{"channel":"","data":1}`, 400, "invalid_channel"},
		{"POST", "/v1/publish", `{"channel":"bad channel","data":1}`, 400, "invalid_channel"},
		{"POST", "/v1/publish", `{"channel":7,"data":1}`, 400, "invalid_field"},
		{"POST", "/v1/publish", `{"channel":"room:1","data":1,"extra":true}`, 400, "invalid_body"},
		{"POST", "/v1/send", `{"data":1}`, 400, "missing_field"},
		{"POST", "/v1/send", `{"to":null,"data":1}`, 400, "missing_field"},
		{"POST", "/v1/send", `{"to":"","data":1}`, 400, "invalid_user"},
		{"POST", "/v1/send", `{"users":["alice",""],"data":1}`, 400, "invalid_user"},
		{"POST", "/v1/send", `{"to":"","users":["b"],"data":1}`, 400, "invalid_field"},
		{"POST", "/v1/send", `{"to":"a","users":["b"],"data":1}`, 400, "invalid_field"},
		{"POST", "/v1/send", `{"to":"not valid","data":1}`, 400, "invalid_user"},
		{"POST", "/v1/send", `{"users":["ok","no way"],"data":1}`, 400, "invalid_user"},
		{"GET", "/v1/presence/users/a%20b", ``, 400, "invalid_user"},
		{"GET", "/v1/nothing", ``, 404, "not_found"},
		{"POST", "/v1/users/alice/unsubscribe", `{}`, 400, "missing_field"},
		{"POST", "/v1/users/alice/unsubscribe", `{"channel":""}`, 400, "invalid_channel"},
		{"POST", "/v1/users/alice/unsubscribe", `{"channel":"a b"}`, 400, "invalid_channel"},
		{"POST", "/v1/send", `{"users":[],"data":1}`, 400, "invalid_field"},
		{"POST", "/v1/send", `{"users":null,"data":1}`, 400, "missing_field"},
		{"GET", "/v1/publish", ``, 405, "method_not_allowed"},
		{"POST", "/v1/stats", ``, 405, "method_not_allowed"},
		{"GET", "/v1/users/alice/disconnect", ``, 405, "method_not_allowed"},
		{"POST", "/v1/broadcast", `{"data":"` + strings.Repeat("x", 70000) + `"}`, 400, "too_large"},
	}
	for _, tc := range cases {
		status, out := api.do(tc.method, tc.path, tc.body)
		if status != tc.status || errCode(out) != tc.code {
			t.Errorf("%s %s %q: got %d %v, want %d %s", tc.method, tc.path, tc.body, status, out, tc.status, tc.code)
		}
	}
	users := make([]string, 10001)
	for i := range users {
		users[i] = "u"
	}
	ub, _ := json.Marshal(users)
	if status, out := api.do("POST", "/v1/send", `{"users":`+string(ub)+`,"data":1}`); status != 400 || errCode(out) != "too_large" {
		t.Errorf("oversized batch: %d %v", status, out)
	}
	if out := api.ok("GET", "/v1/openapi.json", ""); out["openapi"] != "3.0.3" {
		t.Errorf("openapi: %v", out["openapi"])
	}
}

func mintWithInfo(t *testing.T, user, info string) (string, error) {
	t.Helper()
	return mint(t, user, nil, json.RawMessage(info))
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	srv := startServer(t, historyConfig(t, 10))
	c := dialWS(t, srv)
	c.connect("m")
	c.subscribe("room:m")
	c.reply(c.send(map[string]any{"op": "publish", "channel": "room:m", "data": 1}))
	// A stored message, recovered once.
	c.reply(c.send(map[string]any{"op": "publish", "channel": "chat:m", "data": 2}))
	d := dialWS(t, srv)
	d.connect("n")
	epoch := d.subscribeAt("chat:m", 0, "").Epoch
	d.close()
	e := dialWS(t, srv)
	e.connect("n")
	e.subscribeAt("chat:m", 0, epoch)
	e.expectMessages(1, 1)
	resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"herald_connections 2", "herald_messages_total 2", "herald_deliveries_total 2", "herald_channels 2", "go_goroutines",
		"herald_history_appends_total 1", "herald_recoveries_total 1", "herald_backlog_messages_total 1", "herald_store_failures_total 0",
		`herald_connections_by_transport{transport="websocket"} 2`, `herald_connections_by_transport{transport="sse"} 0`,
		`herald_disconnects_total{reason="slow_consumer"} 0`, "herald_subscriptions 2", "herald_busiest_channel_subscribers 1",
		"herald_delivery_latency_seconds_count 2", "go_memstats_heap_alloc_bytes"} {
		if !strings.Contains(string(b), want+"\n") && !strings.Contains(string(b), want+" ") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// Data that is not valid UTF-8 is refused: relayed to a browser it would
// fail the WebSocket of every subscriber. The subscriber sees nothing of it
// and keeps receiving.
func TestAPIRefusesInvalidUTF8(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t))
	api := apiClient{t, "http://" + srv.HTTPAddr().String(), testNewKey}
	alice := dialWS(t, srv)
	alice.connectToken(hmacToken(t, "alice", nil, time.Hour))
	alice.subscribe("room:utf")

	bad := "\"\xff\xfe\""
	for _, tc := range []struct{ path, body string }{
		{"/v1/publish", `{"channel":"room:utf","data":` + bad + `}`},
		{"/v1/publish", `{"channel":"room:utf","data":{"text":"ok","note":` + bad + `}}`},
		{"/v1/send", `{"to":"alice","data":` + bad + `}`},
		{"/v1/send", `{"users":["alice"],"data":[` + bad + `]}`},
		{"/v1/broadcast", `{"data":` + bad + `}`},
	} {
		status, out := api.do("POST", tc.path, tc.body)
		if status != 400 || errCode(out) != "invalid_field" {
			t.Errorf("POST %s %q: got %d %v, want 400 invalid_field", tc.path, tc.body, status, out)
		}
	}
	// Escaped, the same characters are valid and pass.
	api.ok("POST", "/v1/publish", `{"channel":"room:utf","data":"\u00ff\u00fe"}`)
	if m := alice.expect("message"); string(m.Data) != `"\u00ff\u00fe"` {
		t.Fatalf("subscriber got %s", m.raw)
	}
}

// Outside /v1 too, every error is JSON in the API's shape: 404 for an
// unknown path, 405 with Allow for a known one with another method. None
// needs a key.
func TestErrorsOutsideAPIAreJSON(t *testing.T) {
	t.Parallel()
	cfg := secureConfig(t)
	cfg.Pprof = true
	srv := startServer(t, cfg)
	base := "http://" + srv.HTTPAddr().String()
	cases := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/", 404, "not_found", ""},
		{"GET", "/nope", 404, "not_found", ""},
		{"POST", "/v2/publish", 404, "not_found", ""},
		{"GET", "/healthz/extra", 404, "not_found", ""},
		{"POST", "/healthz", 405, "method_not_allowed", "GET"},
		{"DELETE", "/healthz", 405, "method_not_allowed", "GET"},
		{"POST", "/metrics", 405, "method_not_allowed", "GET"},
		{"POST", "/ws", 405, "method_not_allowed", "GET"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Errorf("%s %s: body is not JSON: %q", tc.method, tc.path, b)
			continue
		}
		if resp.StatusCode != tc.status || out.Error.Code != tc.code || out.Error.Message == "" {
			t.Errorf("%s %s: got %d %s, want %d %s", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.code)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: content type %q", tc.method, tc.path, ct)
		}
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
	// The endpoints themselves are unchanged.
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, resp)
	}
	api := apiClient{t, base, testNewKey}
	if status, out := api.do("GET", "/v1/nothing", ""); status != 404 || errCode(out) != "not_found" {
		t.Fatalf("404 under /v1: %d %v", status, out)
	}
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testNewKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics with the key: %v %v", err, resp)
	}
	req, _ = http.NewRequest("GET", base+"/debug/pprof/", nil)
	req.Header.Set("Authorization", "Bearer "+testNewKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("pprof with the key: %v %v", err, resp)
	}
}
