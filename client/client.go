package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
)

// Client is a connection to a Herald server that stays up: when the
// connection is lost it reconnects with backoff and subscribes again to its
// channels, until Close or until the server says not to come back. It is
// safe for concurrent use; any number of operations may be in flight.
type Client struct {
	// urls are the servers to connect to: Dial's, then the fallbacks.
	urls []*url.URL
	// at is the index in urls of the last attempt; only Dial and then
	// the supervisor use it.
	at   int
	opts options
	ev   *events
	ids  atomic.Uint64 // request ids, unique across the client's connections

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the supervisor and every read loop

	mu      sync.Mutex
	cur     *conn         // the ready connection, or nil
	changed chan struct{} // closed and replaced whenever cur or stopErr changes
	state   State
	stopErr error                    // non-nil once stopped: ErrClosed, maybe wrapping why
	subs    map[string]*channelState // channels to subscribe to on every connection

	inbox *inbox // nil without a device

	done      chan struct{} // closed once stopped
	closeOnce sync.Once
}

// Dial connects to the Herald server at rawURL and returns a client that
// stays connected until Close. The scheme picks the transport:
//
//	ws://host:port/ws, wss://host:port/ws   WebSocket (TLS for wss)
//	tcp://host:port, tcps://host:port       newline-delimited JSON over TCP (TLS for tcps)
//
// Dial makes one attempt, bounded by ctx and the handshake timeout: if the
// server cannot be reached or refuses the credentials it returns the error
// (a refusal wraps the server's *Error and *Disconnect). With
// WithFallbacks, a server that cannot be reached is followed by an attempt
// on the next URL; a refusal is returned at once. Once connected, the
// client reconnects by itself; ctx no longer matters.
func Dial(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	urls, err := parseURLs(rawURL, o.fallbacks)
	if err != nil {
		return nil, err
	}
	o.maxBackoff = max(o.maxBackoff, o.minBackoff)
	if o.device != "" && o.onMessage == nil {
		// Messages go through the handler to be acknowledged.
		o.onMessage = func(Message) {}
	}

	c := &Client{
		urls:    urls,
		opts:    o,
		changed: make(chan struct{}),
		subs:    make(map[string]*channelState),
		done:    make(chan struct{}),
	}
	if o.device != "" {
		c.inbox = newInbox(&c.opts)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.ev = newEvents(&c.opts, gateOf{c})
	cn, err := c.dialFirst(ctx)
	if err != nil {
		c.stop(err)
		c.cancel()
		c.wg.Wait()
		<-c.ev.done
		return nil, err
	}
	c.setCurrent(cn)
	c.wg.Add(1)
	go c.supervise(cn)
	if c.inbox != nil {
		c.wg.Add(1)
		go c.runAcker()
	}
	return c, nil
}

// parseURLs checks Dial's URL and the fallbacks, skipping empty
// fallbacks.
func parseURLs(rawURL string, fallbacks []string) ([]*url.URL, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	urls := []*url.URL{u}
	for _, raw := range fallbacks {
		if raw == "" {
			continue
		}
		u, err := parseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("fallback: %w", err)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// dialFirst makes Dial's attempts: one on each URL in turn, until one
// connects, ctx ends or a server refuses for good. With several URLs the
// error joins each attempt's.
func (c *Client) dialFirst(ctx context.Context) (*conn, error) {
	var errs []error
	for i, u := range c.urls {
		if i > 0 {
			c.setState(StateChange{State: StateDisconnected, Err: errs[i-1]})
		}
		c.at = i
		c.setState(StateChange{State: StateConnecting, URL: u.Redacted()})
		cn, err := c.connect(ctx, u)
		if err == nil {
			return cn, nil
		}
		errs = append(errs, fmt.Errorf("dial %s: %w", u.Redacted(), err))
		if ctx.Err() != nil || terminal(err) {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}

// Close stops the client: it discards messages not yet handed to the
// message handler, waits for the handler to return, sends the inbox
// acknowledgement that is due (with a device), closes the connection,
// fails the operations in flight with ErrClosed, tells the state handler
// StateClosed and returns once every goroutine of the client has ended. It
// must not be called from a handler. Close is idempotent and always
// returns nil.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.ev.discardMessages()
		c.flushAcks()
		c.cancel()
	})
	c.wg.Wait()
	<-c.ev.done
	return nil
}

// Done is closed when the client has stopped, by Close or because the
// server refused a reconnect.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the client runs. Once it has stopped it returns
// ErrClosed, which wraps the *Disconnect (or refused connect) that stopped
// it when it was the server's doing.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopErr
}

// State returns the client's current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Subscriptions returns the channels the client subscribes to on every
// connection, sorted.
func (c *Client) Subscriptions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.subs))
	for ch := range c.subs {
		out = append(out, ch)
	}
	slices.Sort(out)
	return out
}

func (c *Client) nextID() uint64 { return c.ids.Add(1) }

// supervise watches the current connection and replaces it when it ends,
// until the client stops.
func (c *Client) supervise(cn *conn) {
	defer c.wg.Done()
	for cn != nil {
		select {
		case <-cn.done:
		case <-c.ctx.Done():
			cn.fail(ErrClosed)
			c.stop(nil)
			return
		}
		// Nothing more of this connection reaches the handlers once the
		// next one starts.
		<-cn.readDone
		cause := cn.cause()
		c.clearCurrent(cn)
		if terminal(cause) {
			c.stop(cause)
			return
		}
		cn = c.reconnect(cause)
	}
}

