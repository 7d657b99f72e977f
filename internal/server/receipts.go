package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/store"
)

// receiptLog records, off the delivery path, which inbox messages were
// handed to which device: delivery goes on at full speed, and the store
// gets one write per device per batch, whatever the number of messages.
// Marks are informational (an ack is what moves a device's position), so
// when the store falls far behind, marks are dropped rather than
// delivery slowed; the ack still records the message as delivered.
type receiptLog struct {
	st  store.Receipts
	log *slog.Logger

	mu      sync.Mutex
	pending map[deviceKey]deliveredMark
	wake    chan struct{}
	dropped int64
}

type deviceKey struct{ user, device string }

type deliveredMark struct {
	seq uint64
	at  time.Time
}

// maxPendingMarks bounds the devices waiting for a delivered mark.
const maxPendingMarks = 100_000

func newReceiptLog(st store.Receipts, log *slog.Logger) *receiptLog {
	return &receiptLog{st: st, log: log, pending: make(map[deviceKey]deliveredMark), wake: make(chan struct{}, 1)}
}

// delivered notes that device was handed user's inbox up to seq now.
func (r *receiptLog) delivered(user, device string, seq uint64) {
	k := deviceKey{user, device}
	r.mu.Lock()
	m, ok := r.pending[k]
	switch {
	case ok && m.seq >= seq:
	case ok || len(r.pending) < maxPendingMarks:
		// Marks merged while waiting take the latest time: a message may
		// be recorded as delivered a little late, never early.
		r.pending[k] = deliveredMark{seq: seq, at: time.Now()}
	default:
		r.dropped++
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run writes the marks as they come until ctx ends, then the last ones.
func (r *receiptLog) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			r.flush(context.Background())
			return
		case <-r.wake:
			r.flush(ctx)
		}
	}
}

func (r *receiptLog) flush(ctx context.Context) {
	r.mu.Lock()
	batch, dropped := r.pending, r.dropped
	r.pending, r.dropped = make(map[deviceKey]deliveredMark, len(batch)), 0
	r.mu.Unlock()
	if dropped > 0 {
		r.log.Warn("delivery receipts fell behind: some delivered times were not recorded", "dropped", dropped)
	}
	for k, m := range batch {
		if err := r.st.Delivered(ctx, k.user, k.device, m.seq, m.at); err != nil && ctx.Err() == nil {
			r.log.Warn("record delivery", "user", k.user, "device", k.device, "seq", m.seq, "err", err)
		}
	}
}
