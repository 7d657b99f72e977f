package bench

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Across the whole range a quantile is off by at most 1/128 of the value
// (two significant digits), and values past maxTracked still count, with
// Max exact.
func TestResolution(t *testing.T) {
	t.Parallel()
	for _, v := range []time.Duration{1, 127, 128, 255, 256, 257, 511, 512, 1000, 1 << 20, 123456789, maxTracked} {
		h := NewHistogram()
		for i := range 1000 {
			h.Record(i, v)
		}
		h.Record(0, 10*v) // Max, so that the median is not clamped to it
		s := h.Snapshot()
		got := s.Quantile(0.5)
		if got < v || float64(got-v) > float64(v)/128 {
			t.Errorf("median of %d is %d: off by more than 1/128", v, got)
		}
	}
	h := NewHistogram()
	h.Record(0, time.Millisecond)
	h.Record(1, maxTracked*4)
	s := h.Snapshot()
	if s.Count != 2 || s.Max != maxTracked*4 {
		t.Errorf("count %d max %v, want 2 and %v", s.Count, s.Max, time.Duration(maxTracked*4))
	}
	if q := s.Quantile(0.99); q < maxTracked || float64(q-maxTracked) > maxTracked/128 {
		t.Errorf("q0.99 = %v, want the largest tracked value %v", q, time.Duration(maxTracked))
	}
}

func TestQuantilesAgainstExact(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	var vals []time.Duration
	for i := range 50000 {
		// A long-tailed mix: mostly around 1ms, some up to a second.
		v := time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		if i%100 == 0 {
			v = time.Duration(r.Float64() * float64(time.Second))
		}
		vals = append(vals, v)
		h.Record(i, v)
	}
	slices.Sort(vals)
	s := h.Snapshot()
	if s.Count != uint64(len(vals)) || s.Min != vals[0] || s.Max != vals[len(vals)-1] {
		t.Fatalf("count %d min %v max %v, want %d %v %v", s.Count, s.Min, s.Max, len(vals), vals[0], vals[len(vals)-1])
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(float64(len(vals))*q+0.999999)-1]
		got := s.Quantile(q)
		if diff := float64(got-exact) / float64(exact); diff > 0.01 || diff < -0.01 {
			t.Errorf("q%v = %v, exact %v: off by %.2f%%", q, got, exact, diff*100)
		}
	}
	if s.Quantile(1) != s.Max {
		t.Errorf("q1 = %v, want max %v", s.Quantile(1), s.Max)
	}
	var binned uint64
	for _, b := range s.Bins(10) {
		binned += b.Count
		if b.HighMs <= b.LowMs {
			t.Errorf("bin [%v, %v) is empty or reversed", b.LowMs, b.HighMs)
		}
	}
	if binned != s.Count {
		t.Errorf("bins hold %d, want %d", binned, s.Count)
	}
}

func TestHistogramConcurrentAndEdges(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	if s := h.Snapshot(); s.Quantile(0.5) != 0 || s.Mean() != 0 || s.Bins(10) != nil {
		t.Error("an empty histogram reports values")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Record(g, time.Duration(i)*time.Microsecond)
			}
		}()
	}
	wg.Wait()
	h.Record(-1, -time.Second) // a clock step counts as 0
	s := h.Snapshot()
	if s.Count != 8001 || s.Min != 0 || s.Max != 999*time.Microsecond {
		t.Errorf("count %d min %v max %v, want 8001 0 999µs", s.Count, s.Min, s.Max)
	}
}

// BenchmarkRecord is the latency recording on the load tool's delivery
// path: many readers at once, each recording on the shard of its client.
func BenchmarkRecord(b *testing.B) {
	h := NewHistogram()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		shard := int(next.Add(1))
		v := time.Duration(shard) * 97 * time.Microsecond
		for pb.Next() {
			h.Record(shard, v)
			v = (v + 13*time.Microsecond) % (200 * time.Millisecond)
		}
	})
}

// BenchmarkDeliver is a reader's whole bookkeeping for one delivery:
// latency, count and time of the last.
func BenchmarkDeliver(b *testing.B) {
	s := newSink()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		shard := int(next.Add(1))
		sent := time.Now().UnixNano() - int64(time.Millisecond)
		for pb.Next() {
			s.deliver(shard, sent)
		}
	})
}