// reconnect tries to connect until it succeeds, the client closes or the
// server refuses for good. It returns the new connection, or nil when the
// client has stopped.
func (c *Client) reconnect(cause error) *conn {
	for attempt := 0; ; attempt++ {
		delay := max(backoff(c.opts.minBackoff, c.opts.maxBackoff, attempt), minWait(cause))
		c.setState(StateChange{State: StateDisconnected, Err: cause, Delay: delay})
		if !sleep(c.ctx, delay) {
			c.stop(nil)
			return nil
		}
		// The next server in the ring: the one in use may be gone.
		c.at = (c.at + 1) % len(c.urls)
		u := c.urls[c.at]
		c.setState(StateChange{State: StateConnecting, URL: u.Redacted()})
		cn, err := c.connect(c.ctx, u)
		switch {
		case err == nil:
			c.setCurrent(cn)
			return cn
		case c.ctx.Err() != nil:
			c.stop(nil)
			return nil
		case terminal(err):
			c.stop(err)
			return nil
		}
		cause = err
	}
}

// connect dials, authenticates and restores the subscriptions: one
// attempt, bounded by ctx and the handshake timeout (the resubscribing by
// the client's life only).
func (c *Client) connect(ctx context.Context, u *url.URL) (_ *conn, err error) {
	hctx, cancel := context.WithTimeout(ctx, c.opts.handshakeTimeout)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()

	token := c.opts.token
	if c.opts.tokenFunc != nil {
		if token, err = c.opts.tokenFunc(hctx); err != nil {
			return nil, fmt.Errorf("get token: %w", err)
		}
	}
	w, err := dialWire(hctx, u, &c.opts)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	id := c.nextID()
	cn := newConn(w, clientReceiver{c}, &c.opts, id)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		cn.readLoop()
	}()

	_, err = cn.call(hctx, &request{ID: id, Op: opConnect, Token: token, User: c.opts.user, Device: c.opts.device})
	if err != nil {
		var reply *Error
		if errors.As(err, &reply) {
			// The server closes a refused connection with a disconnect
			// that says whether to try again: wait for it.
			select {
			case <-cn.done:
			case <-hctx.Done():
			}
			ce := &connectError{reply: reply}
			errors.As(cn.cause(), &ce.disc)
			err = ce
		}
		err = fmt.Errorf("connect: %w", err)
		cn.end(err)
		return nil, err
	}
	if err := c.resubscribe(cn); err != nil {
		cn.end(err)
		return nil, err
	}
	return cn, nil
}

// stop ends the client with cause (nil for Close), once.
func (c *Client) stop(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopErr != nil {
		return
	}
	c.stopErr = ErrClosed
	if cause != nil {
		c.stopErr = fmt.Errorf("%w: %w", ErrClosed, cause)
	}
	c.cur = nil
	c.state = StateClosed
	c.notifyLocked()
	close(c.done)
	c.ev.state(StateChange{State: StateClosed, Err: cause})
	c.ev.close()
}

func (c *Client) setState(s StateChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = s.State
	// Under mu, so that events are queued in the order of the changes.
	c.ev.state(s)
}

func (c *Client) setCurrent(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = cn
	c.state = StateConnected
	c.notifyLocked()
	c.ev.state(StateChange{State: StateConnected, Info: cn.info, URL: c.urls[c.at].Redacted()})
}

func (c *Client) clearCurrent(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == cn {
		c.cur = nil
		c.notifyLocked()
	}
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitConn returns the ready connection, waiting for one while the client
// reconnects.
func (c *Client) waitConn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, stopErr, changed := c.cur, c.stopErr, c.changed
		c.mu.Unlock()
		if stopErr != nil {
			return nil, stopErr
		}
		if cn != nil && cn.cause() == nil {
			return cn, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for connection: %w", ctx.Err())
		}
	}
}

// clientReceiver takes what the connections read for the client.
type clientReceiver struct{ c *Client }

func (r clientReceiver) asyncError(err error) { r.c.ev.asyncError(err) }

func (r clientReceiver) message(m Message) error {
	if err := r.c.ev.message(m); err != nil {
		return err
	}
	r.c.queued(&m)
	return nil
}

func (r clientReceiver) connected(info ConnectInfo) {
	if r.c.inbox != nil && info.Inbox != nil {
		r.c.inbox.connected(info.Inbox.Acked)
	}
}

// gateOf is the client's gate between the queue of events and the message
// handler.
type gateOf struct{ c *Client }

func (g gateOf) admit(m *Message) bool {
	switch {
	case m.Kind == KindChannel && m.Epoch != "":
		return g.c.admitChannel(m)
	case m.Kind == KindDirect:
		return g.c.admitDirect(m)
	}
	return true
}

func (g gateOf) handled(m *Message) {
	switch {
	case m.Kind == KindChannel && m.Epoch != "":
		g.c.handledChannel(m)
	case m.Kind == KindDirect:
		g.c.handledDirect(m)
	}
}

func (g gateOf) subscribed(s *subscribed) { g.c.subscribed(s) }

// unsubscribed forgets the channel at once, from the read loop, so that a
// reconnect racing with it does not subscribe again.
func (r clientReceiver) unsubscribed(channel string) {
	r.c.forget(channel)
	r.c.ev.unsubscribed(channel)
}
