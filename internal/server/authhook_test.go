package server

import (
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/hooks"
)

var hookSecret = strings.Repeat("h", 32)

// hookBackend is a test backend for the connect and subscribe hooks: it
// verifies each request's signature, keeps the requests, and answers with
// what answer returns.
type hookBackend struct {
	t      *testing.T
	mu     sync.Mutex
	calls  []map[string]any
	answer func(w http.ResponseWriter, req map[string]any)
}

func startHookBackend(t *testing.T, answer func(w http.ResponseWriter, req map[string]any)) (*hookBackend, string) {
	t.Helper()
	b := &hookBackend{t: t, answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := hooks.Verify([]byte(hookSecret), r.Header.Get(hooks.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			t.Errorf("hook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("hook request %s: %v", body, err)
		}
		b.mu.Lock()
		b.calls = append(b.calls, req)
		b.mu.Unlock()
		b.answer(w, req)
	}))
	t.Cleanup(srv.Close)
	return b, srv.URL
}

func (b *hookBackend) requests() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]map[string]any(nil), b.calls...)
}

// hookConfig is a secure server asking the connect hook at url.
func hookConfig(t *testing.T, url string) config.Config {
	cfg := secureConfig(t)
	cfg.ConnectHook, cfg.HookSecret = url, hookSecret
	cfg.HookHeaders = []string{"Cookie", "X-Session"}
	return cfg
}

