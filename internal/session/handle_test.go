package session

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session/sessiontest"
)

// scriptedNode is a Node whose calls can be made to panic, and which records
// what the session registers and unregisters.
type scriptedNode struct {
	nopNode              // Presence
	panicIn atomic.Value // string: the method that panics, once
	authErr *protocol.Error

	mu           sync.Mutex
	registered   int
	unregistered [][]string
}

func (n *scriptedNode) maybePanic(method string) {
	if n.panicIn.CompareAndSwap(method, "") {
		panic("injected panic in " + method)
	}
}

func (n *scriptedNode) Authenticate(_ context.Context, _ *Session, req *protocol.Request) (Identity, *protocol.Error) {
	n.maybePanic("Authenticate")
	if n.authErr != nil {
		return Identity{}, n.authErr
	}
	return Identity{User: req.User}, nil
}

func (n *scriptedNode) ConnectRefused(*Session, string, *protocol.Error) {}

func (n *scriptedNode) Register(_ *Session, reply func(*protocol.InboxState)) *protocol.Error {
	n.maybePanic("Register")
	n.mu.Lock()
	n.registered++
	n.mu.Unlock()
	reply(nil)
	return nil
}

func (n *scriptedNode) Unregister(_ *Session, channels []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.unregistered = append(n.unregistered, slices.Clone(channels))
}

func (n *scriptedNode) Subscribe(_ context.Context, _ *Session, _ *protocol.Request, reply func(any)) *protocol.Error {
	n.maybePanic("Subscribe")
	reply(nil)
	return nil
}

func (n *scriptedNode) Ack(context.Context, *Session, uint64) *protocol.Error {
	n.maybePanic("Ack")
	return nil
}

func (n *scriptedNode) Unsubscribe(*Session, string) { n.maybePanic("Unsubscribe") }

func (n *scriptedNode) Route(context.Context, *Session, *protocol.Request) (string, *protocol.Error) {
	n.maybePanic("Route")
	return "id", nil
}

func newScripted(t *testing.T) (*Manager, *scriptedNode) {
	t.Helper()
	n := &scriptedNode{}
	n.panicIn.Store("")
	m := NewManager(testLimits(), n, slog.New(slog.NewTextHandler(io.Discard, nil)), 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			// Its sweeper is stuck on a session lock; leave it.
			t.Error("manager did not stop: its sweeper is blocked")
		}
	})
	return m, n
}

// handleRecovered feeds one frame the way the transport's worker pool does:
// a panic in the handler is recovered and returned.
func handleRecovered(s *Session, frame string) (panicked any) {
	defer func() { panicked = recover() }()
	s.HandleFrame([]byte(frame))
	return nil
}

// within runs fn and fails the test if it has not returned after d: a
// session lock left held would block it forever.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s still blocked after %s: a lock was left held", what, d)
	}
}

// A panic in any handler, recovered as the transport's worker pool does,
// leaves no session lock held: the sweeper's tick, further frames and the
// close path all proceed. The connection is ended as a server error, and
// its close unregisters every channel the hub may hold it in.
func TestHandlerPanicLeavesNoLockHeld(t *testing.T) {
	connect := `{"id":1,"op":"connect","user":"u"}`
	cases := []struct {
		method string
		setup  []string // frames before the one that panics
		frame  string
		subs   []string // channels the close must unregister
	}{
		{"Authenticate", nil, connect, nil},
		{"Register", nil, connect, nil},
		{"Subscribe", []string{connect}, `{"id":2,"op":"subscribe","channel":"c"}`, []string{"c", "d"}},
		{"Unsubscribe", []string{connect, `{"id":2,"op":"subscribe","channel":"c"}`},
			`{"id":3,"op":"unsubscribe","channel":"c"}`, []string{"c", "d"}},
		{"Route", []string{connect}, `{"id":2,"op":"publish","channel":"c","data":1}`, []string{"d"}},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			m, n := newScripted(t)
			tr := &sessiontest.Recorder{}
			s := m.Open(tr)
			for _, f := range tc.setup {
				if p := handleRecovered(s, f); p != nil {
					t.Fatalf("setup frame %s panicked: %v", f, p)
				}
			}
			n.panicIn.Store(tc.method)
			if p := handleRecovered(s, tc.frame); p == nil {
				t.Fatalf("the injected panic in %s did not happen", tc.method)
			}

			within(t, 5*time.Second, "tick", func() { s.tick(time.Now().UnixNano()) })
			within(t, 5*time.Second, "another frame", func() {
				if p := handleRecovered(s, `{"id":9,"op":"subscribe","channel":"d"}`); p != nil {
					t.Errorf("a frame after the panic panicked: %v", p)
				}
			})
			// The session closes the connection as a server error; then
			// the transport reports it closed.
			waitFor(t, func() bool { return tr.Closed() != nil })
			if d := tr.Closed(); *d != protocol.DisconnectServerError {
				t.Fatalf("closed with %+v, want server_error", d)
			}
			within(t, 5*time.Second, "Closed", func() { s.Closed(nil) })
			n.mu.Lock()
			defer n.mu.Unlock()
			if tc.subs == nil {
				if len(n.unregistered) != 0 {
					t.Fatalf("a session never registered was unregistered")
				}
				return
			}
			if len(n.unregistered) != 1 {
				t.Fatalf("a registered session was unregistered %d times", len(n.unregistered))
			}
			got := slices.Sorted(slices.Values(n.unregistered[0]))
			if !slices.Equal(got, tc.subs) {
				t.Fatalf("the close unregistered %q, want %q", got, tc.subs)
			}
		})
	}
}
