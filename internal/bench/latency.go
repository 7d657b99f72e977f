package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records latencies from many goroutines at once, in bounded
// memory, with a relative error under 1%: a log-linear layout like HDR
// histograms, 128 linear sub-buckets per power of two. Recording is a few
// atomic adds on one of histShards shards, picked by the caller, so that
// readers of different connections rarely share a cache line.
type Histogram struct {
	shards [histShards]histShard
}

const (
	histShards = 16
	subBits    = 7
	subCount   = 1 << subBits // linear sub-buckets per power of two
	// maxTracked is the largest value given its own bucket (about 18
	// minutes in nanoseconds); larger ones land in the last bucket, and
	// Max still reports them exactly.
	maxTracked = 1<<40 - 1
	numBuckets = (40-subBits)*subCount + subCount
)

type histShard struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
	min    atomic.Uint64 // stored as ^v so that the zero value means "none"
	max    atomic.Uint64
	_      [64]byte // keep the next shard's hot fields off this cache line
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

// bucketOf returns the bucket index of v.
func bucketOf(v uint64) int {
	if v > maxTracked {
		v = maxTracked
	}
	if v < subCount*2 {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (low, width uint64) {
	if i < subCount*2 {
		return uint64(i), 1
	}
	shift := i/subCount - 1
	return uint64(subCount+i%subCount) << shift, 1 << shift
}

// Record adds one latency to shard (any int; it is reduced modulo the
// shard count). Negative durations, from clock steps, count as 0.
func (h *Histogram) Record(shard int, d time.Duration) {
	v := uint64(max(d, 0))
	s := &h.shards[uint(shard)%histShards]
	s.counts[bucketOf(v)].Add(1)
	s.total.Add(1)
	s.sum.Add(v)
	for {
		old := s.max.Load()
		if v <= old || s.max.CompareAndSwap(old, v) {
			break
		}
	}
	for {
		old := s.min.Load()
		if (old != 0 && v >= ^old) || s.min.CompareAndSwap(old, ^v) {
			break
		}
	}
}

// Snapshot is a merged, read-only copy of a Histogram.
type Snapshot struct {
	counts   []uint64
	Count    uint64
	Sum      time.Duration
	Min, Max time.Duration
}

// Snapshot merges the shards. It may run while others record; the result
// is then a recent state, consistent enough for a progress report.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{counts: make([]uint64, numBuckets)}
	minV := uint64(math.MaxUint64)
	for i := range h.shards {
		sh := &h.shards[i]
		for b := range sh.counts {
			s.counts[b] += sh.counts[b].Load()
		}
		s.Count += sh.total.Load()
		s.Sum += time.Duration(sh.sum.Load())
		s.Max = max(s.Max, time.Duration(sh.max.Load()))
		if m := sh.min.Load(); m != 0 {
			minV = min(minV, ^m)
		}
	}
	if s.Count > 0 {
		s.Min = time.Duration(minV)
	}
	return s
}

// Quantile returns the latency at quantile q (0 to 1): the middle of the
// bucket holding the ceil(q*Count)-th smallest value, clamped to [Min, Max].
// It returns 0 for an empty snapshot.
func (s Snapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	if q >= 1 {
		return s.Max
	}
	rank := uint64(math.Ceil(q * float64(s.Count)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			v := time.Duration(low + width/2)
			return min(max(v, s.Min), s.Max)
		}
	}
	return s.Max
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
	for i, c := range s.counts {
		if c == 0 {
			continue
		}
		low, width := bucketRange(i)
		mid := min(max(float64(low)+float64(width)/2, float64(s.Min)), float64(s.Max))
		k := min(max(binOf(mid)-first, 0), len(out)-1)
		out[k].Count += c
	}
	return out
}

// Bin is one bar of a latency chart: Count values in [LowMs, HighMs).
type Bin struct {
	LowMs  float64 `json:"low_ms"`
	HighMs float64 `json:"high_ms"`
	Count  uint64  `json:"count"`
}
