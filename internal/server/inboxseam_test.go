package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// A device that drops its connection at random points while direct
// messages keep coming, acknowledging as it goes, and connects again each
// time: every connection brings, in sequence order and with no gap, what
// the device has not acknowledged and then the live messages. Messages
// come again only when they were not acknowledged, with the same id, so
// the application, dropping what it has seen by id, sees every message
// exactly once, in the order it was sent.
func TestInboxSeamUnderLoad(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	cfg.InboxMaxMessages = 10000
	cfg.InboxMaxBytes = 10 << 20
	srv := startServer(t, cfg)
	api := newAPI(t, srv)
	const senders, each, total = 4, 250, 4 * 250
	var mu sync.Mutex
	accepted := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	done := postAll(ctx, t, api.base+"/v1/send", senders, each, func(p, i int) string {
		return fmt.Sprintf(`{"to":"bob","data":{"p":%d,"i":%d}}`, p, i)
	}, func(id string) {
		mu.Lock()
		accepted[id] = true
		mu.Unlock()
	})
	defer func() { cancel(); <-done }()

	var acked, last uint64 // acknowledged (confirmed), and the highest seen
	ids := map[uint64]string{}
	next := make([]int, senders) // the i each sender's next message carries
	redelivered := 0
	for round := 0; acked < total; round++ {
		if round > 2000 {
			t.Fatalf("no end after %d rounds, at seq %d", round, acked)
		}
		c := transports[round%2].dial(t, srv)
		if st := c.connectDevice("bob", "phone"); st.Acked != acked || st.Missed != 0 {
			t.Fatalf("round %d: inbox %+v, want acked %d with nothing missed", round, st, acked)
		}
		prev := acked // a connection's stream has no gap after the position
		for n := range round%7*9 + 1 {
			if prev == total {
				break
			}
			f := c.expect("message")
			id := mustIDRaw(t, f)
			switch {
			case f.Seq != prev+1:
				t.Fatalf("round %d: seq %d after %d: %s", round, f.Seq, prev, f.raw)
			case f.Seq <= last:
				// Sent before and not acknowledged: the same message.
				if ids[f.Seq] != id {
					t.Fatalf("round %d: seq %d came again as %s, was %s", round, f.Seq, id, ids[f.Seq])
				}
				redelivered++
			default:
				var d struct{ P, I int }
				if err := json.Unmarshal(f.Data, &d); err != nil || d.P < 0 || d.P >= senders || d.I != next[d.P] {
					t.Fatalf("round %d: %s out of its sender's order (want i %v)", round, f.raw, next)
				}
				next[d.P]++
				ids[f.Seq], last = id, f.Seq
			}
			prev = f.Seq
			if n%5 == 4 || prev == total {
				c.reply(c.send(map[string]any{"op": "ack", "seq": prev}))
				acked = prev
			}
		}
		c.close()
	}
	<-done
	if len(ids) != total || len(accepted) != total {
		t.Fatalf("saw %d messages, %d accepted, want %d", len(ids), len(accepted), total)
	}
	for _, id := range ids {
		if !accepted[id] {
			t.Fatalf("message %s was never sent", id)
		}
	}
	t.Logf("%d messages came again, unacknowledged", redelivered)
}

// postAll has writers each POST body(w, i) to url for i from 0 to each-1,
// in turn, until ctx ends; answered (unless nil) gets the id of every call
// answered 200. The channel closes once every writer is done.
func postAll(ctx context.Context, t *testing.T, url string, writers, each int, body func(w, i int) string, answered func(id string)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body(w, i)))
					resp, err := http.DefaultClient.Do(req)
					if ctx.Err() != nil {
						return
					}
					if err != nil || resp.StatusCode != 200 {
						t.Errorf("POST %s: %v %v", url, err, resp)
						return
					}
					var out struct{ ID string }
					err = json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if err != nil {
						t.Errorf("POST %s: %v", url, err)
						return
					}
					if answered != nil {
						answered(out.ID)
					}
				}
			})
		}
		wg.Wait()
	}()
	return done
}
