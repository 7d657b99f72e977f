package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
)

// memBackend keeps idempotency keys in memory, as the store does, and
// records what it is asked to dispatch.
type memBackend struct {
	nopBackend
	mu   sync.Mutex
	keys map[string][2][]byte // hash, result
	sent []*protocol.Message
	// fail refuses messages to these users and channels, as a failing
	// store does.
	fail map[string]bool
	// hold, when set, blocks every Dispatch until it is closed; entered
	// gets a value as each Dispatch begins to wait.
	hold, entered chan struct{}
}

func newMemBackend() *memBackend {
	return &memBackend{keys: make(map[string][2][]byte), fail: make(map[string]bool)}
}

func (b *memBackend) Dispatch(ctx context.Context, m *protocol.Message) error {
	if b.hold != nil {
		b.entered <- struct{}{}
		<-b.hold
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail[m.To] || b.fail[m.Channel] {
		return &Error{Status: http.StatusServiceUnavailable, Code: "storage_failed", Message: "disk full"}
	}
	b.sent = append(b.sent, m)
	return nil
}

func (b *memBackend) DispatchBatch(ctx context.Context, ms []*protocol.Message) []error {
	return dispatchEach(ctx, b.Dispatch, ms)
}

func (b *memBackend) SendBatch(ctx context.Context, ms []*protocol.Message) []error {
	return dispatchEach(ctx, b.Dispatch, ms)
}

func (b *memBackend) Remember(_ context.Context, key string, hash, result []byte) ([]byte, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.keys[key]; ok {
		if !bytes.Equal(v[0], hash) {
			return nil, false, ErrKeyReused
		}
		return v[1], false, nil
	}
	b.keys[key] = [2][]byte{hash, result}
	return result, true, nil
}

func (b *memBackend) Forget(_ context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.keys, key)
	return nil
}

// Stored finds a direct message sent already, as the store's receipts do.
func (b *memBackend) Stored(_ context.Context, id string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.sent {
		if m.ID == id {
			return true, nil
		}
	}
	return false, nil
}

func (b *memBackend) sentIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for _, m := range b.sent {
		ids = append(ids, m.ID)
	}
	return ids
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (r response) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func serve(t *testing.T, b Backend, cfg Config) func(method, path, key, body string) response {
	t.Helper()
	cfg.Open, cfg.MaxBody = true, 1<<20
	mux := http.NewServeMux()
	New(cfg, b, nopBackend{}, slog.New(slog.NewTextHandler(io.Discard, nil))).Register(mux)
	return func(method, path, key, body string) response {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if key != "" {
			req.Header.Set(IdempotencyKeyHeader, key)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Errorf("%s %s: body %q: %v", method, path, rec.Body, err)
		}
		return response{rec.Code, rec.Header(), out}
	}
}

// A retry with the key answers the first call's ids and sends nothing;
// the same body written otherwise is the same request; another body, or
// another endpoint, with the key is refused.
func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	b := newMemBackend()
	do := serve(t, b, Config{})
	first := do("POST", "/v1/publish", "k1", `{"channel":"room","data":{"a":1,"b":[1.50,2]}}`)
	if first.status != 200 || first.header.Get(ReplayedHeader) != "" {
		t.Fatalf("first: %d %v %v", first.status, first.header, first.body)
	}
	again := do("POST", "/v1/publish", "k1", `{ "data": {"b":[1.50, 2], "a":1}, "channel": "room" }`)
	if again.status != 200 || again.body["id"] != first.body["id"] || again.header.Get(ReplayedHeader) != "true" {
		t.Fatalf("replay: %d %v %v, first id %v", again.status, again.header, again.body, first.body["id"])
	}
	if n := len(b.sentIDs()); n != 1 {
		t.Fatalf("%d messages sent, want 1", n)
	}
	for _, c := range []struct{ path, body string }{
		{"/v1/publish", `{"channel":"room","data":{"a":2,"b":[1.50,2]}}`},
		{"/v1/publish", `{"channel":"room","data":{"a":1,"b":[1.5,2]}}`},
		{"/v1/broadcast", `{"data":{"a":1,"b":[1.50,2]}}`},
	} {
		if got := do("POST", c.path, "k1", c.body); got.status != http.StatusUnprocessableEntity || got.code() != "idempotency_key_reused" {
			t.Errorf("%s %s: %d %v", c.path, c.body, got.status, got.body)
		}
	}
	// Without a key, or with another, a request acts.
	if a, b := do("POST", "/v1/publish", "", `{"channel":"room","data":1}`), do("POST", "/v1/publish", "k2", `{"channel":"room","data":1}`); a.body["id"] == b.body["id"] || a.status != 200 || b.status != 200 {
		t.Fatalf("%v %v", a.body, b.body)
	}
	if n := len(b.sentIDs()); n != 3 {
		t.Fatalf("%d messages sent, want 3", n)
	}
}

