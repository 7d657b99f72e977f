package web_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testserver"
)

var errNotYet = errors.New("not yet")

// waitSubscribed waits until one user subscribes to channel: a client
// that reconnected has subscribed again.
func waitSubscribed(t *testing.T, base, channel string) {
	t.Helper()
	testserver.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		var p struct{ Users int }
		api(t, base, "", "GET", "/v1/presence/channels/"+channel, nil, &p)
		if p.Users != 1 {
			return errNotYet
		}
		return nil
	})
}

// startClient loads herald.js into the page (the demo's, which is served
// by the server under test) and connects a client as user; the page keeps
// every message in window.got and every state in window.states.
func startClient(t *testing.T, ctx context.Context, base, user string) string {
	t.Helper()
	do(t, ctx, chromedp.Navigate(base+"/demo/"))
	return eval[string](t, ctx, `(async () => {
		const { HeraldClient } = await import("/herald.js");
		window.got = [];
		window.states = [];
		const c = new HeraldClient({ user: `+jsString(user)+`, minDelay: 100, maxDelay: 400 });
		window.c = c;
		c.on("message", (m) => window.got.push(m));
		c.on("state", (s) => window.states.push(s));
		const info = await c.connect();
		await c.subscribe("room:js");
		return info.transport;
	})()`)
}

// The client connects, subscribes, receives and publishes; reconnects and
// resubscribes when the server restarts; and stays away once kicked.
func TestBrowserClient(t *testing.T) {
	srv := testserver.Start(t, testserver.Config(t))
	ctx := newPage(t)
	base := srv.API()
	if tr := startClient(t, ctx, base, "jsuser"); tr != "websocket" {
		t.Fatalf("connected over %q, want websocket", tr)
	}
	api(t, base, "", "POST", "/v1/publish", map[string]any{"channel": "room:js", "data": map[string]any{"n": 1}}, nil)
	waitJS(t, ctx, 5*time.Second, "message from the API", `window.got.length === 1 && window.got[0].data.n === 1`)
	eval[bool](t, ctx, `c.publish("room:js", {n: 2}).then(r => typeof r.id === "string")`)
	waitJS(t, ctx, 5*time.Second, "own message", `window.got.length === 2 && window.got[1].from === "jsuser"`)

	// The server goes away (3000 shutdown) and comes back: the client
	// reconnects on its own and subscribes again.
	srv.Restart(t)
	waitJS(t, ctx, 10*time.Second, "reconnected", `window.states.includes("reconnecting") && c.state === "connected"`)
	waitSubscribed(t, base, "room:js")
	api(t, base, "", "POST", "/v1/publish", map[string]any{"channel": "room:js", "data": map[string]any{"n": 3}}, nil)
	waitJS(t, ctx, 5*time.Second, "message after the reconnect", `window.got.length === 3 && window.got[2].data.n === 3`)

	// Kicked (3505): the client must not come back.
	api(t, base, "", "POST", "/v1/users/jsuser/disconnect", map[string]any{"reason": "test"}, nil)
	waitJS(t, ctx, 5*time.Second, "closed after a kick", `c.state === "closed"`)
	time.Sleep(600 * time.Millisecond) // longer than maxDelay: a reconnect would have happened
	if st := eval[string](t, ctx, `c.state`); st != "closed" {
		t.Fatalf("state %q after a kick", st)
	}
	var pres struct{ Online bool }
	api(t, base, "", "GET", "/v1/presence/users/jsuser", nil, &pres)
	if pres.Online {
		t.Fatal("a kicked client reconnected")
	}
}

// wsBlockingProxy serves target through a proxy that refuses every
// WebSocket upgrade, as some corporate proxies do, and passes the rest,
// event streams included.
func wsBlockingProxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "WebSockets are blocked here", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		proxy.CloseClientConnections() // the event stream, which never ends on its own
		proxy.Close()
	})
	return proxy.URL
}

