package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hooks"
)

var webhookSecret = strings.Repeat("w", 32)

// receiptsBackend is a backend receiving the receipts webhook: it checks
// each post's signature and keeps the events.
type receiptsBackend struct {
	mu     sync.Mutex
	events []receiptEvent
}

func startReceiptsBackend(t *testing.T) (*receiptsBackend, string) {
	b := &receiptsBackend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := verifiedBody(t, w, r)
		if !ok {
			return
		}
		var batch struct{ Events []receiptEvent }
		if err := json.Unmarshal(body, &batch); err != nil {
			t.Errorf("webhook body %q: %v", body, err)
		}
		b.mu.Lock()
		b.events = append(b.events, batch.Events...)
		b.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return b, srv.URL
}

// covered returns the ids the events of typ for user's device cover, and
// the highest seq they reach.
func (b *receiptsBackend) covered(typ, user, device string) ([]string, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	var seq uint64
	for _, e := range b.events {
		if e.Type == typ && e.User == user && e.Device == device {
			ids = append(ids, e.IDs...)
			seq = max(seq, e.Seq)
			if e.At == 0 {
				return nil, 0
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), seq
}

// The server posts signed receipts as devices get and acknowledge their
// messages, from the backlog and live.
func TestReceiptsWebhook(t *testing.T) {
	t.Parallel()
	backend, url := startReceiptsBackend(t)
	cfg := testConfig()
	cfg.ReceiptsWebhook, cfg.ReceiptsWebhookSecret = url, webhookSecret
	srv := startServer(t, cfg)
	api := newAPI(t, srv)

	ids := sendN(t, api, "bob", 1, 2)
	phone := dialWS(t, srv)
	phone.connectDevice("bob", "phone")
	phone.expectDirect(1, 2)
	ids = append(ids, sendN(t, api, "bob", 3, 1)...)
	phone.expectDirect(3, 1)
	slices.Sort(ids)
	want := fmt.Sprint(ids)
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got, seq := backend.covered("delivered", "bob", "phone"); fmt.Sprint(got) != want || seq != 3 {
			return fmt.Errorf("delivered %v up to %d, want %s up to 3", got, seq, want)
		}
		return nil
	})
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 2}))
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 3}))
	// Acknowledging the position again moves nothing and tells nothing.
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 3}))
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got, seq := backend.covered("acked", "bob", "phone"); fmt.Sprint(got) != want || seq != 3 {
			return fmt.Errorf("acked %v up to %d, want %s up to 3", got, seq, want)
		}
		return nil
	})
	backend.mu.Lock()
	defer backend.mu.Unlock()
	acks := 0
	for _, e := range backend.events {
		if e.Type == "acked" {
			acks++
		}
	}
	if acks > 2 {
		t.Fatalf("%d ack events for two acks that moved: %+v", acks, backend.events)
	}
}

// A backend that hangs holds up neither delivery nor acknowledgements.
func TestReceiptsWebhookHung(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(hung.Close)
	cfg := testConfig()
	cfg.ReceiptsWebhook, cfg.ReceiptsWebhookSecret = hung.URL, webhookSecret
	srv := startServer(t, cfg)
	// Cleanups run last first: the backend answers before the server
	// shuts down.
	t.Cleanup(func() { close(release) })
	api := newAPI(t, srv)
	phone := dialWS(t, srv)
	phone.connectDevice("bob", "phone")
	sendN(t, api, "bob", 1, 50)
	phone.expectDirect(1, 50)
	phone.reply(phone.send(map[string]any{"op": "ack", "seq": 50}))
	laptop := dialWS(t, srv)
	if st := laptop.connectDevice("bob", "laptop"); st.Pending != 0 {
		t.Fatalf("laptop: %+v", st)
	}
}

// verifiedBody reads a webhook post and checks its signature; a post
// whose signature fails the test and is answered 401.
func verifiedBody(t *testing.T, w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, _ := io.ReadAll(r.Body)
	if err := hooks.Verify([]byte(webhookSecret), r.Header.Get(hooks.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("webhook signature: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}
