package session

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
)

// countingTransport counts what it is asked to write.
type countingTransport struct {
	writes  atomic.Int64
	frames  atomic.Int64
	bytes   atomic.Int64
	closed  atomic.Pointer[protocol.Disconnect]
	aborted atomic.Bool
	full    atomic.Bool // the socket takes nothing
}

func (c *countingTransport) Wire() protocol.Wire { return protocol.WireWebSocket }
func (c *countingTransport) RemoteAddr() string  { return "test" }
func (c *countingTransport) Write(frames [][]byte) (int, error) {
	if c.full.Load() {
		return 0, nil
	}
	c.writes.Add(1)
	c.frames.Add(int64(len(frames)))
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	c.bytes.Add(int64(n))
	return n, nil
}
func (c *countingTransport) Abort() {
	c.aborted.Store(true)
	c.closed.Store(&protocol.Disconnect{Reason: "aborted"})
}
func (c *countingTransport) Close(d protocol.Disconnect) error {
	c.closed.Store(&d)
	return nil
}

type nopNode struct{}

func (nopNode) Authenticate(context.Context, *Session, *protocol.Request) (Identity, *protocol.Error) {
	return Identity{User: "u"}, nil
}
func (nopNode) Register(_ *Session, reply func(*protocol.InboxState)) *protocol.Error {
	reply(nil)
	return nil
}
func (nopNode) ConnectRefused(*Session, string, *protocol.Error) {}
func (nopNode) Unregister(*Session, []string)                    {}
func (nopNode) Subscribe(_ context.Context, _ *Session, _ *protocol.Request, reply func(any)) *protocol.Error {
	reply(nil)
	return nil
}
func (nopNode) Ack(context.Context, *Session, uint64) *protocol.Error { return nil }
func (nopNode) Unsubscribe(*Session, string)                          {}
func (nopNode) Route(context.Context, *Session, *protocol.Request) (string, *protocol.Error) {
	return "id", nil
}
func (nopNode) Presence(_ context.Context, _ *Session, ch string) (protocol.PresenceResult, *protocol.Error) {
	return protocol.NewPresenceResult(ch, nil), nil
}

func testLimits() Limits {
	return Limits{
		PingInterval: time.Minute, PongTimeout: time.Minute, HandshakeTimeout: time.Minute,
		MaxFrameBytes: 1 << 16, MaxOutboundBytes: 1 << 20, OpsPerSecond: 1e6, OpsBurst: 1e6,
		PublishPerSecond: 1e6, PublishBurst: 1e6,
	}
}

func runManager(tb testing.TB, m *Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
}

func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
}

// Frames queued while a session waits for a writer go out together.
func TestFlushCoalesces(t *testing.T) {
	m := NewManager(testLimits(), nopNode{}, slog.New(slog.NewTextHandler(io.Discard, nil)), 1)
	tr := &countingTransport{}
	s := m.Open(tr)
	f := (&protocol.Message{ID: "x", Kind: protocol.KindBroadcast, Data: []byte("1")}).Frame()
	for range 100 {
		s.Deliver(f) // no writer is running yet: all of these queue
	}
	runManager(t, m)
	waitFor(t, func() bool { return tr.frames.Load() == 100 })
	if w := tr.writes.Load(); w != 1 {
		t.Fatalf("100 queued frames took %d writes", w)
	}
}

// A queue past its byte bound disconnects the session as a slow consumer
// without writing what was queued.
func TestOutboundBound(t *testing.T) {
	l := testLimits()
	l.MaxOutboundBytes = 1000
	m := NewManager(l, nopNode{}, slog.New(slog.NewTextHandler(io.Discard, nil)), 1)
	tr := &countingTransport{}
	s := m.Open(tr)
	big := (&protocol.Message{ID: "x", Kind: protocol.KindBroadcast, Data: []byte(`"0123456789012345678901234567890123456789"`)}).Frame()
	for range 100 {
		s.Deliver(big)
	}
	runManager(t, m)
	waitFor(t, func() bool { return tr.closed.Load() != nil })
	if d := s.reason.Load(); !tr.aborted.Load() || d.Code != protocol.DisconnectSlowConsumer.Code {
		t.Fatalf("aborted %v, reason %+v", tr.aborted.Load(), d)
	}
	if tr.frames.Load() != 0 || m.Metrics().SlowConsumers.Load() != 1 {
		t.Fatalf("frames written %d, slow consumers %d", tr.frames.Load(), m.Metrics().SlowConsumers.Load())
	}
}