// Behind a proxy that blocks WebSockets, the client falls back to SSE on
// its own, and everything works the same over it, reconnects included.
func TestBrowserSSEFallback(t *testing.T) {
	srv := testserver.Start(t, testserver.Config(t))
	ctx := newPage(t)
	base := srv.API()
	page := wsBlockingProxy(t, base)
	if tr := startClient(t, ctx, page, "sseuser"); tr != "sse" {
		t.Fatalf("connected over %q, want sse", tr)
	}
	var o struct{ Transports map[string]int }
	api(t, base, "", "GET", "/v1/overview", nil, &o)
	if o.Transports["sse"] != 1 || o.Transports["websocket"] != 0 {
		t.Fatalf("transports %v, want one sse connection", o.Transports)
	}
	api(t, base, "", "POST", "/v1/publish", map[string]any{"channel": "room:js", "data": "over sse"}, nil)
	waitJS(t, ctx, 5*time.Second, "message over sse", `window.got.length === 1 && window.got[0].data === "over sse"`)
	eval[bool](t, ctx, `c.publish("room:js", {n: 2}).then(() => c.presence("room:js")).then(p => p.users === 1)`)
	waitJS(t, ctx, 5*time.Second, "own message over sse", `window.got.length === 2`)

	// The server asks it to reconnect (3007): it comes back, over SSE.
	api(t, base, "", "POST", "/v1/users/sseuser/disconnect", map[string]any{"reconnect": true}, nil)
	waitJS(t, ctx, 10*time.Second, "reconnected over sse", `window.states.includes("reconnecting") && c.state === "connected" && c.info.transport === "sse"`)
	waitSubscribed(t, base, "room:js")
	api(t, base, "", "POST", "/v1/publish", map[string]any{"channel": "room:js", "data": "again"}, nil)
	waitJS(t, ctx, 5*time.Second, "message after the reconnect", `window.got.length === 3 && window.got[2].data === "again"`)

	// The demo chat, behind the same proxy, works over SSE too.
	demo := newPage(t)
	loginDemo(t, demo, page, "dora")
	if st := eval[string](t, demo, `document.getElementById("status").textContent`); !strings.HasSuffix(st, "sse") {
		t.Fatalf("demo status %q, want it on sse", st)
	}
	say(t, demo, "hello over sse")
	waitJS(t, demo, 5*time.Second, "own message over sse", lastLines+`.some(l => l.includes("hello over sse"))`)
}

// loginDemo opens the demo chat as name and waits until it is in the lobby.
func loginDemo(t *testing.T, ctx context.Context, base, name string) {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(base+"/demo/"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SetValue(chromedp.ID("name"), name),
		chromedp.Click(chromedp.ID("login-button")),
	)
	waitJS(t, ctx, 10*time.Second, name+" in the lobby",
		`document.getElementById("title").textContent === "#lobby" && document.getElementById("status").dataset.state === "connected"`)
}

// say types text into the demo's message box and sends it.
func say(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	do(t, ctx,
		chromedp.SetValue(chromedp.ID("message-input"), text),
		chromedp.Click(chromedp.ID("send-button")),
	)
}

const lastLines = `[...document.querySelectorAll("#messages li")].map(li => li.textContent)`

// Two people chat in a room of the demo; a private message reaches only its
// recipient; markup in a message is shown as text.
func TestBrowserDemoChat(t *testing.T) {
	srv := testserver.Start(t, testserver.Config(t))
	base := srv.API()
	alice, bob, carol := newPage(t), newPage(t), newPage(t)
	loginDemo(t, alice, base, "alice")
	loginDemo(t, bob, base, "bob")
	loginDemo(t, carol, base, "carol")

	// Everyone sees who is in the lobby.
	waitJS(t, alice, 10*time.Second, "alice sees bob and carol online",
		`["alice","bob","carol"].every(u => document.querySelector('#members li[data-user="' + u + '"]'))`)

	say(t, alice, "hello, room")
	for name, ctx := range map[string]context.Context{"bob": bob, "carol": carol} {
		waitJS(t, ctx, 5*time.Second, name+" sees alice's message", lastLines+`.some(l => l.includes("alice") && l.includes("hello, room"))`)
	}

	// Markup is text: no element is made of it, no handler runs.
	xss := `<img src=x onerror="window.__pwned=1">`
	say(t, alice, xss)
	waitJS(t, bob, 5*time.Second, "bob sees the markup as text",
		`[...document.querySelectorAll("#messages .text")].some(s => s.textContent === `+jsString(xss)+`)`)
	if eval[bool](t, bob, `document.querySelector("#messages img") !== null || window.__pwned === 1`) {
		t.Fatal("a message's markup became HTML")
	}

	// Bob talks to alice in private, from the member list.
	do(t, bob, chromedp.Click(chromedp.CSS(`#members li[data-user="alice"]`)))
	waitJS(t, bob, 5*time.Second, "bob in a private conversation", `document.getElementById("title").textContent === "private: alice"`)
	say(t, bob, "psst, alice")
	waitJS(t, alice, 5*time.Second, "alice gets a private conversation",
		`[...document.querySelectorAll("#rooms li")].some(li => li.textContent.startsWith("private: bob"))`)
	do(t, alice, chromedp.Click(chromedp.CSS(`#rooms li[data-key="@bob"]`)))
	waitJS(t, alice, 5*time.Second, "alice reads bob's private message", lastLines+`.some(l => l.includes("psst, alice"))`)

	// Carol, in the same room, got none of it.
	say(t, carol, "anyone?")
	waitJS(t, carol, 5*time.Second, "carol's own message", lastLines+`.some(l => l.includes("anyone?"))`)
	if eval[bool](t, carol, `document.body.textContent.includes("psst") || document.querySelectorAll("#rooms li").length !== 1`) {
		t.Fatal("a private message reached a third person")
	}
	do(t, alice, chromedp.Click(chromedp.CSS(`#rooms li[data-key="room:lobby"]`)))
	waitJS(t, alice, 5*time.Second, "alice back in the lobby", `document.querySelectorAll("#members li").length === 3`)
	screenshot(t, alice, "demo-chat")
}

