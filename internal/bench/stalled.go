package bench

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// stalledReceiveBuffer is the receive buffer of a stalled subscriber: the
// kernel soon stops taking data for a client that never reads, as it does
// for a real one whose buffers are full.
const stalledReceiveBuffer = 4096

// memorySettle is how long after the stalled subscribers are gone the
// server's memory is read again.
const memorySettle = 5 * time.Second

// openStalled subscribes n connections to the fan-out channel that never
// read, numbered after the clients and the publisher.
func (r *runner) openStalled(ctx context.Context, n int) []*client {
	o := r.o
	op := *r.op
	d := *op.dialer
	d.rcvBuf = stalledReceiveBuffer
	op.dialer = &d
	op.byEndpoint = nil // not among the clients counted
	conns := make([]*client, n)
	var handshakes atomic.Int64
	bar := startProgress(r.progress, "stalling", int64(n), "conns", handshakes.Load)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for i := range n {
		g.Go(func() error {
			c, err := op.open(gctx, o.Clients+1+i, "stalled-"+o.user(i), o.Channel, &handshakes)
			if err != nil {
				r.sink.errs.add("stalled subscriber", err)
				return nil
			}
			conns[i] = c
			return nil
		})
	}
	_ = g.Wait()
	bar.Stop(handshakes.Load())
	opened := conns[:0]
	for _, c := range conns {
		if c != nil {
			opened = append(opened, c)
		}
	}
	return opened
}

// sampleRSSPeak reads the server's resident size every interval until stop
// is closed, and returns the largest it saw.
func (r *runner) sampleRSSPeak(stop <-chan struct{}) <-chan int64 {
	peak := make(chan int64, 1)
	go func() {
		var most int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if s, ok := r.sampleProc(); ok {
				most = max(most, s.RSSBytes)
			}
			select {
			case <-stop:
				peak <- most
				return
			case <-t.C:
			}
		}
	}()
	return peak
}

// reapStalled counts the stalled subscribers the server has closed: it
// reads each until the end of the stream, or until a moment passes with
// the connection still open. Then it closes them all.
func reapStalled(conns []*client) (dropped int64) {
	var n atomic.Int64
	var g errgroup.Group
	g.SetLimit(256)
	for _, c := range conns {
		g.Go(func() error {
			_ = c.conn.SetDeadline(time.Now().Add(2 * time.Second))
			for {
				if _, err := c.conn.ReadFrame(); err != nil {
					if !isTimeout(err) {
						n.Add(1)
					}
					break
				}
			}
			c.close(false)
			return nil
		})
	}
	_ = g.Wait()
	return n.Load()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
