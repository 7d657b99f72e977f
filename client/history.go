package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Position is a place in a channel with history: the offset of a message
// and the channel's epoch. Offsets compare only within one epoch; the
// epoch changes when the channel's history was lost or reset. Its JSON
// form is {"offset":N,"epoch":"..."}, for applications that keep it.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// IsZero reports whether p names no place: the channel keeps no history,
// or nothing is known of it yet.
func (p Position) IsZero() bool { return p.Epoch == "" }

// covers reports whether a message at q is at or before p: one the
// application has had when it has had p.
func (p Position) covers(q Position) bool { return p.Epoch == q.Epoch && q.Offset <= p.Offset }

// Subscription is the server's answer to a subscribe: to one that
// Subscribe sent, and to every one the client sends again after a
// reconnect. WithSubscribedHandler receives them, in order with the
// messages: what a subscription announces follows it.
type Subscription struct {
	Channel string
	// Offset and Epoch are the channel's position when the subscription
	// took effect: every message after it follows. Epoch is empty for a
	// channel without history.
	Offset uint64
	Epoch  string
	// Resumed reports that the subscribe asked to recover from a position:
	// the last one the client had for the channel, or the one given with
	// Since.
	Resumed bool
	// Recovered reports, for a Resumed subscribe, that every message after
	// that position follows: the Missed ones the server kept, then the
	// live ones. No gap, no duplicate.
	Recovered bool
	Missed    int
}

// Lost reports that the subscribe asked to recover and could not: some
// messages after the client's position will never come (the epoch
// changed, or they are no longer kept). The application should reload its
// state (the server API reads a channel's history) and carry on from
// Offset, where the messages that follow start.
func (s Subscription) Lost() bool { return s.Resumed && !s.Recovered }

// Position returns the channel's position when the subscription took
// effect.
func (s Subscription) Position() Position { return Position{Offset: s.Offset, Epoch: s.Epoch} }

// SubscribeOption configures one Subscribe.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct{ since Position }

// Since makes Subscribe recover what the channel had after p: an
// application that keeps the position of the last message it processed
// (Message.Position) resumes from it after a restart. The Subscription
// reports whether it could. A zero p changes nothing. Later reconnects
// resume from the last message the client received, as always.
func Since(p Position) SubscribeOption {
	return func(o *subscribeOptions) { o.since = p }
}

// channelState is what the client knows of a channel it subscribes to.
// Positions stay zero for a channel without history.
type channelState struct {
	// resume is where the next subscribe recovers from: the last message
	// queued for the message handler, or what a subscribe reply said
	// comes next.
	resume Position
	// delivered is where the message handler stands: the last message it
	// returned for, or what a subscribe reply said comes next.
	delivered Position
}

// subscribed is a subscribe's result, with what the client needs to place
// it among the messages.
type subscribed struct {
	sub Subscription
	// from is the position the subscribe recovered from (zero if none);
	// explicit says the application gave it (Since).
	from     Position
	explicit bool
}

// next is the position after which the subscription's messages come.
func (s *subscribed) next() Position {
	if s.sub.Recovered {
		return s.from
	}
	return s.sub.Position()
}

// Subscribe starts delivery of channel's messages to this client, now and
// after every reconnect. Subscribing twice is not an error.
//
// On a channel with history, the client resumes after a reconnect from the
// last message it received, so that nothing is lost or repeated while the
// server keeps what was missed; the subscribed handler (see
// WithSubscribedHandler) hears each result, and Lost ones in particular.
// Since resumes from a position the application kept.
//
// If the server refuses (the error wraps *Error), the channel is not
// subscribed. If the call ends otherwise (ctx, connection lost), the
// client still holds the channel as wanted and subscribes to it on the
// next connection; Unsubscribe drops it.
func (c *Client) Subscribe(ctx context.Context, channel string, opts ...SubscribeOption) error {
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	explicit := !o.since.IsZero()
	c.mu.Lock()
	st, had := c.subs[channel]
	if !had {
		st = &channelState{}
		c.subs[channel] = st
	}
	if explicit {
		st.resume = o.since
	}
	c.mu.Unlock()
	err := c.subscribe(ctx, channel, explicit)
	if err == nil {
		return nil
	}
	var e *Error
	if !had && errors.As(err, &e) {
		c.forget(channel)
	}
	return fmt.Errorf("subscribe %q: %w", channel, err)
}

