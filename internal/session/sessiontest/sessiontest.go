// Package sessiontest has a session transport for tests that drive a
// session without a socket.
package sessiontest

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/heraldpush/herald/internal/protocol"
)

// Recorder is a session transport that keeps every frame written to it and
// how the connection ended.
type Recorder struct {
	mu      sync.Mutex
	frames  []string
	closed  atomic.Pointer[protocol.Disconnect]
	aborted atomic.Bool
}

func (r *Recorder) Wire() protocol.Wire { return protocol.WireLine }
func (r *Recorder) RemoteAddr() string  { return "test" }

// Write keeps frames, each without its line end, and takes them all.
func (r *Recorder) Write(frames [][]byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, f := range frames {
		r.frames = append(r.frames, strings.TrimSpace(string(f)))
		n += len(f)
	}
	return n, nil
}

func (r *Recorder) Abort() { r.aborted.Store(true) }

func (r *Recorder) Close(d protocol.Disconnect) error {
	r.closed.Store(&d)
	return nil
}

// Frames returns the frames written so far.
func (r *Recorder) Frames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames)
}

// Closed returns the disconnect the session closed the connection with,
// or nil.
func (r *Recorder) Closed() *protocol.Disconnect { return r.closed.Load() }

// Aborted reports whether the session aborted the connection.
func (r *Recorder) Aborted() bool { return r.aborted.Load() }