func dialWSHeader(t *testing.T, srv *Server, h http.Header) *conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+srv.HTTPAddr().String()+"/ws", h)
	if err != nil {
		t.Fatalf("dial ws: %v", err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return &conn{t: t, ws: ws}
}

// admitByCookie admits the user the cookie names, with a grant to
// vip:<user> and some info; a request without the cookie is refused.
func admitByCookie(w http.ResponseWriter, req map[string]any) {
	h, _ := req["headers"].(map[string]any)
	cookies, _ := h["Cookie"].([]any)
	if len(cookies) != 1 {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error":{"code":"no_session","message":"log in first"}}`)
		return
	}
	user := strings.TrimPrefix(cookies[0].(string), "session=")
	_ = json.NewEncoder(w).Encode(map[string]any{"user": user, "grants": []string{"vip:" + user}, "info": map[string]string{"name": "User " + user}})
}

// wantRefused reads the error reply to a connect and the disconnect
// that follows it.
func wantRefused(t *testing.T, c *conn, code string, disconnect int, within time.Duration) frame {
	t.Helper()
	start := time.Now()
	f := c.wantError(code)
	d := c.expect("disconnect")
	if d.Code != disconnect {
		t.Fatalf("want disconnect %d, got %s", disconnect, d.raw)
	}
	if took := time.Since(start); took > within {
		t.Fatalf("the refusal took %s, want within %s", took, within)
	}
	return f
}

// The connect hook admits a connection without a token as the user it
// names, with its grants and info; the backend gets the allow-listed
// headers of the WebSocket or SSE request and nothing else.
func TestConnectHookAdmits(t *testing.T) {
	t.Parallel()
	b, url := startHookBackend(t, admitByCookie)
	srv := startServer(t, hookConfig(t, url))
	h := http.Header{"Cookie": {"session=alice"}, "X-Secret": {"not for the backend"}, "X-Session": {"s1"}}

	alice := dialWSHeader(t, srv, h)
	alice.send(map[string]any{"op": "connect", "user": "mallory", "device": "phone", "data": map[string]int{"v": 1}})
	f := alice.expect("reply")
	var res struct{ User, Client string }
	if err := json.Unmarshal(f.Result, &res); err != nil || res.User != "alice" {
		t.Fatalf("connect: %s", f.raw)
	}
	alice.subscribe("vip:alice") // the hook's grant
	if f := alice.replyTo(alice.send(map[string]any{"op": "subscribe", "channel": "vip:bob"})); f.Error == nil || f.Error.Code != "forbidden" {
		t.Fatalf("subscribe without a grant: %s", f.raw)
	}
	sse, resp := openSSE(t, srv, http.Header{"Cookie": {"session=bob"}})
	if sse == nil {
		t.Fatalf("open sse: %s", resp.Status)
	}
	bob := &conn{t: t, sse: sse}
	bob.send(map[string]any{"op": "connect"})
	bob.expect("reply")
	bob.subscribe("vip:bob")
	f = bob.reply(bob.send(map[string]any{"op": "presence", "channel": "vip:bob"}))
	if !strings.Contains(string(f.Result), `"user":"bob","connections":1,"info":{"name":"User bob"}`) {
		t.Fatalf("presence: %s", f.raw)
	}

	reqs := b.requests()
	if len(reqs) != 2 {
		t.Fatalf("want 2 hook calls, got %v", reqs)
	}
	got, _ := json.Marshal(reqs[0])
	want := `{"client":"` + res.Client + `","data":{"v":1},"device":"phone","headers":{"Cookie":["session=alice"],"X-Session":["s1"]},"remote":"` +
		reqs[0]["remote"].(string) + `","transport":"websocket","user":"mallory"}`
	if string(got) != want {
		t.Fatalf("connect hook request:\ngot  %s\nwant %s", got, want)
	}
	if _, _, err := net.SplitHostPort(reqs[0]["remote"].(string)); err != nil {
		t.Errorf("remote %v: %v", reqs[0]["remote"], err)
	}
	if reqs[1]["transport"] != "sse" {
		t.Errorf("second call: %v", reqs[1])
	}
}

// A connect with a token is decided by the token, without the hook; raw
// TCP, which has no headers, asks the hook with none.
func TestConnectHookTokenAndTCP(t *testing.T) {
	t.Parallel()
	b, url := startHookBackend(t, func(w http.ResponseWriter, req map[string]any) {
		_, _ = io.WriteString(w, `{"user":"tcp-user"}`)
	})
	srv := startServer(t, hookConfig(t, url))
	c := dialWS(t, srv)
	c.connectToken(hmacToken(t, "carol", nil, time.Hour))
	if n := len(b.requests()); n != 0 {
		t.Fatalf("a connect with a token asked the hook %d times", n)
	}
	tc := dialTCP(t, srv)
	f := tc.reply(tc.send(map[string]any{"op": "connect"}))
	if !strings.Contains(string(f.Result), `"user":"tcp-user"`) {
		t.Fatalf("connect: %s", f.raw)
	}
	reqs := b.requests()
	if len(reqs) != 1 || reqs[0]["transport"] != "tcp" || reqs[0]["headers"] != nil {
		t.Fatalf("hook calls: %v", reqs)
	}
}

// A backend that refuses, answers garbage, is slow, redirects, or names
// no valid user: the client gets a clear error and a disconnect, final
// (3502) when the backend refused, reconnectable (3004) when it could not
// say, and within the hook timeout.
func TestConnectHookFailures(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	for _, tc := range []struct {
		name       string
		answer     func(w http.ResponseWriter, r *http.Request)
		code       string
		disconnect int
		message    string
	}{
		{"refuses", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"error":{"code":"banned","message":"account suspended"}}`)
		}, "unauthorized", 3502, "refused by the server's backend: account suspended"},
		{"forbidden", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }, "unauthorized", 3502, "refused by the server's backend"},
		{"invalid user", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"user":"not a user"}`)
		}, "unauthorized", 3502, "without a valid user id"},
		{"garbage", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `<html>oops</html>`)
		}, "hook_unavailable", 3004, "no usable answer"},
		{"huge", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"user":"a","info":"`+strings.Repeat("x", 1<<20)+`"}`)
		}, "hook_unavailable", 3004, "no usable answer"},
		{"down", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }, "hook_unavailable", 3004, "no usable answer"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/moved" {
				t.Error("the redirect was followed")
			}
			http.Redirect(w, r, "/moved", http.StatusFound)
		}, "hook_unavailable", 3004, "no usable answer"},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}, "hook_unavailable", 3004, "no usable answer"},
		{"slow body", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"user":`)
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}, "hook_unavailable", 3004, "no usable answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Read first: net/http watches for the client going away
				// only once the request body is read.
				_, _ = io.Copy(io.Discard, r.Body)
				tc.answer(w, r)
			}))
			t.Cleanup(backend.Close)
			cfg := hookConfig(t, backend.URL)
			cfg.HookTimeout = 300 * time.Millisecond
			srv := startServer(t, cfg)
			c := dialWS(t, srv)
			c.send(map[string]any{"op": "connect", "user": "alice"})
			f := wantRefused(t, c, tc.code, tc.disconnect, 3*time.Second)
			if !strings.Contains(f.Error.Message, tc.message) {
				t.Fatalf("message %q, want it to say %q", f.Error.Message, tc.message)
			}
		})
	}
}