func TestIdempotencyKeyForm(t *testing.T) {
	t.Parallel()
	do := serve(t, newMemBackend(), Config{})
	for _, key := range []string{strings.Repeat("k", 256), "caf\u00e9", "a\x01b"} {
		if got := do("POST", "/v1/broadcast", key, `{"data":1}`); got.status != 400 || got.code() != "invalid_idempotency_key" {
			t.Errorf("key %q: %d %v", key, got.status, got.body)
		}
	}
	for _, key := range []string{strings.Repeat("k", 255), "order 42/retry:1", "7b1c2d8e-4f0a-4b6e-9c3d-2a1f0e9d8c7b"} {
		if got := do("POST", "/v1/broadcast", key, `{"data":1}`); got.status != 200 {
			t.Errorf("key %q: %d %v", key, got.status, got.body)
		}
	}
}

// Concurrent requests with one key: one acts, the others wait for it and
// answer its result.
func TestIdempotentConcurrent(t *testing.T) {
	t.Parallel()
	b := newMemBackend()
	do := serve(t, b, Config{})
	const n = 16
	results := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = do("POST", "/v1/send", "same", `{"users":["a","b","c"],"data":"x"}`) })
	}
	wg.Wait()
	replays := 0
	for _, r := range results {
		if r.status != 200 || fmt.Sprint(r.body["ids"]) != fmt.Sprint(results[0].body["ids"]) {
			t.Fatalf("%d %v, want the ids %v", r.status, r.body, results[0].body["ids"])
		}
		if r.header.Get(ReplayedHeader) == "true" {
			replays++
		}
	}
	if got := len(b.sentIDs()); got != 3 || replays != n-1 {
		t.Fatalf("%d messages sent (want 3), %d replays (want %d)", got, replays, n-1)
	}
}

// A request that waits too long for another with its key is told so, and
// its retry gets the result once the first is done.
func TestIdempotentInProgress(t *testing.T) {
	t.Parallel()
	b := newMemBackend()
	b.hold, b.entered = make(chan struct{}), make(chan struct{}, 1)
	do := serve(t, b, Config{InProgressWait: 50 * time.Millisecond})
	first := make(chan response, 1)
	go func() { first <- do("POST", "/v1/broadcast", "slow", `{"data":1}`) }()
	<-b.entered
	busy := do("POST", "/v1/broadcast", "slow", `{"data":1}`)
	if busy.status != http.StatusConflict || busy.code() != "idempotency_in_progress" || busy.header.Get("Retry-After") == "" {
		t.Fatalf("while running: %d %v %v", busy.status, busy.header, busy.body)
	}
	close(b.hold)
	f := <-first
	if again := do("POST", "/v1/broadcast", "slow", `{"data":1}`); again.status != 200 || again.body["id"] != f.body["id"] {
		t.Fatalf("after: %d %v, first %v", again.status, again.body, f.body)
	}
}

