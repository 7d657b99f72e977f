package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// The operator endpoints show what the dashboard shows: connections by
// transport, users, the busiest channels, a user's connections, and
// disconnects by reason.
func TestOperatorEndpoints(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t))
	api := apiClient{t, "http://" + srv.HTTPAddr().String(), testNewKey}
	ws := dialWS(t, srv)
	ws.connectToken(hmacToken(t, "alice", nil, time.Hour))
	ws.subscribe("room:big")
	ws.subscribe("room:small")
	tcp := dialTCP(t, srv)
	tcp.connectToken(hmacToken(t, "bob", nil, time.Hour))
	tcp.subscribe("room:big")
	sse := dialSSE(t, srv)
	sse.connectToken(hmacToken(t, "alice", nil, time.Hour))

	o := api.ok("GET", "/v1/overview", "")
	tr, _ := o["transports"].(map[string]any)
	if o["connections"] != 3.0 || o["users"] != 2.0 || o["subscriptions"] != 3.0 || tr["websocket"] != 1.0 || tr["tcp"] != 1.0 || tr["sse"] != 1.0 {
		t.Fatalf("overview %v", o)
	}
	if mem, _ := o["memory"].(map[string]any); mem["heap"] == 0.0 || o["goroutines"] == 0.0 {
		t.Fatalf("overview without memory or goroutines: %v", o)
	}

	ch := api.ok("GET", "/v1/channels?limit=1", "")
	busiest, _ := ch["busiest"].([]any)
	if len(busiest) != 1 || busiest[0].(map[string]any)["channel"] != "room:big" || busiest[0].(map[string]any)["connections"] != 2.0 {
		t.Fatalf("channels %v", ch)
	}
	us := api.ok("GET", "/v1/users", "")
	if list, _ := us["list"].([]any); us["users"] != 2.0 || len(list) != 2 || list[0].(map[string]any)["user"] != "alice" || list[0].(map[string]any)["connections"] != 2.0 {
		t.Fatalf("users %v", us)
	}
	u := api.ok("GET", "/v1/users/alice", "")
	conns, _ := u["connections"].([]any)
	if u["online"] != true || len(conns) != 2 {
		t.Fatalf("user %v", u)
	}
	kinds := map[any]any{}
	for _, c := range conns {
		c := c.(map[string]any)
		kinds[c["transport"]] = c["channels"]
	}
	if chans, _ := kinds["websocket"].([]any); len(chans) != 2 || kinds["sse"] == nil {
		t.Fatalf("alice's connections %v", conns)
	}
	if u := api.ok("GET", "/v1/users/nobody", ""); u["online"] != false {
		t.Fatalf("unknown user %v", u)
	}

	// Bad input gets the API's usual errors.
	for _, tc := range []struct{ method, path, code string }{
		{"GET", "/v1/channels?limit=-1", "invalid_field"},
		{"GET", "/v1/users?limit=lots", "invalid_field"},
		{"GET", "/v1/users?limit=1001", "invalid_field"},
		{"GET", "/v1/users/bad%20user", "invalid_user"},
		{"POST", "/v1/overview", "method_not_allowed"},
		{"DELETE", "/v1/users/alice", "method_not_allowed"},
	} {
		if _, out := api.do(tc.method, tc.path, ""); errCode(out) != tc.code {
			t.Errorf("%s %s: %v, want %s", tc.method, tc.path, out, tc.code)
		}
	}
	for _, key := range []string{"", "wrong-key-wrong-key-wrong"} {
		bad := apiClient{t, api.base, key}
		if status, out := bad.do("GET", "/v1/overview", ""); status != 401 || errCode(out) != "unauthorized" {
			t.Errorf("key %q: %d %v", key, status, out)
		}
	}

	// A kick and a client that leaves, counted by reason.
	api.ok("POST", "/v1/users/bob/disconnect", "")
	tcp.expectClosed(3 * time.Second)
	ws.close()
	checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		d, _ := api.ok("GET", "/v1/overview", "")["disconnects"].(map[string]any)
		if d["kicked"] != 1.0 || d["client_closed"] != 1.0 {
			return fmt.Errorf("disconnects %v", d)
		}
		return nil
	})
}

// The pages take GET (and HEAD) only; another method is a JSON 405.
func TestPagesMethods(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	url := "http://" + srv.HTTPAddr().String()
	for _, path := range []string{"/herald.js", "/demo/", "/admin/admin.js"} {
		for method, want := range map[string]int{"GET": 200, "HEAD": 200, "POST": 405, "DELETE": 405} {
			req, _ := http.NewRequest(method, url+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want || (want == 405 && resp.Header.Get("Allow") != "GET") {
				t.Errorf("%s %s: %s, allow %q", method, path, resp.Status, resp.Header.Get("Allow"))
			}
		}
	}
}

// /readyz answers 200 while the server serves and 503 once it begins to
// shut down (seen on a connection opened before); /healthz is liveness.
func TestReadyz(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	url := "http://" + srv.HTTPAddr().String()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	get := func(path string) int {
		resp, err := hc.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/readyz") != 200 || get("/healthz") != 200 {
		t.Fatal("not ready after start")
	}
	// A client that never closes its side holds the shutdown open for a
	// while, during which the kept-alive HTTP connection is still served.
	c := dialWS(t, srv)
	c.connect("holder")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if code := get("/readyz"); code != 503 {
			return fmt.Errorf("/readyz %d while shutting down", code)
		}
		return nil
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
