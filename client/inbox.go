package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Acknowledgements go out in batches: at most one per ackInterval, each
// covering every message handled since the last. The server counts an ack
// against the connection's operation rate.
const (
	ackInterval = 100 * time.Millisecond
	// ackTimeout bounds one acknowledgement's round trip; closeAckTimeout
	// the last one, sent by Close.
	ackTimeout      = 10 * time.Second
	closeAckTimeout = 2 * time.Second
)

// DefaultDedupeWindow is how many ids of direct messages a client with a
// device remembers, to drop the ones that come again (see WithDevice).
const DefaultDedupeWindow = 1024

// inbox is the client's side of its device's inbox: it drops the messages
// that come again, and acknowledges the ones the application is done
// with, in batches.
type inbox struct {
	manual bool

	mu      sync.Mutex
	handled uint64 // the application is done with every message up to here
	acked   uint64 // the server has (or is being sent) the ack up to here
	seen    map[string]struct{}
	ring    []string // the ids in seen, oldest at next once full
	next    int

	wake chan struct{} // an ack is due
	// sending keeps one ack in flight at a time, so that they reach the
	// server in order.
	sending sync.Mutex
}

func newInbox(o *options) *inbox {
	return &inbox{
		manual: o.manualAck,
		seen:   make(map[string]struct{}, o.dedupeWindow),
		ring:   make([]string, 0, o.dedupeWindow),
		wake:   make(chan struct{}, 1),
	}
}

// isDuplicate reports whether the application has had the message id.
func (in *inbox) isDuplicate(id string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	_, ok := in.seen[id]
	return ok
}

// remember records that the application has had the message id, forgetting
// the oldest id once the window is full.
func (in *inbox) remember(id string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, ok := in.seen[id]; ok {
		return
	}
	in.seen[id] = struct{}{}
	if len(in.ring) < cap(in.ring) {
		in.ring = append(in.ring, id)
		return
	}
	delete(in.seen, in.ring[in.next])
	in.ring[in.next] = id
	in.next = (in.next + 1) % len(in.ring)
}

// done records that the application is done with every message up to seq.
func (in *inbox) done(seq uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.handled = max(in.handled, seq)
	in.signalLocked()
}

// connected takes the device's position from a connect reply: the
// server has every ack up to there, and whatever the application is done
// with beyond it is acknowledged again.
func (in *inbox) connected(acked uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.acked = acked
	in.signalLocked()
}

func (in *inbox) signalLocked() {
	if in.handled <= in.acked {
		return
	}
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// due returns the sequence to acknowledge, if any.
func (in *inbox) due() (uint64, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.handled, in.handled > in.acked
}

// sent records the server's answer to an ack up to seq, and returns the
// error to report, if any.
func (in *inbox) sent(seq uint64, err error) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	var e *Error
	switch {
	case err == nil:
		in.acked = max(in.acked, seq)
		return nil
	case errors.As(err, &e) && e.Code == CodeAckBackwards:
		// Another connection of this device acknowledged further.
		in.acked = max(in.acked, seq)
		return nil
	case errors.As(err, &e) && e.Code == CodeAckBeyondEnd:
		// The inbox no longer has these messages (its store was reset):
		// nothing to acknowledge.
		in.handled = in.acked
	case errors.As(err, &e) && e.Code != CodeRateLimited:
		in.signalLocked()
	default:
		// Lost with its connection, rate limited or timed out: the next
		// batch sends it again (a new connection's reply says what the
		// server has).
		in.signalLocked()
		return nil
	}
	return fmt.Errorf("acknowledge inbox up to %d: %w", seq, err)
}

// Ack tells the server that the application is done with every message of
// the device's inbox up to and including seq (Message.Seq). It is for
// clients with WithManualAck; without it, the client acknowledges each
// message once the message handler has returned for it. Ack returns at
// once: the acknowledgement goes out with the next batch, within about
// 100 ms, and on Close; errors go to the error handler. Acknowledge in
// order, after processing (storing, showing) the message. Without a device
// Ack does nothing.
func (c *Client) Ack(seq uint64) {
	if c.inbox != nil {
		c.inbox.done(seq)
	}
}

// runAcker sends the acknowledgements as they fall due, in batches, until
// the client stops.
func (c *Client) runAcker() {
	defer c.wg.Done()
	for {
		select {
		case <-c.inbox.wake:
		case <-c.ctx.Done():
			return
		}
		if !sleep(c.ctx, ackInterval) {
			return
		}
		cn, err := c.waitConn(c.ctx)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, ackTimeout)
		c.sendAck(ctx, cn)
		cancel()
	}
}

// sendAck acknowledges on cn what is due, if anything.
func (c *Client) sendAck(ctx context.Context, cn *conn) {
	in := c.inbox
	in.sending.Lock()
	defer in.sending.Unlock()
	seq, ok := in.due()
	if !ok {
		return
	}
	_, err := cn.call(ctx, &request{ID: c.nextID(), Op: opAck, Seq: &seq})
	if err := in.sent(seq, err); err != nil {
		c.ev.asyncError(err)
	}
}

// flushAcks sends, on the ready connection if there is one, what is due
// now rather than with the next batch: Close calls it.
func (c *Client) flushAcks() {
	if c.inbox == nil {
		return
	}
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	if cn == nil || cn.cause() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, closeAckTimeout)
	defer cancel()
	c.sendAck(ctx, cn)
}

// admitDirect reports whether the message handler has not had m yet.
func (c *Client) admitDirect(m *Message) bool {
	return c.inbox == nil || m.Seq == 0 || !c.inbox.isDuplicate(m.ID)
}

// handledDirect records that the message handler has had m (or that m
// came again and was dropped), and acknowledges it unless the application
// does.
func (c *Client) handledDirect(m *Message) {
	if c.inbox == nil || m.Seq == 0 {
		return
	}
	c.inbox.remember(m.ID)
	if !c.inbox.manual {
		c.inbox.done(m.Seq)
	}
}
