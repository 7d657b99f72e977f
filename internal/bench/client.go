package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// client is one load connection: it completed the connect handshake and,
// when asked, a subscribe. After the handshake one goroutine (readLoop)
// reads it: it records deliveries, answers server pings and hands replies
// to onReply.
type client struct {
	n    int // the client's number: its user, source address and shard
	conn wireConn
	sink *sink

	// onReply receives the replies read after the handshake; nil counts
	// failed ones as errors. It runs on the reading goroutine.
	onReply func(serverFrame)

	received atomic.Int64 // stamped messages delivered to this client
	closing  atomic.Bool  // set before the load tool closes the connection
	dropped  atomic.Bool  // the connection ended before the load tool closed it
	done     chan struct{}
}

// opener dials clients and runs their handshakes.
type opener struct {
	dialer  *dialer
	creds   credentials
	sink    *sink
	timeout time.Duration // bound on dial plus handshake
}

// aLongTimeAgo is a deadline in the past: setting it aborts pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

// open dials connection n, connects as user and, when channel is not
// empty, subscribes to it. handshakes counts successful connect replies
// (not TCP connects). The returned client's reader is not started.
func (o *opener) open(ctx context.Context, n int, user, channel string, handshakes *atomic.Int64) (*client, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	conn, err := o.dialer.dial(ctx, n)
	if err != nil {
		return nil, err
	}
	c := &client{n: n, conn: conn, sink: o.sink, done: make(chan struct{})}
	fail := func(err error) (*client, error) {
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrHandshake, user, context.Cause(ctx))
		}
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	// A cancelled run must not wait out the handshake timeout.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	defer stop()

	frame, err := o.creds.connectFrame(user)
	if err != nil {
		return fail(err)
	}
	if err := conn.WriteFrame(frame); err != nil {
		return fail(fmt.Errorf("%w: %s: send connect: %w", ErrHandshake, user, err))
	}
	if err := c.awaitReply(connectID); err != nil {
		return fail(fmt.Errorf("%w: %s: connect: %w", ErrHandshake, user, err))
	}
	handshakes.Add(1)
	if channel != "" {
		if err := conn.WriteFrame(appendSubscribe(nil, channel)); err != nil {
			return fail(fmt.Errorf("%w: %s: send subscribe: %w", ErrHandshake, user, err))
		}
		if err := c.awaitReply(subscribeID); err != nil {
			return fail(fmt.Errorf("%w: %s: subscribe %s: %w", ErrHandshake, user, channel, err))
		}
	}
	if !stop() {
		return fail(context.Cause(ctx))
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// awaitReply reads frames until the reply to id, handling any other frame
// on the way (pings, messages).
func (c *client) awaitReply(id uint64) error {
	for {
		b, err := c.conn.ReadFrame()
		if err != nil {
			return err
		}
		f, err := parseServerFrame(b)
		if err != nil {
			return err
		}
		switch {
		case f.typ == frameReply && (f.replyID == id || f.replyID == 0):
			if f.errCode != "" {
				return &replyError{Code: f.errCode, Message: f.errMsg}
			}
			if f.replyID == 0 {
				return errors.New("reply without id")
			}
			return nil
		case f.typ == frameDisconnect:
			return &disconnectError{Code: f.code, Reason: f.reason}
		default:
			c.handle(f)
		}
	}
}

// readLoop reads the connection until it ends. It closes c.done on return.
func (c *client) readLoop() {
	defer close(c.done)
	for {
		b, err := c.conn.ReadFrame()
		if err != nil {
			if !c.closing.Load() {
				c.dropped.Store(true)
				c.sink.errs.add("connection lost", err)
			}
			return
		}
		f, err := parseServerFrame(b)
		if err != nil {
			c.sink.errs.add("bad server frame", err)
			continue
		}
		c.handle(f)
	}
}

// handle acts on one frame outside a handshake.
func (c *client) handle(f serverFrame) {
	switch f.typ {
	case frameMessage:
		if f.sentAt == 0 {
			c.sink.foreign.Add(1)
			return
		}
		c.received.Add(1)
		c.sink.deliver(c.n, f.sentAt)
	case framePing:
		if err := c.conn.WriteFrame(pongFrame); err != nil && !c.closing.Load() {
			c.sink.errs.add("pong", err)
		}
	case frameReply:
		if c.onReply != nil {
			c.onReply(f)
		} else if f.errCode != "" {
			c.sink.errs.add("reply", &replyError{Code: f.errCode, Message: f.errMsg})
		}
	case frameDisconnect:
		if !c.closing.Load() {
			c.dropped.Store(true)
			c.sink.errs.add("connection lost", &disconnectError{Code: f.code, Reason: f.reason})
		}
	}
}

// close closes the connection and, if its reader runs, waits for it.
func (c *client) close(readerStarted bool) {
	c.closing.Store(true)
	_ = c.conn.Close()
	if readerStarted {
		<-c.done
	}
}
