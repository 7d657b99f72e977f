package server

import (
	"context"
	"errors"
	"time"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/store"
)

// What the server API reads and writes in the store: idempotency keys,
// receipts, channel history and inboxes.

// Remember keeps an idempotency key for the configured window.
func (b backend) Remember(ctx context.Context, key string, hash, result []byte) ([]byte, bool, error) {
	held, fresh, err := b.store.Remember(ctx, key, hash, result, time.Now(), b.cfg.IdempotencyWindow)
	if errors.Is(err, store.ErrIdempotencyConflict) {
		return nil, false, api.ErrKeyReused
	}
	return held, fresh, err
}

func (b backend) Forget(ctx context.Context, key string) error {
	return b.store.Forget(ctx, key)
}

func (b backend) Stored(ctx context.Context, id string) (bool, error) {
	if b.cfg.InboxTTL == 0 {
		return false, nil
	}
	_, err := b.store.Receipt(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
