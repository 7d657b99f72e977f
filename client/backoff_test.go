package client

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	const lo, hi = 500 * time.Millisecond, 30 * time.Second
	for n := range 40 {
		base := min(lo<<min(n, 20), hi)
		for range 100 {
			d := backoff(lo, hi, n)
			if d < base/2 || d > hi || d > base*3/2 {
				t.Fatalf("backoff(%s, %s, %d) = %s, want within [%s, min(%s, %s)]", lo, hi, n, d, base/2, base*3/2, hi)
			}
		}
	}
}
