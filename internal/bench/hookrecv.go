package bench

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Presence event types the bench waits for.
const (
	eventOnline  = "user.online"
	eventOffline = "user.offline"
)

// maxHookBody bounds one post the receiver reads: the server's batches
// are 500 events of about 100 bytes.
const maxHookBody = 16 << 20

// hookReceiver is an events webhook backend for the server under test
// (its --events-webhook): it answers every post after a delay, the slow
// backend of the hooks benchmarks, and counts the events by type, with
// when the first and last of each arrived. It does not check signatures:
// it measures, it does not guard.
type hookReceiver struct {
	delay time.Duration
	ln    net.Listener
	srv   *http.Server
	done  chan struct{} // closed when Serve returned

	mu      sync.Mutex
	posts   int64
	byType  map[string]*eventCount
	arrived chan struct{} // signalled after each post counted
}

// eventCount is what arrived of one event type.
type eventCount struct {
	events, posts int64
	first, last   time.Time
}

// startHookReceiver serves on ln until close.
func startHookReceiver(ln net.Listener, delay time.Duration) *hookReceiver {
	h := &hookReceiver{delay: delay, ln: ln, done: make(chan struct{}), byType: map[string]*eventCount{}, arrived: make(chan struct{}, 1)}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(h.done)
		_ = h.srv.Serve(ln)
	}()
	return h
}

// ServeHTTP counts a post's events as it arrives, then answers 204 after
// the delay.
func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxHookBody))
	var batch struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	if err == nil {
		err = json.Unmarshal(body, &batch)
	}
	if err != nil {
		http.Error(w, "not a batch of events", http.StatusBadRequest)
		return
	}
	now := time.Now()
	h.mu.Lock()
	h.posts++
	seen := map[string]bool{}
	for _, ev := range batch.Events {
		c := h.byType[ev.Type]
		if c == nil {
			c = &eventCount{first: now}
			h.byType[ev.Type] = c
		}
		c.events++
		c.last = now
		if !seen[ev.Type] {
			seen[ev.Type] = true
			c.posts++
		}
	}
	h.mu.Unlock()
	select {
	case h.arrived <- struct{}{}:
	default:
	}
	t := time.NewTimer(h.delay)
	defer t.Stop()
	select {
	case <-t.C:
		w.WriteHeader(http.StatusNoContent)
	case <-r.Context().Done():
	}
}

// count returns what arrived of events of type typ.
func (h *hookReceiver) count(typ string) eventCount {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.byType[typ]; c != nil {
		return *c
	}
	return eventCount{}
}

// await waits until want events of type typ arrived, or none arrived for
// idle, or ctx ended; it reports whether they all arrived.
func (h *hookReceiver) await(ctx context.Context, typ string, want int64, idle time.Duration) bool {
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		if h.count(typ).events >= want {
			return true
		}
		select {
		case <-h.arrived:
			t.Reset(idle)
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// report returns the run's Hooks figures.
func (h *hookReceiver) report() *Hooks {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := &Hooks{Addr: h.ln.Addr().String(), DelayMs: ms(h.delay), Posts: h.posts, Events: map[string]int64{}}
	for typ, c := range h.byType {
		out.Events[typ] = c.events
	}
	return out
}

// close stops the receiver, cutting any post it is still delaying.
func (h *hookReceiver) close() {
	_ = h.srv.Close()
	<-h.done
}
