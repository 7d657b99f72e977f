package bench

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hookListener returns a listener for the bench's hook receiver and the
// URL of it, for the server's events webhook.
func hookListener(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String() + "/"
}

// Every user's user.offline reaches the hook receiver after all
// disconnect at once; the receiver answers slowly, so the events come in
// few posts.
func TestOffline(t *testing.T) {
	t.Parallel()
	ln, url := hookListener(t)
	cfg := benchConfig(t)
	cfg.EventsWebhook, cfg.EventsWebhookSecret = url, strings.Repeat("s", 32)
	cfg.OfflineGrace = 100 * time.Millisecond
	ts := startServer(t, cfg)
	o := testOptions(ts, ScenarioOffline, "ws")
	o.Clients = 200
	o.hookListener, o.HookDelay = ln, 50*time.Millisecond
	res := run(t, o)
	mustPass(t, res)
	off, h := res.Offline, res.Hooks
	if off == nil || off.Users != 200 || off.Events != 200 || off.Posts < 1 || off.Posts > 200 || off.LastSeconds < off.FirstSeconds {
		t.Fatalf("offline %+v", off)
	}
	if h == nil || h.Events[eventOnline] != 200 || h.Events[eventOffline] != 200 || h.Posts < 2 || h.DelayMs != 50 {
		t.Fatalf("hooks %+v", h)
	}
	var text strings.Builder
	if err := WriteText(&text, res); err != nil || !strings.Contains(text.String(), "200 user.offline in") {
		t.Fatalf("report (%v):\n%s", err, text.String())
	}
}

// A run whose server posts nowhere fails: the events never arrive.
func TestOfflineWithoutEvents(t *testing.T) {
	t.Parallel()
	ln, _ := hookListener(t)
	ts := startServer(t, benchConfig(t))
	o := testOptions(ts, ScenarioOffline, "ws")
	o.Clients, o.Drain = 5, 200*time.Millisecond
	o.hookListener = ln
	res := run(t, o)
	if res.OK || !strings.Contains(strings.Join(res.Failures, "; "), "0 of 5 user.online events arrived") {
		t.Fatalf("ok %v, failures %q", res.OK, res.Failures)
	}
}

// The receiver refuses what is not a batch of events, and answers one
// after its delay.
func TestHookReceiver(t *testing.T) {
	t.Parallel()
	ln, url := hookListener(t)
	h := startHookReceiver(ln, time.Millisecond)
	t.Cleanup(h.close)
	resp, err := http.Post(url, "application/json", strings.NewReader("garbage"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("garbage: %d", resp.StatusCode)
	}
	resp, err = http.Post(url, "application/json", strings.NewReader(`{"events":[{"type":"user.online"},{"type":"user.online"},{"type":"channel.join"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("batch: %d", resp.StatusCode)
	}
	if r := h.report(); r.Posts != 1 || r.Events[eventOnline] != 2 || r.Events["channel.join"] != 1 || h.count(eventOnline).posts != 1 {
		t.Fatalf("report %+v", r)
	}
}