// A page that went away gets, when it comes back, the room's messages it
// missed (the room's namespace keeps history) and the private messages
// sent to it meanwhile (its device's inbox).
func TestBrowserDemoOffline(t *testing.T) {
	cfg := testserver.Config(t)
	cfg.Namespaces = []config.Namespace{{Name: "room", Subscribe: config.SubscribeAny, Publish: config.PublishClients, HistorySize: 100}}
	srv := testserver.Start(t, cfg)
	base := srv.API()
	alice, bob := newPage(t), newPage(t)
	loginDemo(t, alice, base, "alice")
	loginDemo(t, bob, base, "bob")
	say(t, bob, "see you later")
	waitJS(t, alice, 5*time.Second, "alice sees bob", lastLines+`.some(l => l.includes("see you later"))`)
	do(t, alice, chromedp.Click(chromedp.CSS(`#members li[data-user="bob"]`)))
	waitJS(t, alice, 5*time.Second, "alice talks to bob", `document.getElementById("title").textContent === "private: bob"`)

	// Bob leaves the page; alice writes to the room and to him.
	do(t, bob, chromedp.Navigate("about:blank"))
	testserver.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		var p struct{ Online bool }
		api(t, base, "", "GET", "/v1/presence/users/bob", nil, &p)
		if p.Online {
			return errNotYet
		}
		return nil
	})
	say(t, alice, "this waits in your inbox")
	waitJS(t, alice, 5*time.Second, "sent", lastLines+`.some(l => l.includes("this waits in your inbox"))`)
	do(t, alice, chromedp.Click(chromedp.CSS(`#rooms li[data-key="room:lobby"]`)))
	say(t, alice, "you missed this")
	waitJS(t, alice, 5*time.Second, "said", lastLines+`.some(l => l.includes("you missed this"))`)

	// Bob comes back: the same browser, which remembers its name, device,
	// rooms and where the lobby stood.
	do(t, bob, chromedp.Navigate(base+"/demo/"), chromedp.WaitVisible(chromedp.ID("name")))
	if name := eval[string](t, bob, `document.getElementById("name").value`); name != "bob" {
		t.Fatalf("name not remembered: %q", name)
	}
	do(t, bob, chromedp.Click(chromedp.ID("login-button")))
	waitJS(t, bob, 10*time.Second, "bob gets the room's missed message",
		`document.getElementById("title").textContent === "#lobby" && `+lastLines+`.some(l => l.includes("you missed this")) && `+lastLines+`.some(l => l.includes("missed while away"))`)
	if n := eval[int](t, bob, lastLines+`.filter(l => l.includes("see you later")).length`); n != 0 {
		t.Fatal("bob's own earlier message came again")
	}
	do(t, bob, chromedp.Click(chromedp.CSS(`#rooms li[data-key="@alice"]`)))
	waitJS(t, bob, 5*time.Second, "bob gets the private message from his inbox", lastLines+`.some(l => l.includes("this waits in your inbox"))`)
}

