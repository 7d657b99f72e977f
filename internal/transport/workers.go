package transport

import (
	"log/slog"
	"runtime/debug"
	"sync"
)

// workerPool runs the engines' callbacks (decoded frames, HTTP handlers)
// on a fixed set of long-lived goroutines. nbio's own pool starts a new
// goroutine for most tasks, and each new goroutine grows its stack again
// through the JSON decoder: a cost paid per frame. nbio keeps one
// connection's tasks in order itself, handing the pool one task at a time
// per connection, so any worker may run any task.
type workerPool struct {
	tasks chan func()
	log   *slog.Logger
	wg    sync.WaitGroup

	mu      sync.RWMutex // Stop holds it to exclude Go
	stopped bool
}

func newWorkerPool(workers, queue int, log *slog.Logger) *workerPool {
	p := &workerPool{tasks: make(chan func(), queue), log: log}
	for range workers {
		p.wg.Go(func() {
			for f := range p.tasks {
				p.run(f)
			}
		})
	}
	return p
}

// Go runs f on a worker. When every worker is busy and the queue is full it
// runs f on a goroutine of its own rather than stall the poller that called.
func (p *workerPool) Go(f func()) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.stopped {
		return // the engines are stopping; nothing is left to serve
	}
	select {
	case p.tasks <- f:
	default:
		p.wg.Go(func() { p.run(f) })
	}
}

// run calls f; a panic in a handler is logged, never fatal.
func (p *workerPool) run(f func()) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("handler panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	f()
}

// Stop lets the workers finish what is queued and waits for them.
func (p *workerPool) Stop() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.tasks)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
