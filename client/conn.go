package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// errNotSent reports that a request was not written because its connection
// had already ended: it is safe to send it on the next one.
var errNotSent = errors.New("connection ended before the request was sent")

// receiver takes what a connection reads that is not a reply.
type receiver interface {
	// message queues a delivered message; an error ends the connection.
	message(Message) error
	// unsubscribed reports that the server removed the connection from a
	// channel.
	unsubscribed(channel string)
	// asyncError reports an error that belongs to no pending request.
	asyncError(error)
	// connected takes the connect reply, before any frame that follows it
	// is handled.
	connected(ConnectInfo)
}

// reply is the server's answer to one request.
type reply struct {
	result json.RawMessage
	err    *Error
}

// replyHook runs on the read loop when a successful reply comes, before
// any frame that follows it is handled: what it records is in place before
// the messages the reply announces are queued.
type replyHook func(result json.RawMessage)

// waiter is a request awaiting its reply.
type waiter struct {
	ch   chan reply
	hook replyHook
}

// conn is one connection to the server: the wire, the requests awaiting
// their replies, and the read loop that answers them. It ends once, with
// the first cause; then done is closed and err says why.
type conn struct {
	w            wire
	recv         receiver
	writeTimeout time.Duration

	wmu sync.Mutex // serialises writes on w

	mu      sync.Mutex
	pending map[uint64]waiter
	err     error // why the connection ended; set once, under mu

	done     chan struct{}
	readDone chan struct{} // closed when the read loop has returned
	// silence is how long the read loop waits for the next frame before
	// it presumes the server dead (a time.Duration; 0: no limit).
	silence   atomic.Int64
	connectID uint64      // the id of the connect request
	info      ConnectInfo // from the connect reply; written by the read loop before it delivers that reply
}

func newConn(w wire, recv receiver, o *options, connectID uint64) *conn {
	cn := &conn{
		w:            w,
		recv:         recv,
		writeTimeout: o.writeTimeout,
		pending:      make(map[uint64]waiter),
		done:         make(chan struct{}),
		readDone:     make(chan struct{}),
		connectID:    connectID,
	}
	cn.silence.Store(int64(o.handshakeTimeout))
	return cn
}

// fail ends the connection with cause, unless it has already ended.
func (cn *conn) fail(cause error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err = cause
	close(cn.done)
	cn.mu.Unlock()
	_ = cn.w.close()
}

// end ends the connection with cause and waits for its read loop to
// return: after it, nothing more of this connection reaches the receiver,
// so that what the next connection queues comes after all of it.
func (cn *conn) end(cause error) {
	cn.fail(cause)
	<-cn.readDone
}

// cause returns why the connection ended, or nil while it is open.
func (cn *conn) cause() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// write sends one document; a failed write ends the connection.
func (cn *conn) write(doc []byte) error {
	cn.wmu.Lock()
	err := cn.w.write(doc, time.Now().Add(cn.writeTimeout))
	cn.wmu.Unlock()
	if err != nil {
		err = fmt.Errorf("write: %w", err)
		cn.fail(err)
	}
	return err
}

// call sends req and waits for its reply. A failed reply is returned as
// *Error.
func (cn *conn) call(ctx context.Context, req *request) (json.RawMessage, error) {
	return cn.callHook(ctx, req, nil)
}

// callHook is call, with hook run on the read loop when the reply succeeds
// (unless the caller has given up by then).
func (cn *conn) callHook(ctx context.Context, req *request, hook replyHook) (json.RawMessage, error) {
	doc, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", req.Op, err)
	}
	ch := make(chan reply, 1)
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return nil, errNotSent
	}
	cn.pending[req.ID] = waiter{ch: ch, hook: hook}
	cn.mu.Unlock()
	defer func() {
		cn.mu.Lock()
		delete(cn.pending, req.ID)
		cn.mu.Unlock()
	}()

	if err := cn.write(doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	select {
	case r := <-ch:
		return r.unpack()
	case <-cn.done:
		select {
		case r := <-ch: // the reply came just before the end
			return r.unpack()
		default:
			return nil, fmt.Errorf("%w: %w", ErrConnectionLost, cn.cause())
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r reply) unpack() (json.RawMessage, error) {
	if r.err != nil {
		return nil, r.err
	}
	return r.result, nil
}

// readLoop reads frames until the connection ends, handing replies to
// their callers, messages to the receiver, and answering pings.
func (cn *conn) readLoop() {
	defer close(cn.readDone)
	for {
		if d := time.Duration(cn.silence.Load()); d > 0 {
			_ = cn.w.setReadDeadline(time.Now().Add(d))
		} else {
			_ = cn.w.setReadDeadline(time.Time{})
		}
		doc, err := cn.w.read()
		if err != nil {
			cn.fail(cn.readError(err))
			return
		}
		if err := cn.handle(doc); err != nil {
			cn.fail(err)
			return
		}
	}
}

func (cn *conn) readError(err error) error {
	var d *Disconnect
	if errors.As(err, &d) || errors.Is(err, ErrFrameTooLarge) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w (%s)", ErrServerSilent, time.Duration(cn.silence.Load()))
	}
	return fmt.Errorf("read: %w", err)
}

// handle processes one server frame; an error ends the connection.
func (cn *conn) handle(doc []byte) error {
	var f serverFrame
	if err := json.Unmarshal(doc, &f); err != nil {
		cn.recv.asyncError(fmt.Errorf("decode server frame %q: %w", doc, err))
		return nil
	}
	switch f.Type {
	case "reply":
		return cn.handleReply(&f)
	case "message":
		m, err := f.message(doc)
		if err != nil {
			cn.recv.asyncError(err)
			return nil
		}
		return cn.recv.message(m)
	case "ping":
		return cn.write(pongFrame)
	case "unsubscribed":
		cn.recv.unsubscribed(f.Channel)
	case "disconnect":
		// The server closes its side next; close ours now rather than
		// wait for it.
		return &Disconnect{Code: f.Code, Reason: f.Reason, Reconnect: f.Reconnect, Message: f.Message}
	}
	// Unknown types are ignored, as the protocol asks.
	return nil
}

func (cn *conn) handleReply(f *serverFrame) error {
	id, err := f.replyID()
	if err != nil {
		cn.recv.asyncError(err)
		return nil
	}
	if id == 0 {
		if f.Error != nil {
			cn.recv.asyncError(fmt.Errorf("reply without id: %w", f.Error))
		}
		return nil
	}
	if id == cn.connectID && f.Error == nil {
		// Learn the heartbeat before reading on, so that the very next
		// read already waits no longer than the server's silence limit.
		info, err := decodeConnectResult(f.Result)
		if err != nil {
			return err
		}
		cn.info = info
		cn.silence.Store(int64(info.silence()))
		cn.recv.connected(info)
	}
	cn.mu.Lock()
	w, ok := cn.pending[id]
	if ok {
		delete(cn.pending, id) // a second reply to one id is ignored
	}
	cn.mu.Unlock()
	if !ok {
		return nil
	}
	if w.hook != nil && f.Error == nil {
		w.hook(f.Result)
	}
	w.ch <- reply{result: f.Result, err: f.Error}
	return nil
}
