package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/hooks"
)

// eventsBackend is a backend receiving the events webhook: it checks each
// post's signature, fails the first posts when told to, and keeps the
// events of the posts it took, as they came.
type eventsBackend struct {
	t    *testing.T
	url  string
	mu   sync.Mutex
	fail int // posts still to answer with 503
	// events are the events of every post taken, duplicates included.
	events []hookEvent
}

func startEventsBackend(t *testing.T, fail int) *eventsBackend {
	b := &eventsBackend{t: t, fail: fail}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := verifiedBody(t, w, r)
		if !ok {
			return
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.fail > 0 {
			b.fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var batch struct{ Events []hookEvent }
		if err := json.Unmarshal(body, &batch); err != nil {
			t.Errorf("events webhook body %q: %v", body, err)
		}
		b.events = append(b.events, batch.Events...)
	}))
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

// eventsConfig is the test configuration with the events webhook on to b,
// the given grace, and presence events in the room namespace.
func eventsConfig(b *eventsBackend, grace time.Duration) config.Config {
	cfg := testConfig()
	cfg.EventsWebhook, cfg.EventsWebhookSecret, cfg.OfflineGrace = b.url, webhookSecret, grace
	cfg.Namespaces = []config.Namespace{{Name: "room", Subscribe: config.SubscribeAny, Publish: config.PublishClients, PresenceEvents: true}}
	return cfg
}

// retryFast gives the server's events webhook short pauses between tries.
func retryFast(cfg config.Config) func(*Server) {
	return func(s *Server) {
		s.presenceHook.p = hooks.New[hookEvent](hooks.Config{URL: cfg.EventsWebhook, Secret: []byte(cfg.EventsWebhookSecret),
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	}
}

// deduped returns the events as a backend keeps them: per user, those
// above the highest seq seen before, so that a batch posted twice counts
// once. It checks that every event has a time.
func (b *eventsBackend) deduped() []hookEvent {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	highest := map[string]uint64{}
	var out []hookEvent
	for _, e := range b.events {
		if e.At == 0 || e.Seq == 0 {
			b.t.Fatalf("event without time or seq: %+v", e)
		}
		if e.Seq <= highest[e.User] {
			continue
		}
		highest[e.User] = e.Seq
		out = append(out, e)
	}
	return out
}

// describe lists events as "type user [channel]", in order.
func describe(events []hookEvent) []string {
	var out []string
	for _, e := range events {
		out = append(out, strings.TrimSpace(e.Type+" "+e.User+" "+e.Channel))
	}
	return out
}

// waitFor polls until the backend's deduplicated events of user are want.
func (b *eventsBackend) waitFor(user string, want ...string) []hookEvent {
	b.t.Helper()
	var got []hookEvent
	checkFor(b.t, 15*time.Second, 10*time.Millisecond, func() error {
		got = nil
		for _, e := range b.deduped() {
			if e.User == user {
				got = append(got, e)
			}
		}
		if d := describe(got); !slices.Equal(d, want) {
			return fmt.Errorf("events of %s: %q, want %q", user, d, want)
		}
		return nil
	})
	return got
}

// A user's arrival is posted at once and its departure after the grace;
// a connection that comes back within the grace posts nothing; channel
// events come only from namespaces that ask for them.
func TestPresenceEventsDamped(t *testing.T) {
	t.Parallel()
	const grace = 2 * time.Second
	backend := startEventsBackend(t, 0)
	srv := startServer(t, eventsConfig(backend, grace))

	a := dialWS(t, srv)
	a.connect("alice")
	a.subscribe("room:1")
	a.subscribe("chat:1") // no presence events in this namespace
	b := dialTCP(t, srv)
	b.connect("alice")
	b.subscribe("room:1")
	backend.waitFor("alice", "user.online alice", "channel.join alice room:1")

	// The network drops both connections; one comes back at once.
	a.close()
	b.close()
	c := dialWS(t, srv)
	c.connect("alice")
	c.subscribe("room:1")
	// Leaving the channel for good, then the server, posts each after
	// the grace, in that order.
	c.reply(c.send(map[string]any{"op": "unsubscribe", "channel": "room:1"}))
	closed := time.Now().UnixMilli()
	c.close()
	got := backend.waitFor("alice", "user.online alice", "channel.join alice room:1", "channel.leave alice room:1", "user.offline alice")
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("seq not increasing: %+v", got)
		}
	}
	if off := got[3]; off.At < closed+grace.Milliseconds()-1 {
		t.Fatalf("offline at %d, %d ms after the last connection closed; the grace is %s", off.At, off.At-closed, grace)
	}
	backend.mu.Lock()
	defer backend.mu.Unlock()
	if len(backend.events) != 4 {
		t.Fatalf("the backend got %d events, want 4: %q", len(backend.events), describe(backend.events))
	}
}

