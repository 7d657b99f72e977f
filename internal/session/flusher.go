package session

import (
	"sync"

	"golang.org/x/sync/errgroup"
)

// flusher is a fixed pool of writers shared by all sessions. A session with
// queued frames is put on the ready list once; a writer takes it and writes
// everything it has queued in one call. Frames that arrive while a session
// waits on the list join the same write, so a burst costs one system call per
// connection rather than one per frame, and no goroutine waits per
// connection.
type flusher struct {
	writers int
	mu      sync.Mutex
	cond    *sync.Cond
	ready   []*Session // ready[head:] waits to be written
	head    int
	stopped bool
}

func newFlusher(writers int) *flusher {
	if writers < 1 {
		writers = 1
	}
	f := &flusher{writers: writers}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// schedule puts s on the ready list. It never blocks.
func (f *flusher) schedule(s *Session) {
	f.mu.Lock()
	f.ready = append(f.ready, s)
	f.mu.Unlock()
	f.cond.Signal()
}

func (f *flusher) start(g *errgroup.Group) {
	for range f.writers {
		g.Go(func() error {
			f.work()
			return nil
		})
	}
}

// stop makes the writers exit once the ready list is empty.
func (f *flusher) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *flusher) work() {
	var batch []*Session
	for {
		f.mu.Lock()
		for f.head == len(f.ready) && !f.stopped {
			f.cond.Wait()
		}
		waiting := len(f.ready) - f.head
		if waiting == 0 {
			f.mu.Unlock()
			return
		}
		// Take a share of the list, in order, leaving the rest to the
		// other writers.
		n := min(max(1, waiting/f.writers), 256)
		batch = append(batch[:0], f.ready[f.head:f.head+n]...)
		clear(f.ready[f.head : f.head+n])
		f.head += n
		switch {
		case f.head == len(f.ready):
			f.ready, f.head = f.ready[:0], 0
			if cap(f.ready) > 4096 {
				f.ready = nil
			}
		case f.head > len(f.ready)/2:
			// Compact so that the list cannot grow without bound while it
			// never quite drains.
			k := copy(f.ready, f.ready[f.head:])
			clear(f.ready[k:])
			f.ready, f.head = f.ready[:k], 0
		}
		f.mu.Unlock()
		for i, s := range batch {
			s.flush()
			batch[i] = nil
		}
	}
}