// subscribe sends a subscribe for channel on the ready connection, waiting
// for one if the client is reconnecting.
func (c *Client) subscribe(ctx context.Context, channel string, explicit bool) error {
	for {
		cn, err := c.waitConn(ctx)
		if err != nil {
			return err
		}
		req, hook := c.subscribeRequest(channel, explicit)
		req.ID = c.nextID()
		_, err = cn.callHook(ctx, &req, hook)
		switch {
		case errors.Is(err, errNotSent):
			continue // the connection ended first; the next one may take it
		case !explicit && c.positionRefused(channel, req, err):
			continue
		}
		return err
	}
}

// subscribeRequest builds a subscribe for channel that recovers from the
// position the client holds for it, and the hook that takes its reply.
func (c *Client) subscribeRequest(channel string, explicit bool) (request, replyHook) {
	var from Position
	c.mu.Lock()
	if st := c.subs[channel]; st != nil {
		from = st.resume
	}
	c.mu.Unlock()
	req := request{Op: opSubscribe, Channel: channel}
	if !from.IsZero() {
		offset := from.Offset
		req.Offset, req.Epoch = &offset, from.Epoch
	}
	hook := func(result json.RawMessage) { c.subscribeReplied(channel, from, explicit, result) }
	return req, hook
}

// positionRefused reports whether err refuses the position req carried
// (the channel has no history any more, say), and if so forgets it, so
// that the subscribe may be sent again without one.
func (c *Client) positionRefused(channel string, req request, err error) bool {
	var e *Error
	if req.Offset == nil || !errors.As(err, &e) || e.Code != CodeInvalidField {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.subs[channel]
	if st == nil {
		return false
	}
	st.resume = Position{}
	return true
}

// subscribeReplied runs on the read loop when a subscribe succeeds, before
// the messages it announces are read: it records where the channel's
// messages resume, and queues the result for the application.
func (c *Client) subscribeReplied(channel string, from Position, explicit bool, result json.RawMessage) {
	var r subscribeResult
	if len(result) > 0 {
		if err := json.Unmarshal(result, &r); err != nil {
			c.ev.asyncError(fmt.Errorf("decode subscribe result %s: %w", result, err))
			return
		}
	}
	s := &subscribed{
		sub: Subscription{
			Channel:   channel,
			Offset:    r.Offset,
			Epoch:     r.Epoch,
			Resumed:   r.Recovered != nil,
			Recovered: r.Recovered != nil && *r.Recovered,
			Missed:    r.Missed,
		},
		from:     from,
		explicit: explicit,
	}
	c.mu.Lock()
	if st := c.subs[channel]; st != nil && s.sub.Epoch != "" {
		st.resume = s.next()
	}
	c.mu.Unlock()
	c.ev.subscribed(s)
}

// queued records, on the read loop, that a channel message was queued for
// the message handler: a subscribe after a reconnect resumes after it.
func (c *Client) queued(m *Message) {
	if m.Kind != KindChannel || m.Epoch == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.subs[m.Channel]; st != nil && !st.resume.covers(m.Position()) {
		st.resume = m.Position()
	}
}

// Position returns the position of the last message of channel that the
// message handler returned for, or the position a subscribe said the
// channel's messages resume after; false when the client does not
// subscribe to channel or knows no position for it (the channel has no
// history). An application may keep it and pass it to Since when it
// starts again.
func (c *Client) Position(channel string) (Position, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.subs[channel]
	if st == nil || st.delivered.IsZero() {
		return Position{}, false
	}
	return st.delivered, true
}

// admitChannel reports whether the message handler has not had m yet.
func (c *Client) admitChannel(m *Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.subs[m.Channel]
	return st == nil || !st.delivered.covers(m.Position())
}

// handledChannel records that the message handler has had m.
func (c *Client) handledChannel(m *Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.subs[m.Channel]; st != nil && !st.delivered.covers(m.Position()) {
		st.delivered = m.Position()
	}
}

// subscribed places a subscribe's result among the messages: what it
// announces comes next. A resubscribe that recovered changes nothing, as
// the handler has had everything up to where it recovered from; every
// other result sets where the handler stands, so that messages before it
// that are still queued, or come again, are dropped.
func (c *Client) subscribed(s *subscribed) {
	if s.sub.Epoch == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.subs[s.sub.Channel]
	if st == nil {
		return
	}
	next := s.next()
	if s.explicit || !s.sub.Recovered || st.delivered.Epoch != next.Epoch {
		st.delivered = next
	}
}
