// Package poll waits in tests for a condition that becomes true in the
// background: a message delivered, a node gone, a count reached. Tests
// poll with a deadline rather than sleep, so that they are as fast as the
// system and fail with the last reason the condition gave.
package poll

import (
	"testing"
	"time"
)

// Until calls f every step until it returns nil, and fails t with f's last
// error once total has passed.
func Until(t testing.TB, total, step time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", total, err)
		}
		time.Sleep(step)
	}
}
