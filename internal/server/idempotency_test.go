package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// call is an API request with headers of its own; it answers the
// response's headers too.
func (a apiClient) call(method, path, body string, header map[string]string) (int, http.Header, map[string]any) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		a.t.Fatalf("%s %s: response is not a JSON object: %q", method, path, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		a.t.Fatalf("content type %q", ct)
	}
	return resp.StatusCode, resp.Header, out
}

// withKey is an idempotent push that must succeed; it returns the answer
// and whether it was a replay.
func (a apiClient) withKey(path, key, body string) (map[string]any, bool) {
	a.t.Helper()
	status, h, out := a.call("POST", path, body, map[string]string{"Idempotency-Key": key})
	if status != 200 {
		a.t.Fatalf("%s with key %q: %d %v", path, key, status, out)
	}
	return out, h.Get("Idempotent-Replayed") == "true"
}

// A retry with an Idempotency-Key answers the first call's ids and stores
// nothing more, also after a restart; another body with the key is
// refused.
func TestIdempotentPushes(t *testing.T) {
	t.Parallel()
	cfg := historyConfig(t, 100)
	srv := startServer(t, cfg)
	api := newAPI(t, srv)

	send := `{"to":"bob","data":{"order":42}}`
	first, replay := api.withKey("/v1/send", "order-42", send)
	if replay {
		t.Fatal("the first call is marked as a replay")
	}
	again, replay := api.withKey("/v1/send", "order-42", send)
	if !replay || again["id"] != first["id"] {
		t.Fatalf("retry: %v (replay %v), first %v", again, replay, first)
	}
	batch := `{"users":["carol","dan"],"data":"hi"}`
	ids, _ := api.withKey("/v1/send", "batch-1", batch)
	pub := `{"channel":"chat:lobby","data":"hello"}`
	p1, _ := api.withKey("/v1/publish", "pub-1", pub)
	bc1, _ := api.withKey("/v1/broadcast", "bc-1", `{"data":"all"}`)

	status, _, out := api.call("POST", "/v1/send", `{"to":"bob","data":{"order":43}}`, map[string]string{"Idempotency-Key": "order-42"})
	if status != http.StatusUnprocessableEntity || errCode(out) != "idempotency_key_reused" {
		t.Fatalf("another body: %d %v", status, out)
	}
	status, _, out = api.call("POST", "/v1/send", send, map[string]string{"Idempotency-Key": strings.Repeat("x", 300)})
	if status != http.StatusBadRequest || errCode(out) != "invalid_idempotency_key" {
		t.Fatalf("long key: %d %v", status, out)
	}

	// The keys are on disk.
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, cfg)
	api = newAPI(t, srv)
	for _, c := range []struct {
		path, key, body string
		want            map[string]any
	}{
		{"/v1/send", "order-42", send, first},
		{"/v1/send", "batch-1", batch, ids},
		{"/v1/publish", "pub-1", pub, p1},
		{"/v1/broadcast", "bc-1", `{"data":"all"}`, bc1},
	} {
		got, replay := api.withKey(c.path, c.key, c.body)
		if !replay || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Fatalf("%s after restart: %v (replay %v), want %v", c.key, got, replay, c.want)
		}
	}

	// Each message was stored once.
	phone := dialWS(t, srv)
	if st := phone.connectDevice("bob", "phone"); st.Pending != 1 {
		t.Fatalf("bob's inbox: %+v, want 1 message", st)
	}
	if m := phone.expect("message"); mustIDRaw(t, m) != first["id"] {
		t.Fatalf("bob got %s, want id %v", m.raw, first["id"])
	}
	for i, u := range []string{"carol", "dan"} {
		c := dialWS(t, srv)
		if st := c.connectDevice(u, "phone"); st.Pending != 1 {
			t.Fatalf("%s's inbox: %+v", u, st)
		}
		if m := c.expect("message"); mustIDRaw(t, m) != ids["ids"].([]any)[i] {
			t.Fatalf("%s got %s, want id %v", u, m.raw, ids["ids"].([]any)[i])
		}
	}
	c := dialWS(t, srv)
	c.connect("eve")
	if p := c.subscribeAt("chat:lobby", 0, ""); p.Offset != 1 {
		t.Fatalf("the channel holds %d messages, want 1", p.Offset)
	}
}

// A batch send keeps the request's order in its ids, each user getting
// the message with the id at its place.
func TestBatchSendOrder(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	api := newAPI(t, srv)
	users := make([]string, 500)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", (i*7)%500)
	}
	ub, _ := json.Marshal(users)
	out := api.ok("POST", "/v1/send", `{"users":`+string(ub)+`,"data":1}`)
	ids, _ := out["ids"].([]any)
	if len(ids) != len(users) {
		t.Fatalf("%d ids for %d users", len(ids), len(users))
	}
	for _, i := range []int{0, 1, 250, 499} {
		c := dialWS(t, srv)
		if st := c.connectDevice(users[i], "d"); st.Pending != 1 {
			t.Fatalf("%s: %+v", users[i], st)
		}
		if m := c.expect("message"); mustIDRaw(t, m) != ids[i] {
			t.Fatalf("%s (place %d) got %s, want id %v", users[i], i, m.raw, ids[i])
		}
	}
}

// A batch of many chunks that names two online users many times, sent
// twice at once: each gets every message once, in sequence order, with no
// gap, and the messages of each call in the order it names them.
func TestBatchSendChunks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	api := newAPI(t, srv)
	online := map[string]*conn{}
	for _, u := range []string{"a", "b"} {
		online[u] = dialWS(t, srv)
		online[u].connectDevice(u, "d")
	}
	users := make([]string, 350)
	for i := range users {
		switch {
		case i%25 == 0:
			users[i] = "a"
		case i%40 == 1:
			users[i] = "b"
		default:
			users[i] = fmt.Sprintf("off%d", i)
		}
	}
	ub, _ := json.Marshal(users)
	type place struct{ call, n int } // the call, and the message's rank among its user's in it
	want := map[string]map[string]place{"a": {}, "b": {}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for call := range 2 {
		wg.Go(func() {
			out := api.ok("POST", "/v1/send", `{"users":`+string(ub)+`,"data":1}`)
			ids, _ := out["ids"].([]any)
			mu.Lock()
			defer mu.Unlock()
			rank := map[string]int{}
			for i, u := range users {
				if want[u] != nil {
					want[u][ids[i].(string)] = place{call, rank[u]}
					rank[u]++
				}
			}
		})
	}
	wg.Wait()
	for u, c := range online {
		var last uint64
		next := [2]int{}
		for range len(want[u]) {
			f := c.expect("message")
			if f.Seq != last+1 {
				t.Fatalf("%s: got seq %d after %d", u, f.Seq, last)
			}
			last = f.Seq
			id := mustIDRaw(t, f)
			p, ok := want[u][id]
			if !ok {
				t.Fatalf("%s: got %s, not one of its messages or twice", u, f.raw)
			}
			if p.n != next[p.call] {
				t.Fatalf("%s: got its message %d of call %d, want %d", u, p.n, p.call, next[p.call])
			}
			next[p.call]++
			delete(want[u], id)
		}
	}
}
