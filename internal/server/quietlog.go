package server

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// quietLog lets a failure that repeats with every request (the store or
// Redis unreachable) reach the log once a second, with the count of the
// same lines held back since, rather than once per request.
type quietLog struct {
	last atomic.Int64 // Unix nanoseconds of the last line let through
	held atomic.Int64
}

// quietEvery is how often a quietLog lets a line through.
const quietEvery = time.Second

// log writes msg at level unless a line went through less than
// quietEvery ago.
func (q *quietLog) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := q.last.Load()
	if now-last < int64(quietEvery) || !q.last.CompareAndSwap(last, now) {
		q.held.Add(1)
		return
	}
	if n := q.held.Swap(0); n > 0 {
		args = append(args, "similar_lines_held_back", n)
	}
	l.Log(context.Background(), level, msg, args...)
}