// The dashboard refuses a wrong key, keeps the right one out of the URL,
// shows live numbers, looks a user up, sends it a test message and
// disconnects it.
func TestBrowserDashboard(t *testing.T) {
	const key = "dashboard-test-key-0123456789"
	cfg := testserver.Config(t)
	cfg.APIKeys = []string{key}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(backend.Close)
	cfg.EventsWebhook, cfg.EventsWebhookSecret = backend.URL, "dashboard-test-webhook-secret-0123456789"
	srv := testserver.Start(t, cfg)
	base := srv.API()

	dctx, cancel := context.WithTimeout(context.Background(), pageTimeout)
	defer cancel()
	got := make(chan client.Message, 64)
	ws, err := client.Dial(dctx, srv.WS(), client.WithUser("watched"), client.WithMessageHandler(func(m client.Message) { got <- m }))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.Subscribe(dctx, "room:watched"); err != nil {
		t.Fatal(err)
	}
	tcp, err := client.Dial(dctx, srv.TCP(), client.WithUser("other"))
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	if err := tcp.Subscribe(dctx, "room:busy"); err != nil {
		t.Fatal(err)
	}

	ctx := newPage(t)
	do(t, ctx, chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), "not-the-key-at-all"), chromedp.Click(chromedp.ID("login-button")))
	waitJS(t, ctx, 5*time.Second, "a wrong key refused", `document.getElementById("login-error").textContent.includes("not valid")`)
	do(t, ctx, chromedp.SetValue(chromedp.ID("key"), key), chromedp.Click(chromedp.ID("login-button")))
	waitJS(t, ctx, 5*time.Second, "the board shows the connections",
		`document.getElementById("connections").textContent === "2" && document.getElementById("transports").textContent.includes("websocket 1") && document.getElementById("transports").textContent.includes("tcp 1")`)
	if loc := eval[string](t, ctx, `location.href + " " + sessionStorage.getItem("herald.apiKey")`); loc != base+"/admin/ "+key {
		t.Fatalf("the key is not (only) in session storage: %q", loc)
	}
	waitJS(t, ctx, 5*time.Second, "users and channels",
		`document.getElementById("users").textContent === "2" && document.getElementById("busiest").textContent.includes("room:busy")`)
	// The events webhook is on and has posted the two users' online
	// events; the other hooks are off.
	waitJS(t, ctx, 5*time.Second, "the hooks' health",
		`(r => r[0][0] === "events" && r[0][2] === "2" && r[0][5] === "0" && r[1][1] === "off")([...document.querySelectorAll("#webhooks tr")].map(tr => [...tr.cells].map(td => td.textContent))) && document.getElementById("authhooks").textContent === "connectoffsubscribeoff"`)

	// Traffic, from a backend, shows in the rates while the operator works.
	stop := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			req, _ := http.NewRequest("POST", base+"/v1/publish", strings.NewReader(`{"channel":"room:busy","data":{"n":`+strconv.Itoa(i)+`}}`))
			req.Header.Set("Authorization", "Bearer "+key)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	defer func() {
		close(stop)
		<-published
	}()
	waitJS(t, ctx, 5*time.Second, "a message rate", `parseFloat(document.getElementById("rate-in").textContent) > 0 && parseFloat(document.getElementById("rate-out").textContent) > 0`)

	// Look a user up, send it a test message, disconnect it.
	do(t, ctx, chromedp.SetValue(chromedp.ID("lookup-user"), "watched"), chromedp.Click(chromedp.ID("lookup-button")))
	waitJS(t, ctx, 5*time.Second, "the user's connection", `document.getElementById("lookup-conns").textContent.includes("room:watched") && document.getElementById("lookup-conns").textContent.includes("websocket")`)
	do(t, ctx, chromedp.Click(chromedp.ID("test-button")))
	select {
	case m := <-got:
		if m.Kind != "direct" {
			t.Fatalf("test message: %+v", m)
		}
	case <-dctx.Done():
		t.Fatal("the test message did not arrive")
	}
	do(t, ctx, chromedp.Click(chromedp.ID("kick-button")), chromedp.Click(chromedp.ID("kick-button")))
	select {
	case <-ws.Done():
	case <-dctx.Done():
		t.Fatal("the user was not disconnected")
	}
	waitJS(t, ctx, 5*time.Second, "the disconnect reported", `document.getElementById("lookup-note").textContent.includes("disconnected 1 connection")`)
	waitJS(t, ctx, 5*time.Second, "the kick counted", `document.getElementById("disconnects").textContent.includes("kicked") && document.getElementById("connections").textContent === "1"`)
	screenshot(t, ctx, "dashboard")
}
