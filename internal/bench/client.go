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
	n        int // the client's number: its user, endpoint, source address and shard
	endpoint int // the index of the endpoint it connected to, in the run's --server list
	conn     wireConn
	sink     *sink

	// onReply receives the replies read after the handshake; nil counts
	// failed ones as errors. It runs on the reading goroutine.
	onReply func(serverFrame)

	received atomic.Int64 // stamped messages delivered to this client
	lastAt   atomic.Int64 // unix nanos of the latest delivery
	closing  atomic.Bool  // set before the load tool closes the connection
	dropped  atomic.Bool  // the connection ended before the load tool closed it
	done     chan struct{}

	// Set by the handshake, read after it: when the connect and the
	// subscribe were sent, the subscribe reply's channel position
	// (history channels), and the connect reply's inbox (connections that
	// name a device).
	connectedAt  time.Time
	subscribedAt time.Time
	pos          position
	inbox        inboxState
	// ackAfter, when not 0, is the delivery after which the client
	// acknowledges its inbox up to that message's seq.
	ackAfter int64
}

// hello is what a connection says after the connect handshake: who it is,
// and what it subscribes to.
type hello struct {
	user    string
	device  string    // "": no device
	channel string    // "": subscribe to nothing
	from    *position // subscribe recovering from this position
}

// position is a channel's position, as a subscribe reply gives it.
type position struct {
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Recovered *bool  `json:"recovered"`
	Missed    int64  `json:"missed"`
}

// inboxState is a device's inbox, as a connect reply gives it.
type inboxState struct {
	Acked   uint64 `json:"acked"`
	Pending int64  `json:"pending"`
	Missed  uint64 `json:"missed"`
}

// opener dials clients and runs their handshakes.
type opener struct {
	dialer  *dialer
	creds   credentials
	sink    *sink
	timeout time.Duration // bound on dial plus handshake
	// byEndpoint, when not nil, counts handshakes by endpoint (the index
	// in the run's --server list).
	byEndpoint []atomic.Int64
}

// aLongTimeAgo is a deadline in the past: setting it aborts pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

// open dials connection n, connects as user and, when channel is not
// empty, subscribes to it. handshakes counts successful connect replies
// (not TCP connects). The returned client's reader is not started.
func (o *opener) open(ctx context.Context, n int, user, channel string, handshakes *atomic.Int64) (*client, error) {
	return o.openHello(ctx, n, hello{user: user, channel: channel}, handshakes)
}

// openHello is open with a device and a recovering subscribe.
func (o *opener) openHello(ctx context.Context, n int, h hello, handshakes *atomic.Int64) (*client, error) {
	user, channel := h.user, h.channel
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	conn, ep, err := o.dialer.dial(ctx, n)
	if err != nil {
		return nil, err
	}
	c := &client{n: n, endpoint: ep, conn: conn, sink: o.sink, done: make(chan struct{})}
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

	frame, err := o.creds.connectFrame(user, h.device)
	if err != nil {
		return fail(err)
	}
	c.connectedAt = time.Now()
	if err := conn.WriteFrame(frame); err != nil {
		return fail(fmt.Errorf("%w: %s: send connect: %w", ErrHandshake, user, err))
	}
	reply, err := c.awaitReply(connectID)
	if err == nil && h.device != "" {
		err = decodeResult(reply, &struct {
			Inbox *inboxState `json:"inbox"`
		}{&c.inbox})
	}
	if err != nil {
		return fail(fmt.Errorf("%w: %s: connect: %w", ErrHandshake, user, err))
	}
	handshakes.Add(1)
	if o.byEndpoint != nil {
		o.byEndpoint[ep].Add(1)
	}
	if channel != "" {
		c.subscribedAt = time.Now()
		if err := conn.WriteFrame(appendSubscribe(nil, channel, h.from)); err != nil {
			return fail(fmt.Errorf("%w: %s: send subscribe: %w", ErrHandshake, user, err))
		}
		reply, err := c.awaitReply(subscribeID)
		if err == nil {
			err = decodeResult(reply, &c.pos)
		}
		if err != nil {
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
// on the way (pings, messages), and returns the reply, valid until the
// next read.
func (c *client) awaitReply(id uint64) ([]byte, error) {
	for {
		b, err := c.conn.ReadFrame()
		if err != nil {
			return nil, err
		}
		f, err := parseServerFrame(b)
		if err != nil {
			return nil, err
		}
		switch {
		case f.typ == frameReply && (f.replyID == id || f.replyID == 0):
			if f.errCode != "" {
				return nil, &replyError{Code: f.errCode, Message: f.errMsg}
			}
			if f.replyID == 0 {
				return nil, errors.New("reply without id")
			}
			return b, nil
		case f.typ == frameDisconnect:
			return nil, &disconnectError{Code: f.code, Reason: f.reason}
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
		n := c.received.Add(1)
		c.lastAt.Store(c.sink.deliver(c.n, f.sentAt))
		if n == c.ackAfter && f.seq != 0 {
			if err := c.conn.WriteFrame(appendAck(nil, f.seq)); err != nil && !c.closing.Load() {
				c.sink.errs.add("ack", err)
			}
		}
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
