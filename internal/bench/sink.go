package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// sink collects what every client of a run observes: deliveries, their
// latencies, and errors.
type sink struct {
	hist      *Histogram
	delivered atomic.Int64 // stamped messages received
	foreign   atomic.Int64 // messages without a stamp (not ours)
	lastAt    atomic.Int64 // unix nanos of a recent delivery

	// noLatency leaves deliveries out of hist: set when they were sent
	// long before they could arrive (to clients that were away).
	noLatency bool

	expected atomic.Int64 // deliveries that complete the run; 0: open-ended
	mu       sync.Mutex
	complete chan struct{} // closed once expected deliveries arrived
	closed   bool

	errs errorLog
}

func newSink() *sink {
	return &sink{hist: NewHistogram(), complete: make(chan struct{})}
}

// expect sets the number of deliveries, counted from the start of the run,
// that completes it (or the current round of it).
func (s *sink) expect(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expected.Store(n)
	if s.closed {
		s.complete, s.closed = make(chan struct{}), false
	}
	s.checkLocked()
}

// done is closed once the expected deliveries arrived.
func (s *sink) done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.complete
}

// checkLocked closes complete once the expected deliveries arrived; mu
// held.
func (s *sink) checkLocked() {
	if e := s.expected.Load(); !s.closed && e > 0 && s.delivered.Load() >= e {
		close(s.complete)
		s.closed = true
	}
}

// deliver records one stamped message received by the client numbered
// shard, and returns when (unix nanos).
func (s *sink) deliver(shard int, sentAt int64) int64 {
	now := time.Now().UnixNano()
	if !s.noLatency {
		s.hist.Record(shard, time.Duration(now-sentAt))
	}
	n := s.delivered.Add(1)
	s.lastAt.Store(now)
	if e := s.expected.Load(); e > 0 && n >= e {
		s.mu.Lock()
		s.checkLocked()
		s.mu.Unlock()
	}
	return now
}

// errorLog counts errors by kind and keeps the first few in full.
type errorLog struct {
	mu      sync.Mutex
	counts  map[string]int64
	samples []string
}

// maxErrorSamples bounds the errors kept in full.
const maxErrorSamples = 10

// add counts one error of what was being done ("connect", "publish"),
// under the kind "<what>: <cause>" with the cause from classify.
func (l *errorLog) add(what string, err error) {
	kind := what + ": " + classify(err)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = make(map[string]int64)
	}
	// Keep one sample of each kind, the first, up to maxErrorSamples.
	if l.counts[kind] == 0 && len(l.samples) < maxErrorSamples {
		l.samples = append(l.samples, fmt.Sprintf("%s: %v", what, err))
	}
	l.counts[kind]++
}

// snapshot returns the counts and the samples, oldest first.
func (l *errorLog) snapshot() (map[string]int64, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.counts) == 0 {
		return nil, nil
	}
	counts := make(map[string]int64, len(l.counts))
	for k, v := range l.counts {
		counts[k] = v
	}
	return counts, append([]string(nil), l.samples...)
}