// Past hook-concurrency calls in flight, a connect fails at once with
// hook_unavailable instead of waiting its turn; once the backend answers,
// connects go through again.
func TestConnectHookConcurrencyBound(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	_, url := startHookBackend(t, func(w http.ResponseWriter, req map[string]any) {
		entered <- struct{}{}
		<-release
		_ = json.NewEncoder(w).Encode(map[string]any{"user": req["user"]})
	})
	cfg := hookConfig(t, url)
	cfg.HookConcurrency = 2
	srv := startServer(t, cfg)
	var held []*conn
	for _, u := range []string{"a", "b"} {
		c := dialWS(t, srv)
		c.send(map[string]any{"op": "connect", "user": u})
		held = append(held, c)
		<-entered
	}
	third := dialTCP(t, srv)
	third.send(map[string]any{"op": "connect", "user": "c"})
	f := wantRefused(t, third, "hook_unavailable", 3004, time.Second)
	if !strings.Contains(f.Error.Message, "busy") {
		t.Fatalf("message: %s", f.raw)
	}
	once.Do(func() { close(release) })
	for _, c := range held {
		c.expect("reply")
	}
	c := dialWS(t, srv)
	c.send(map[string]any{"op": "connect", "user": "d"})
	<-entered
	if r := c.expect("reply"); r.Error != nil {
		t.Fatalf("after the others: %s", r.raw)
	}
	req, _ := http.NewRequest("GET", "http://"+srv.HTTPAddr().String()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testOldKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"herald_auth_hook_admitted_total 3", "herald_auth_hook_busy_total 1", "herald_auth_hook_failed_total 0", "herald_auth_hook_refused_total 0", "herald_auth_hook_in_flight 0"} {
		if !strings.Contains(string(m), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	hooks, _ := apiClient{t, "http://" + srv.HTTPAddr().String(), testNewKey}.ok("GET", "/v1/overview", "")["hooks"].(map[string]any)
	want := map[string]any{"configured": true, "admitted": 3.0, "refused": 0.0, "failed": 0.0, "busy": 1.0, "in_flight": 0.0}
	if h, _ := hooks["connect"].(map[string]any); !maps.Equal(h, want) {
		t.Errorf("overview connect hook %v, want %v", h, want)
	}
	if h, _ := hooks["subscribe"].(map[string]any); h["configured"] != false {
		t.Errorf("overview subscribe hook %v: not configured", h)
	}
}

// A hook URL that reaches the server itself (a name the configuration
// check cannot see through) fails like any backend that gives no answer:
// hook_unavailable at once, and the server goes on serving.
func TestConnectHookPointingAtItself(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cfg := secureConfig(t)
	cfg.HTTP = addr
	srv := startServerWith(t, cfg, func(s *Server) {
		s.authHooks = newAuthHooks(config.Config{ConnectHook: "http://" + addr + "/", HookSecret: hookSecret, HookTimeout: time.Second, HookConcurrency: 4})
	})
	c := dialWS(t, srv)
	c.send(map[string]any{"op": "connect", "user": "alice"})
	wantRefused(t, c, "hook_unavailable", 3004, 2*time.Second)
	ok := dialWS(t, srv)
	ok.connectToken(hmacToken(t, "alice", nil, time.Hour))
}

// The subscribe hook decides subscribes in the namespaces that ask for
// it, unless a grant allows the channel; other namespaces keep their
// rule and never ask. A slow hook fails the subscribe, not the
// connection.
func TestSubscribeHook(t *testing.T) {
	t.Parallel()
	b, url := startHookBackend(t, func(w http.ResponseWriter, req map[string]any) {
		switch req["channel"] {
		case "desk:open":
			_, _ = io.WriteString(w, `{}`)
		case "desk:slow":
			time.Sleep(500 * time.Millisecond)
			_, _ = io.WriteString(w, `{}`)
		default:
			_, _ = io.WriteString(w, `{"error":{"code":"closed","message":"desk is closed"}}`)
		}
	})
	cfg := secureConfig(t)
	cfg.SubscribeHook, cfg.HookSecret, cfg.HookTimeout = url, hookSecret, 200*time.Millisecond
	cfg.Namespaces = append(cfg.Namespaces, config.Namespace{Name: "desk", Subscribe: config.SubscribeGrant, Publish: config.PublishClients, SubscribeHook: true})
	srv := startServer(t, cfg)
	c := dialWS(t, srv)
	c.connectToken(hmacToken(t, "alice", []string{"desk:granted"}, time.Hour))

	c.subscribe("desk:open")
	f := c.replyTo(c.send(map[string]any{"op": "subscribe", "channel": "desk:shut"}))
	if f.Error == nil || f.Error.Code != "forbidden" || f.Error.Message != "refused by the server's backend: desk is closed" {
		t.Fatalf("refused subscribe: %s", f.raw)
	}
	f = c.replyTo(c.send(map[string]any{"op": "subscribe", "channel": "desk:slow"}))
	if f.Error == nil || f.Error.Code != "hook_unavailable" {
		t.Fatalf("slow hook: %s", f.raw)
	}
	c.subscribe("desk:granted") // the grant: not asked
	c.subscribe("room:1")       // no hook in room
	if f := c.replyTo(c.send(map[string]any{"op": "subscribe", "channel": "vip:1"})); f.Error == nil || f.Error.Code != "forbidden" {
		t.Fatalf("vip keeps its rule: %s", f.raw)
	}
	c.reply(c.send(map[string]any{"op": "ping"})) // the connection is still up

	var asked []string
	for _, r := range b.requests() {
		if r["user"] != "alice" || r["client"] == "" {
			t.Errorf("hook request %v", r)
		}
		asked = append(asked, r["channel"].(string))
	}
	if strings.Join(asked, " ") != "desk:open desk:shut desk:slow" {
		t.Fatalf("hook asked about %v", asked)
	}
	// Publishing to an allowed channel reaches the subscriber.
	other := dialWS(t, srv)
	other.connectToken(hmacToken(t, "bob", []string{"desk:open"}, time.Hour))
	other.reply(other.send(map[string]any{"op": "publish", "channel": "desk:open", "data": "hi"}))
	if m := c.expect("message"); m.Channel != "desk:open" {
		t.Fatalf("message: %s", m.raw)
	}
}
