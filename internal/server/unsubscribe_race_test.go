package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
	"github.com/heraldpush/herald/internal/session/sessiontest"
)

// recordingTransport records what a session writes, and how far the test
// has read it.
type recordingTransport struct {
	sessiontest.Recorder
	seen int // replyTo looks from here on; only the test goroutine uses it
}

// recorded is a server frame as the tests read it.
type recorded struct {
	Type    string `json:"type"`
	ID      uint64 `json:"id"`
	Channel string `json:"channel"`
	Error   *struct {
		Code string `json:"code"`
	} `json:"error"`
}

// find waits for the first frame at index from or later that match accepts
// and returns its index.
func (r *recordingTransport) find(t *testing.T, from int, what string, match func(recorded) bool) (int, recorded) {
	t.Helper()
	at, found := -1, recorded{}
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		frames := r.Frames()
		for i := from; i < len(frames); i++ {
			var f recorded
			if err := json.Unmarshal([]byte(frames[i]), &f); err != nil {
				return fmt.Errorf("bad frame %q: %w", frames[i], err)
			}
			if match(f) {
				at, found = i, f
				return nil
			}
		}
		return fmt.Errorf("no %s among %q", what, frames[min(from, len(frames)):])
	})
	return at, found
}

func isReply(id uint64) func(recorded) bool {
	return func(f recorded) bool { return f.Type == "reply" && f.ID == id }
}

// replyTo waits for the reply to id and returns its error code ("" for
// success). Replies come in request order, so each call looks only past
// the reply the previous call found.
func (r *recordingTransport) replyTo(t *testing.T, id uint64) string {
	t.Helper()
	i, f := r.find(t, r.seen, fmt.Sprint("reply to ", id), isReply(id))
	r.seen = i + 1
	if f.Error != nil {
		return f.Error.Code
	}
	return ""
}

// openSession opens a session on srv over a recording transport and
// connects it as user.
func openSession(t *testing.T, srv *Server, user string) (*session.Session, *recordingTransport) {
	t.Helper()
	tr := &recordingTransport{}
	s := srv.mgr.Open(tr)
	t.Cleanup(func() { s.Closed(nil) }) // before the server's shutdown, which waits for it
	s.HandleFrame([]byte(`{"id":1,"op":"connect","user":"` + user + `"}`))
	if code := tr.replyTo(t, 1); code != "" {
		t.Fatalf("connect: %s", code)
	}
	return s, tr
}

// channelHog is a hub subscriber that is no session; it only adds to the
// lock traffic on a channel's shard.
type channelHog struct{ _ byte } // not zero-sized, so its address is its own

func (channelHog) User() string              { return "" }
func (channelHog) Deliver(f *protocol.Frame) {}

// A client subscribing while the server API unsubscribes it from the same
// channel must end with the session's list and the hub agreeing: a session
// that believes it is subscribed but is not in the hub short-circuits every
// later subscribe and never receives the channel again.
func TestServerUnsubscribeRacesClientSubscribe(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.OpsPerSecond, cfg.OpsBurst = 1e6, 1e6
	srv := startServer(t, cfg)
	s, tr := openSession(t, srv, "racer")
	const ch = "room:race"
	sub := hub.Subscriber(s)

	// Another subscriber of the channel keeps its hub shard busy, as on a
	// real server: waiting for the shard lock is what lets the client's
	// subscribe slip in before the API's hub removal.
	stop := make(chan struct{})
	var hog sync.WaitGroup
	hog.Go(func() {
		var h channelHog
		for {
			select {
			case <-stop:
				return
			default:
			}
			srv.hub.Subscribe(&h, ch)
			srv.hub.Unsubscribe(&h, ch)
		}
	})
	defer func() { close(stop); hog.Wait() }()

	id := uint64(1)
	next := func() uint64 { id++; return id }
	frame := func(op string, id uint64) []byte {
		return []byte(fmt.Sprintf(`{"id":%d,"op":%q,"channel":%q}`, id, op, ch))
	}
	for round := range 300 {
		subscribed := next()
		s.HandleFrame(frame("subscribe", subscribed))
		if code := tr.replyTo(t, subscribed); code != "" {
			t.Fatalf("round %d: subscribe: %s", round, code)
		}

		from := tr.seen
		subID := next()
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			s.HandleFrame(frame("subscribe", subID))
		})
		wg.Go(func() {
			<-start
			backend{srv}.UnsubscribeUser(context.Background(), "racer", ch)
		})
		close(start)
		wg.Wait()

		if code := tr.replyTo(t, subID); code != "" {
			t.Fatalf("round %d: racing subscribe: %s", round, code)
		}
		// The unsubscribed push may come before or after that reply.
		at, _ := tr.find(t, from, "unsubscribed push", func(f recorded) bool { return f.Type == "unsubscribed" && f.Channel == ch })
		tr.seen = max(tr.seen, at+1)

		// Whether a publish would reach the session, and whether the
		// session believes it is subscribed (its unsubscribe succeeds).
		inHub := slices.Contains(srv.hub.ChannelSubscribers(ch), sub)
		unsubID := next()
		s.HandleFrame(frame("unsubscribe", unsubID))
		listed := tr.replyTo(t, unsubID) == ""
		if inHub != listed {
			t.Fatalf("round %d: session lists the channel: %v, hub holds the session: %v", round, listed, inHub)
		}
		if slices.Contains(srv.hub.ChannelSubscribers(ch), sub) {
			t.Fatalf("round %d: still in the hub after unsubscribing", round)
		}
	}
}
