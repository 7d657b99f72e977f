package client

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff returns the wait before reconnect attempt n (from 0): min doubled
// n times, capped at max, then drawn from [d/2, 3d/2) and capped at max
// again, so that clients dropped together do not return together.
func backoff(min, max time.Duration, n int) time.Duration {
	d := min
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.5 + rand.Float64()))
	return clamp(d, min/2, max)
}

func clamp(d, lo, hi time.Duration) time.Duration {
	return max(lo, min(d, hi))
}

// sleep waits for d or the end of ctx; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
