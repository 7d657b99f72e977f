package bench

import (
	"math"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram records latencies from many goroutines at once, in bounded
// memory, with a relative error under 1%: an HDR histogram with two
// significant digits (128 linear sub-buckets per power of two) on each of
// histShards shards, picked by the caller, so that readers of different
// connections rarely wait for one another. Count, sum, minimum and maximum
// are kept exactly beside it.
type Histogram struct {
	shards [histShards]histShard
}

const (
	histShards = 16
	sigDigits  = 2
	// maxTracked is the largest value given its own bucket (about 18
	// minutes in nanoseconds); larger ones are counted as maxTracked, and
	// Max still reports them exactly.
	maxTracked = 1<<40 - 1
)

type histShard struct {
	mu       sync.Mutex
	h        *hdrhistogram.Histogram
	count    uint64
	sum      uint64 // nanoseconds
	min, max uint64
	_        [64]byte // keep the next shard's lock off this cache line
}

func newHDR() *hdrhistogram.Histogram { return hdrhistogram.New(1, maxTracked, sigDigits) }

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	for i := range h.shards {
		h.shards[i].h = newHDR()
	}
	return h
}

// Record adds one latency to shard (any int; it is reduced modulo the
// shard count). Negative durations, from clock steps, count as 0.
func (h *Histogram) Record(shard int, d time.Duration) {
	v := uint64(max(d, 0))
	s := &h.shards[uint(shard)%histShards]
	s.mu.Lock()
	// In range by construction, so RecordValue cannot fail.
	_ = s.h.RecordValue(int64(min(v, maxTracked)))
	if s.count == 0 || v < s.min {
		s.min = v
	}
	s.max = max(s.max, v)
	s.count++
	s.sum += v
	s.mu.Unlock()
}

// Snapshot is a merged, read-only copy of a Histogram.
type Snapshot struct {
	h        *hdrhistogram.Histogram
	Count    uint64
	Sum      time.Duration
	Min, Max time.Duration
}

// Snapshot merges the shards. It may run while others record; the result
// is then a recent state, consistent enough for a progress report.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{h: newHDR()}
	minV := uint64(math.MaxUint64)
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		s.h.Merge(sh.h)
		s.Count += sh.count
		s.Sum += time.Duration(sh.sum)
		s.Max = max(s.Max, time.Duration(sh.max))
		if sh.count > 0 {
			minV = min(minV, sh.min)
		}
		sh.mu.Unlock()
	}
	if s.Count > 0 {
		s.Min = time.Duration(minV)
	}
	return s
}

// Quantile returns the latency at quantile q (0 to 1): the highest value
// of the bucket holding the ceil(q*Count)-th smallest value, clamped to
// [Min, Max]. It returns 0 for an empty snapshot.
func (s Snapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	if q >= 1 {
		return s.Max
	}
	v := time.Duration(s.h.ValueAtQuantile(q * 100))
	return min(max(v, s.Min), s.Max)
}

// Mean is the average latency, 0 for an empty snapshot.
func (s Snapshot) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / time.Duration(s.Count)
}

// Bins groups the recorded values into log-spaced bins for a chart,
// perDecade bins per factor of ten, from the bin holding Min to the one
// holding Max. Each bucket falls in the bin that holds its middle value.
func (s Snapshot) Bins(perDecade int) []Bin {
	if s.Count == 0 || perDecade < 1 {
		return nil
	}
	binOf := func(v float64) int {
		return int(math.Floor(math.Log10(max(v, 1)) * float64(perDecade)))
	}
	edge := func(k int) float64 { return math.Pow(10, float64(k)/float64(perDecade)) }
	first, last := binOf(float64(s.Min)), binOf(float64(s.Max))
	out := make([]Bin, last-first+1)
	for k := range out {
		out[k].LowMs = edge(first+k) / 1e6
		out[k].HighMs = edge(first+k+1) / 1e6
	}
	for _, b := range s.h.Distribution() {
		if b.Count == 0 {
			continue
		}
		// [From, To] holds every value of the bucket, To included.
		mid := min(max(float64(b.From)+float64(b.To-b.From+1)/2, float64(s.Min)), float64(s.Max))
		k := min(max(binOf(mid)-first, 0), len(out)-1)
		out[k].Count += uint64(b.Count)
	}
	return out
}

// Bin is one bar of a latency chart: Count values in [LowMs, HighMs).
type Bin struct {
	LowMs  float64 `json:"low_ms"`
	HighMs float64 `json:"high_ms"`
	Count  uint64  `json:"count"`
}
