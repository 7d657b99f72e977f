package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

type event struct {
	N int `json:"n"`
}

// backend is a test webhook receiver: it verifies each post and keeps
// what it took; fail answers the first posts with 500.
type backend struct {
	t  *testing.T
	mu sync.Mutex
	// fail is how many posts to answer with 500.
	fail       int
	posts      int
	deliveries []string
	events     []event
	got        chan struct{}
}

func newBackend(t *testing.T) (*backend, *httptest.Server) {
	b := &backend{t: t, got: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify(secret, r.Header.Get(SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("signature %q: %v", r.Header.Get(SignatureHeader), err)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		b.posts++
		b.deliveries = append(b.deliveries, r.Header.Get(DeliveryHeader))
		if b.fail > 0 {
			b.fail--
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var batch struct{ Events []event }
		if err := json.Unmarshal(body, &batch); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("body %q: %v", body, err)
		}
		b.events = append(b.events, batch.Events...)
		b.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return b, srv
}

func (b *backend) waitEvents(n int) []event {
	b.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		b.mu.Lock()
		got := append([]event(nil), b.events...)
		b.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-b.got:
		case <-timeout:
			b.t.Fatalf("backend has %d events, want %d", len(got), n)
		}
	}
}

func run(t *testing.T, p *Poster[event]) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Events arrive signed, in order, in batches no bigger than the bound.
func TestBatchesArriveSigned(t *testing.T) {
	t.Parallel()
	b, srv := newBackend(t)
	p := New[event](Config{URL: srv.URL, Secret: secret, MaxBatch: 3}, quiet, nil)
	for i := range 7 {
		p.Add(event{i})
	}
	run(t, p)
	got := b.waitEvents(7)
	for i, e := range got {
		if e.N != i {
			t.Fatalf("events %v, want 0-6 in order", got)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.posts < 3 {
		t.Fatalf("%d posts for 7 events in batches of 3", b.posts)
	}
}

// A post the backend fails is retried, as the same delivery, until it is
// taken.
func TestRetriesOnServerError(t *testing.T) {
	t.Parallel()
	b, srv := newBackend(t)
	b.fail = 2
	p := New[event](Config{URL: srv.URL, Secret: secret, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}, quiet, nil)
	p.Add(event{1})
	run(t, p)
	if got := b.waitEvents(1); len(got) != 1 {
		t.Fatalf("events %v", got)
	}
	b.mu.Lock()
	if b.posts != 3 || b.deliveries[0] != b.deliveries[2] || b.deliveries[0] == "" {
		t.Fatalf("%d posts with deliveries %v, want 3 of one delivery", b.posts, b.deliveries)
	}
	b.mu.Unlock()
	// The poster counts the batch once it has the backend's answer.
	deadline := time.Now().Add(10 * time.Second)
	for p.Posted.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if p.Posted.Load() != 1 || p.Dropped.Load() != 0 || p.Failed.Load() != 2 || p.Retried.Load() != 2 || p.Len() != 0 {
		t.Fatalf("posted %d dropped %d failed %d retried %d queued %d, want 1, 0, 2, 2, 0", p.Posted.Load(), p.Dropped.Load(), p.Failed.Load(), p.Retried.Load(), p.Len())
	}
}

// A batch the backend does not take within the retry window is dropped
// and counted.
func TestRetryWindow(t *testing.T) {
	t.Parallel()
	b, srv := newBackend(t)
	b.fail = 1 << 30
	p := New[event](Config{URL: srv.URL, Secret: secret, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, RetryFor: 30 * time.Millisecond}, quiet, nil)
	p.Add(event{1})
	p.Add(event{2})
	run(t, p)
	waitDropped(t, p, 2)
}

// waitDropped waits until p has dropped n events.
func waitDropped(t *testing.T, p *Poster[event], n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Dropped.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("dropped %d, want %d", p.Dropped.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A backend that hangs never blocks Add: the queue keeps the newest
// events and counts the oldest it drops.
func TestHungBackendNeverBlocks(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}))
	t.Cleanup(srv.Close)
	p := New[event](Config{URL: srv.URL, Secret: secret, MaxQueue: 10, MaxBatch: 1, Timeout: time.Minute}, quiet, nil)
	run(t, p)
	// Cleanups run last first: the backend answers before the poster stops.
	t.Cleanup(func() { close(release) })
	p.Add(event{-1})
	<-entered // the first post hangs in the backend
	for i := range 1000 {
		p.Add(event{i})
	}
	p.mu.Lock()
	queued := append([]event(nil), p.queue...)
	p.mu.Unlock()
	if len(queued) != 10 || queued[0].N != 990 || queued[9].N != 999 || p.Dropped.Load() != 990 {
		t.Fatalf("queue %v, dropped %d: want the newest 10 kept, 990 dropped", queued, p.Dropped.Load())
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	p := New[event](Config{URL: "http://127.0.0.1:1", MaxQueue: 5}, quiet, func(last *event, next event) bool {
		if last.N/10 != next.N/10 {
			return false
		}
		last.N = next.N
		return true
	})
	for _, n := range []int{1, 2, 3, 11, 12, 21} {
		p.Add(event{n})
	}
	if len(p.queue) != 3 || p.queue[0].N != 3 || p.queue[1].N != 12 || p.queue[2].N != 21 {
		t.Fatalf("queue %v", p.queue)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"events":[]}`)
	now := time.Unix(1_750_000_000, 0)
	h := Sign(secret, now, body)
	if err := Verify(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	for name, c := range map[string]struct {
		secret []byte
		header string
		body   string
		now    time.Time
		want   error
	}{
		"another body":   {secret, h, `{"events":[1]}`, now, ErrBadSignature},
		"another secret": {[]byte("another secret, thirty-two bytes"), h, string(body), now, ErrBadSignature},
		"stale":          {secret, h, string(body), now.Add(6 * time.Minute), ErrStale},
		"future":         {secret, h, string(body), now.Add(-6 * time.Minute), ErrStale},
		"no timestamp":   {secret, h[len("t=1750000000,"):], string(body), now, ErrBadSignature},
		"empty":          {secret, "", string(body), now, ErrBadSignature},
	} {
		if err := Verify(c.secret, c.header, []byte(c.body), c.now, 5*time.Minute); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// A redirect is not followed: the batch counts as not taken, and nothing
// reaches the place it points to.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	b, target := newBackend(t)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	p := New[event](Config{URL: redirect.URL, Secret: secret, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, RetryFor: 30 * time.Millisecond}, quiet, nil)
	p.Add(event{1})
	run(t, p)
	waitDropped(t, p, 1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.posts != 0 || p.Failed.Load() == 0 {
		t.Fatalf("the redirect's target got %d posts; %d failed", b.posts, p.Failed.Load())
	}
}
