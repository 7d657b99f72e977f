package client

import (
	"fmt"
	"sync"
)

// event is one thing to tell the user: exactly one field is set
// (unsubscribed when none of the others is).
type event struct {
	msg          *Message
	state        *StateChange
	err          error
	subscribed   *subscribed
	unsubscribed string
}

// gate stands between the queue and the message handler, on the events
// goroutine: it drops what the application has had already, and learns
// what it has had.
type gate interface {
	// admit reports whether m goes to the handler.
	admit(m *Message) bool
	// handled records that the handler returned for m (or that m was
	// dropped as a duplicate of one it returned for).
	handled(m *Message)
	// subscribed records a subscribe's result, in order with the messages.
	subscribed(s *subscribed)
}

// events hands messages, state changes and errors to the user's handlers
// on one goroutine, in the order they happened, so that a slow handler
// never stalls the read loop (which must keep answering pings and replies)
// and handlers may call the client. Messages are bounded; the rare state
// changes and errors are not, so none is ever lost.
type events struct {
	onMessage func(Message)
	onState   func(StateChange)
	onError   func(error)
	onUnsub   func(string)
	onSub     func(Subscription)
	gate      gate
	maxMsgs   int

	// busy is held while the message handler runs, so that
	// discardMessages can wait for the one in progress.
	busy sync.Mutex

	mu      sync.Mutex
	queue   []event
	msgs    int  // messages queued or being delivered
	closed  bool // no more events are accepted
	discard bool // drop queued messages instead of delivering them
	wake    chan struct{}
	done    chan struct{} // closed when run returns
}

func newEvents(o *options, g gate) *events {
	e := &events{
		onMessage: o.onMessage,
		onState:   o.onState,
		onError:   o.onError,
		onUnsub:   o.onUnsubscribed,
		onSub:     o.onSubscribed,
		gate:      g,
		maxMsgs:   o.messageBuffer,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	go e.run()
	return e
}

// message queues m, or fails with ErrHandlerBehind when the handler is
// too far behind. Implements receiver.
func (e *events) message(m Message) error {
	if e.onMessage == nil {
		return nil
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	if e.msgs >= e.maxMsgs {
		e.mu.Unlock()
		return fmt.Errorf("%w: %d messages waiting", ErrHandlerBehind, e.maxMsgs)
	}
	e.msgs++
	e.queue = append(e.queue, event{msg: &m})
	e.mu.Unlock()
	e.signal()
	return nil
}

// asyncError queues err for the error handler. Implements receiver.
func (e *events) asyncError(err error) {
	if e.onError != nil {
		e.push(event{err: err})
	}
}

// unsubscribed queues channel for the unsubscribed handler.
func (e *events) unsubscribed(channel string) {
	if e.onUnsub != nil {
		e.push(event{unsubscribed: channel})
	}
}

// subscribed queues a subscribe's result for the gate and the subscribed
// handler.
func (e *events) subscribed(s *subscribed) { e.push(event{subscribed: s}) }

func (e *events) state(s StateChange) {
	if e.onState != nil {
		e.push(event{state: &s})
	}
}

func (e *events) push(ev event) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.queue = append(e.queue, ev)
	e.mu.Unlock()
	e.signal()
}

func (e *events) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// close accepts no more events; run delivers what is queued and returns.
func (e *events) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.signal()
}

// discardMessages drops queued messages from now on, and returns once the
// message handler is not running.
func (e *events) discardMessages() {
	e.mu.Lock()
	e.discard = true
	e.mu.Unlock()
	e.busy.Lock()
	defer e.busy.Unlock()
}

func (e *events) run() {
	defer close(e.done)
	var batch []event
	for {
		e.mu.Lock()
		batch, e.queue = e.queue, batch[:0]
		closed := e.closed
		e.mu.Unlock()
		for i := range batch {
			e.deliver(&batch[i])
			batch[i] = event{}
		}
		if closed && len(batch) == 0 {
			return
		}
		if len(batch) == 0 {
			<-e.wake
		}
	}
}

func (e *events) deliver(ev *event) {
	switch {
	case ev.msg != nil:
		e.busy.Lock()
		defer e.busy.Unlock()
		e.mu.Lock()
		e.msgs--
		discard := e.discard
		e.mu.Unlock()
		if discard {
			return
		}
		if e.gate.admit(ev.msg) {
			e.onMessage(*ev.msg)
		}
		e.gate.handled(ev.msg)
	case ev.subscribed != nil:
		e.gate.subscribed(ev.subscribed)
		if e.onSub != nil {
			e.onSub(ev.subscribed.sub)
		}
	case ev.state != nil:
		e.onState(*ev.state)
	case ev.err != nil:
		e.onError(ev.err)
	default:
		e.onUnsub(ev.unsubscribed)
	}
}