// A backend that fails for a while gets every event once it answers: in
// order per user after de-duplication by seq. The metrics count the
// failures and the events posted.
func TestPresenceEventsBackendRecovers(t *testing.T) {
	t.Parallel()
	backend := startEventsBackend(t, 5)
	cfg := eventsConfig(backend, 0)
	srv := startServerWith(t, cfg, retryFast(cfg))
	users := []string{"u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"}
	for _, u := range users {
		c := dialWS(t, srv)
		c.connect(u)
		c.subscribe("room:" + u)
		c.reply(c.send(map[string]any{"op": "unsubscribe", "channel": "room:" + u}))
		c.subscribe("room:" + u)
		c.close()
	}
	for _, u := range users {
		backend.waitFor(u, "user.online "+u, "channel.join "+u+" room:"+u, "channel.leave "+u+" room:"+u,
			"channel.join "+u+" room:"+u, "channel.leave "+u+" room:"+u, "user.offline "+u)
	}
	// The poster counts a batch once it has the backend's answer.
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		m, _ := io.ReadAll(resp.Body)
		for _, want := range []string{"herald_events_webhook_posted_total 48", "herald_events_webhook_failed_posts_total 5", "herald_events_webhook_retried_posts_total 5", "herald_events_webhook_dropped_total 0", "herald_events_webhook_queued 0"} {
			if !strings.Contains(string(m), want+"\n") {
				return fmt.Errorf("metrics lack %q: %s", want, regexp.MustCompile(`herald_events_webhook_\w+ \d+`).FindAllString(string(m), -1))
			}
		}
		return nil
	})
	// The overview shows the same, hook by hook.
	hooks, _ := apiClient{t, "http://" + srv.HTTPAddr().String(), ""}.ok("GET", "/v1/overview", "")["hooks"].(map[string]any)
	want := map[string]any{"configured": true, "queued": 0.0, "posted": 48.0, "failed": 5.0, "retried": 5.0, "dropped": 0.0}
	if ev, _ := hooks["events"].(map[string]any); !maps.Equal(ev, want) {
		t.Fatalf("overview events hook %v, want %v", ev, want)
	}
	for _, off := range []string{"receipts", "connect", "subscribe"} {
		if h, _ := hooks[off].(map[string]any); h["configured"] != false {
			t.Fatalf("overview %s hook %v: not configured", off, h)
		}
	}
}

// At shutdown no user can come back: the users within their grace, and
// those still connected, are posted offline before the server stops.
func TestPresenceEventsAtShutdown(t *testing.T) {
	t.Parallel()
	backend := startEventsBackend(t, 0)
	srv := startServer(t, eventsConfig(backend, config.MaxOfflineGrace))
	a := dialWS(t, srv)
	a.connect("alice")
	a.subscribe("room:1")
	b := dialWS(t, srv)
	b.connect("bob")
	b.close()
	backend.waitFor("bob", "user.online bob")
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	backend.waitFor("alice", "user.online alice", "channel.join alice room:1", "channel.leave alice room:1", "user.offline alice")
	backend.waitFor("bob", "user.online bob", "user.offline bob")
}

// A backend that never answers holds up no connection, subscription or
// message: the events wait in the webhook's queue.
func TestPresenceEventsHungBackend(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(hung.Close)
	cfg := eventsConfig(&eventsBackend{url: hung.URL}, 0)
	srv := startServer(t, cfg)
	t.Cleanup(func() { close(release) })
	for i := range 20 {
		c := dialWS(t, srv)
		c.connect(fmt.Sprint("u", i))
		c.subscribe("room:1")
		c.reply(c.send(map[string]any{"op": "publish", "channel": "room:1", "data": i}))
		c.close()
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		// The first batch is in flight; the rest wait.
		if n := srv.presenceHook.p.Len(); n == 0 {
			return fmt.Errorf("nothing queued")
		}
		return nil
	})
}
