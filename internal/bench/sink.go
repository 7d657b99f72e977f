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

	expected     atomic.Int64 // deliveries that complete the run; 0: open-ended
	complete     chan struct{}
	completeOnce sync.Once

	errs errorLog
}

func newSink() *sink {
	return &sink{hist: NewHistogram(), complete: make(chan struct{})}
}

// expect sets the number of deliveries that completes the run.
func (s *sink) expect(n int64) { s.expected.Store(n) }

// deliver records one stamped message received by the client numbered
// shard.
func (s *sink) deliver(shard int, sentAt int64) {
	now := time.Now().UnixNano()
	s.hist.Record(shard, time.Duration(now-sentAt))
	n := s.delivered.Add(1)
	s.lastAt.Store(now)
	if e := s.expected.Load(); e > 0 && n >= e {
		s.completeOnce.Do(func() { close(s.complete) })
	}
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