// A push the store refused keeps its key's claim: the retry sends the
// message, once, with the id the first call chose.
func TestIdempotentFailureRetries(t *testing.T) {
	t.Parallel()
	b := newMemBackend()
	b.fail["bob"] = true
	do := serve(t, b, Config{})
	if got := do("POST", "/v1/send", "k", `{"to":"bob","data":1}`); got.status != 503 || got.code() != "storage_failed" {
		t.Fatalf("failing: %d %v", got.status, got.body)
	}
	b.mu.Lock()
	b.fail["bob"] = false
	b.mu.Unlock()
	b.mu.Lock()
	claimed := string(b.keys[claimPrefix+"k"][1])
	b.mu.Unlock()
	got := do("POST", "/v1/send", "k", `{"to":"bob","data":1}`)
	if got.status != 200 || got.header.Get(ReplayedHeader) != "" || len(b.sentIDs()) != 1 {
		t.Fatalf("retry: %d %v, sent %v", got.status, got.body, b.sentIDs())
	}
	if id, _ := got.body["id"].(string); id == "" || !strings.Contains(claimed, id) {
		t.Fatalf("the retry sent %v, not the id the failed call claimed (%s)", got.body["id"], claimed)
	}
}

// A batch partly stored answers which messages were; its retry with the
// key sends only the others, with the ids of the first call.
func TestBatchPartialFailure(t *testing.T) {
	t.Parallel()
	b := newMemBackend()
	b.fail["bob"], b.fail["dan"] = true, true
	do := serve(t, b, Config{})
	body := `{"users":["alice","bob","carol","dan"],"data":1}`
	part := do("POST", "/v1/send", "batch", body)
	ids, _ := part.body["ids"].([]any)
	if part.status != 503 || part.code() != "partially_sent" || len(ids) != 4 || ids[0] == "" || ids[1] != "" || ids[2] == "" || ids[3] != "" ||
		fmt.Sprint(part.body["failed"]) != "[bob dan]" {
		t.Fatalf("partial: %d %v", part.status, part.body)
	}
	b.mu.Lock()
	clear(b.fail)
	b.mu.Unlock()
	full := do("POST", "/v1/send", "batch", body)
	all, _ := full.body["ids"].([]any)
	if full.status != 200 || len(all) != 4 || all[0] != ids[0] || all[2] != ids[2] {
		t.Fatalf("retry: %d %v, first %v", full.status, full.body, part.body)
	}
	sent := b.sentIDs()
	slices.Sort(sent)
	want := []string{all[0].(string), all[1].(string), all[2].(string), all[3].(string)}
	slices.Sort(want)
	if !slices.Equal(sent, want) {
		t.Fatalf("sent %v, want each of %v once", sent, all)
	}
	if again := do("POST", "/v1/send", "batch", body); again.status != 200 || again.header.Get(ReplayedHeader) != "true" || len(b.sentIDs()) != 4 {
		t.Fatalf("replay: %d %v", again.status, again.body)
	}
	// Without a key, the same answer tells the caller whom to retry.
	b.mu.Lock()
	b.fail["carol"] = true
	b.mu.Unlock()
	if got := do("POST", "/v1/send", "", body); got.status != 503 || fmt.Sprint(got.body["failed"]) != "[carol]" {
		t.Fatalf("without a key: %d %v", got.status, got.body)
	}
}

// A claim left without its done mark (the server stopped part way) is
// finished by the retry with the claim's ids.
func TestIdempotentResume(t *testing.T) {
	t.Parallel()
	b := newMemBackend()
	do := serve(t, b, Config{})
	first := do("POST", "/v1/send", "k", `{"users":["a","b"],"data":1}`)
	// As if the server had stopped after storing the first message.
	b.mu.Lock()
	delete(b.keys, donePrefix+"k")
	b.sent = b.sent[:1]
	b.mu.Unlock()
	got := do("POST", "/v1/send", "k", `{"users":["a","b"],"data":1}`)
	if got.status != 200 || fmt.Sprint(got.body["ids"]) != fmt.Sprint(first.body["ids"]) {
		t.Fatalf("resume: %d %v, first %v", got.status, got.body, first.body)
	}
	sent := b.sentIDs()
	slices.Sort(sent)
	if fmt.Sprint(sent) != fmt.Sprint(first.body["ids"]) {
		t.Fatalf("sent %v, want %v", sent, first.body["ids"])
	}
	b.mu.Lock()
	_, done := b.keys[donePrefix+"k"]
	b.mu.Unlock()
	if !done {
		t.Fatal("the finished claim is not marked done")
	}
}
