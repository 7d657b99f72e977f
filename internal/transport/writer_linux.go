//go:build linux

package transport

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/lesismal/nbio"
	"golang.org/x/sys/unix"
)

// The event loop's own write path copies whatever a socket cannot take now
// into a buffer per connection; with thousands of clients that do not read,
// that is a copy of every message per client. Herald writes to event-loop
// sockets itself instead: a session keeps references to the shared frames
// it could not write, and a socket that fills up is watched for
// writability by one epoll set of its own (the writePoller), so that no
// writer spends time on it until it drains.

// iovMax is the most buffers one writev takes (IOV_MAX on Linux).
const iovMax = 1024

// sockWriter writes to one event-loop socket.
type sockWriter struct {
	nc       *nbio.Conn
	fd       int
	poller   *writePoller
	id       uint64 // this socket's key in the poller
	watching bool   // added to the poller's epoll set; guarded by nc's lock
}

func newSockWriter(nc *nbio.Conn, poller *writePoller, writable func()) (*sockWriter, error) {
	raw, err := nc.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &sockWriter{nc: nc, poller: poller}
	_ = raw.Control(func(fd uintptr) {
		w.fd = int(fd)
		// The event loop's descriptors are duplicates made without
		// close-on-exec: a child process started by the server (or by a
		// test beside it) would inherit the socket and keep it open.
		unix.CloseOnExec(w.fd)
	})
	w.id = poller.register(writable)
	return w, nil
}

// Write writes what the socket takes now. When it takes less than all, the
// socket is watched, and the writable callback runs once it can take more.
// The connection's lock is held throughout: once the event loop has closed
// a connection, its descriptor number may already belong to a new one, so
// it is written only while the loop still has it open.
func (w *sockWriter) Write(frames [][]byte) (int, error) {
	total, err := w.write(frames)
	if err != nil {
		closeConn(w.nc)
	}
	return total, err
}

func (w *sockWriter) write(frames [][]byte) (int, error) {
	w.nc.Lock()
	defer w.nc.Unlock()
	if closed, _ := w.nc.IsClosed(); closed {
		return 0, net.ErrClosed
	}
	total := 0
	for len(frames) > 0 {
		batch := frames[:min(len(frames), iovMax)]
		want := 0
		for _, f := range batch {
			want += len(f)
		}
		var n int
		var err error
		if len(batch) == 1 {
			n, err = unix.Write(w.fd, batch[0])
		} else {
			n, err = unix.Writev(w.fd, batch)
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return total, w.watch()
		case err != nil:
			return total, err
		}
		total += n
		if n < want {
			return total, w.watch()
		}
		frames = frames[len(batch):]
	}
	return total, nil
}

// watch asks the poller to report when the socket can take more. It runs
// under the connection's lock, so the descriptor is this connection's.
func (w *sockWriter) watch() error {
	op := unix.EPOLL_CTL_MOD
	if !w.watching {
		op = unix.EPOLL_CTL_ADD
	}
	if err := w.poller.watch(op, w.fd, w.id); err != nil {
		return fmt.Errorf("watch socket for writing: %w", err)
	}
	w.watching = true
	return nil
}

// close forgets the socket; the kernel drops it from the epoll set when
// the descriptor closes.
func (w *sockWriter) close() { w.poller.forget(w.id) }

// writePoller reports sockets that became writable, from one epoll set and
// one goroutine. Each watch is one-shot and level-triggered, so a socket
// that drained between the failed write and the watch is reported at once.
type writePoller struct {
	epfd   int
	wakefd int // an eventfd that stops run
	nextID atomic.Uint64

	mu      sync.Mutex
	waiters map[uint64]func()
}

func newWritePoller() (*writePoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	p := &writePoller{epfd: epfd, wakefd: wakefd, waiters: make(map[uint64]func())}
	p.nextID.Store(1) // id 0 is the wake-up descriptor
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return p, nil
}

func (p *writePoller) register(writable func()) uint64 {
	id := p.nextID.Add(1)
	p.mu.Lock()
	p.waiters[id] = writable
	p.mu.Unlock()
	return id
}

func (p *writePoller) forget(id uint64) {
	p.mu.Lock()
	delete(p.waiters, id)
	p.mu.Unlock()
}

func (p *writePoller) watch(op, fd int, id uint64) error {
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLONESHOT, Fd: int32(id), Pad: int32(id >> 32)}
	return unix.EpollCtl(p.epfd, op, fd, &ev)
}

// run reports writable sockets until stop.
func (p *writePoller) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				p.closeFDs()
				return
			}
			p.mu.Lock()
			writable := p.waiters[id]
			p.mu.Unlock()
			if writable != nil {
				writable()
			}
		}
	}
}

// stop ends run, which closes the poller's descriptors.
func (p *writePoller) stop() {
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; any non-zero value wakes
	_, _ = unix.Write(p.wakefd, one[:])
}

func (p *writePoller) closeFDs() {
	_ = unix.Close(p.epfd)
	_ = unix.Close(p.wakefd)
}