// A backlog (a recovery, an inbox) may pass the outbound bound while it is
// queued: the client is owed it. Once the queue has drained, the bound
// applies again.
func TestBacklogAllowance(t *testing.T) {
	l := testLimits()
	l.MaxOutboundBytes = 1000
	m := NewManager(l, nopNode{}, slog.New(slog.NewTextHandler(io.Discard, nil)), 1)
	tr := &countingTransport{}
	s := m.Open(tr)
	big := (&protocol.Message{ID: "x", Kind: protocol.KindBroadcast, Data: []byte(`"0123456789012345678901234567890123456789"`)}).Frame()
	backlog := make([]*protocol.Frame, 100)
	for i := range backlog {
		backlog[i] = big
	}
	s.DeliverBacklog(backlog)
	s.Deliver(big) // live, behind the backlog, within the bound
	runManager(t, m)
	waitFor(t, func() bool { return tr.frames.Load() == 101 })
	if tr.aborted.Load() {
		t.Fatal("a backlog past the outbound bound dropped the client")
	}
	// Drained, the bound applies again: a client that stops reading is
	// dropped when its queue passes it.
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.scheduled && s.allowance == 0
	})
	tr.full.Store(true)
	for range 100 {
		s.Deliver(big)
	}
	waitFor(t, func() bool { return tr.aborted.Load() })
}

// BenchmarkDeliver measures the per-recipient cost of fan-out through
// sessions: queueing a shared frame and the writers draining the queues.
func BenchmarkDeliver(b *testing.B) {
	const sessions = 1000
	m := NewManager(testLimits(), nopNode{}, slog.New(slog.NewTextHandler(io.Discard, nil)), 2)
	runManager(b, m)
	trs := make([]*countingTransport, sessions)
	ss := make([]*Session, sessions)
	for i := range ss {
		trs[i] = &countingTransport{}
		ss[i] = m.Open(trs[i])
	}
	f := (&protocol.Message{ID: "x", Kind: protocol.KindChannel, Channel: "c", Data: []byte(`{"text":"hello"}`)}).Frame()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, s := range ss {
			s.Deliver(f)
		}
	}
	want := int64(b.N * sessions)
	waitFor(b, func() bool {
		var n int64
		for _, tr := range trs {
			n += tr.frames.Load()
		}
		return n == want
	})
	b.StopTimer()
	var writes int64
	for _, tr := range trs {
		writes += tr.writes.Load()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(want), "ns/delivery")
	b.ReportMetric(float64(want)/float64(writes), "frames/write")
}

// A session whose client is leaving writes what is queued, then has the
// transport close with the given disconnect, writing no disconnect frame;
// nothing queued after it goes out.
func TestLeave(t *testing.T) {
	m := NewManager(testLimits(), nopNode{}, slog.New(slog.NewTextHandler(io.Discard, nil)), 1)
	tr := &countingTransport{}
	s := m.Open(tr)
	f := (&protocol.Message{ID: "x", Kind: protocol.KindBroadcast, Data: []byte("1")}).Frame()
	s.Deliver(f)
	s.Deliver(f)
	bye := protocol.Disconnect{Code: 1000, Reason: "client_closed"}
	s.Leave(bye)
	s.Deliver(f)
	s.Close(protocol.DisconnectShutdown)
	runManager(t, m)
	waitFor(t, func() bool { return tr.closed.Load() != nil })
	if d := tr.closed.Load(); *d != bye || tr.aborted.Load() {
		t.Fatalf("closed with %+v (aborted %v), want %+v", *d, tr.aborted.Load(), bye)
	}
	if n := tr.frames.Load(); n != 2 {
		t.Fatalf("%d frames written, want the 2 queued before leaving", n)
	}
	if r := s.reason.Load(); r == nil || *r != bye {
		t.Fatalf("reason %+v, want %+v", r, bye)
	}
}
