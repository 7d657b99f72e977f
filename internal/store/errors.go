package store

import "errors"

// Sentinel errors shared by every implementation; compare with errors.Is.
var (
	// ErrInvalidName: a channel, user, device or key is empty or contains a
	// NUL byte.
	ErrInvalidName = errors.New("store: invalid name")
	// ErrInvalidLimit: a read was asked for zero or fewer records.
	ErrInvalidLimit = errors.New("store: limit must be positive")
	// ErrEmptyBatch: AppendBatch was given no records.
	ErrEmptyBatch = errors.New("store: empty batch")
	// ErrAckBackwards: an acknowledgement below the device's position. The
	// position is unchanged; acknowledging the position itself again is not
	// an error.
	ErrAckBackwards = errors.New("store: acknowledgement goes backwards")
	// ErrAckBeyondEnd: an acknowledgement (or a delivery) above the last
	// sequence of the user's inbox. The position is unchanged.
	ErrAckBeyondEnd = errors.New("store: acknowledgement beyond the end of the inbox")
	// ErrNotFound: no receipt for a message id: it was never pushed, or its
	// receipt was dropped.
	ErrNotFound = errors.New("store: not found")
	// ErrIdempotencyConflict: an idempotency key reused within its window
	// with a different body.
	ErrIdempotencyConflict = errors.New("store: idempotency key reused with a different body")
	// ErrClosed: the store was used after Close.
	ErrClosed = errors.New("store: closed")
	// ErrNewerFormat: the data directory was written by a newer version.
	ErrNewerFormat = errors.New("store: data written by a newer version")
	// ErrDamaged: the store found a damaged file; it serves nothing more
	// until the directory is repaired or restored.
	ErrDamaged = errors.New("store: damaged data")
	// ErrLocked: the data directory is held by another running process.
	ErrLocked = errors.New("store: data directory in use by another process")
)
