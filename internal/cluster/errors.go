package cluster

import "errors"

// Sentinel errors; compare with errors.Is.
var (
	// ErrInvalidNode: Options.Node is empty or holds a NUL byte.
	ErrInvalidNode = errors.New("cluster: invalid node id")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("cluster: registry already started")
	// ErrClosed: Start was called after Close.
	ErrClosed = errors.New("cluster: registry closed")

	// Why a node resyncs.
	errOverflow  = errors.New("queue of writes overflowed")
	errMalformed = errors.New("malformed answer from redis")
	errRefused   = errors.New("heartbeat refused: the node is not on record, dead, or of another generation")
)
