package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Retries of rate_limited and internal replies while resubscribing: each
// failure counts against the connection (the server closes it after
// max-strikes failures in a row), so the retries are few and spaced.
const (
	resubscribeRetries   = 4
	resubscribeRetryWait = 250 * time.Millisecond
)

// Unsubscribe stops delivery of channel's messages. The server answers
// not_subscribed for a channel this connection is not subscribed to.
func (c *Client) Unsubscribe(ctx context.Context, channel string) error {
	c.forget(channel)
	if _, err := c.do(ctx, request{Op: opUnsubscribe, Channel: channel}); err != nil {
		return fmt.Errorf("unsubscribe %q: %w", channel, err)
	}
	return nil
}

// PublishOption configures one Publish, Send or Broadcast.
type PublishOption func(*publishOptions)

type publishOptions struct{ noEcho bool }

// NoEcho leaves this connection out of the message's delivery: an
// application that shows what it sends as it sends it has no use for the
// copy that would come back. The user's other connections still receive
// it, and the message is stored as any other, so a channel recovered from
// history or an inbox read by this device may hold it (its id is the one
// the call returns).
func NoEcho() PublishOption {
	return func(o *publishOptions) { o.noEcho = true }
}

// Publish sends data to every connection subscribed to channel (this one
// too, if subscribed, unless NoEcho) and returns the message id. data is
// encoded with encoding/json (a json.RawMessage is sent as it is) and must
// not be null.
func (c *Client) Publish(ctx context.Context, channel string, data any, opts ...PublishOption) (string, error) {
	id, err := c.deliver(ctx, request{Op: opPublish, Channel: channel}, data, opts)
	if err != nil {
		return "", fmt.Errorf("publish to %q: %w", channel, err)
	}
	return id, nil
}

// Send sends data to every connection of user to, online or not, and
// returns the message id. data is encoded as for Publish.
func (c *Client) Send(ctx context.Context, to string, data any, opts ...PublishOption) (string, error) {
	id, err := c.deliver(ctx, request{Op: opSend, To: to}, data, opts)
	if err != nil {
		return "", fmt.Errorf("send to %q: %w", to, err)
	}
	return id, nil
}

// Broadcast sends data to every connected client, this one included
// unless NoEcho, and returns the message id. data is encoded as for
// Publish. Servers refuse client broadcasts (CodeForbidden) unless
// configured to allow them.
func (c *Client) Broadcast(ctx context.Context, data any, opts ...PublishOption) (string, error) {
	id, err := c.deliver(ctx, request{Op: opBroadcast}, data, opts)
	if err != nil {
		return "", fmt.Errorf("broadcast: %w", err)
	}
	return id, nil
}

// Ping asks the server for an empty reply: a round trip that proves the
// connection works.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.do(ctx, request{Op: opPing}); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

func (c *Client) deliver(ctx context.Context, req request, data any, opts []PublishOption) (string, error) {
	raw, err := encodeData(data)
	if err != nil {
		return "", err
	}
	req.Data = raw
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.noEcho {
		echo := false
		req.Echo = &echo
	}
	res, err := c.do(ctx, req)
	if err != nil {
		return "", err
	}
	var r publishResult
	if err := json.Unmarshal(res, &r); err != nil {
		return "", fmt.Errorf("decode result %s: %w", res, err)
	}
	return r.ID, nil
}

// do sends req on the ready connection, waiting for one if the client is
// reconnecting, and returns the reply's result.
func (c *Client) do(ctx context.Context, req request) (json.RawMessage, error) {
	for {
		cn, err := c.waitConn(ctx)
		if err != nil {
			return nil, err
		}
		req.ID = c.nextID()
		res, err := cn.call(ctx, &req)
		if errors.Is(err, errNotSent) {
			continue // the connection ended first; the next one may take it
		}
		return res, err
	}
}

func (c *Client) forget(channel string) {
	c.mu.Lock()
	delete(c.subs, channel)
	c.mu.Unlock()
}

// resubscribe subscribes cn, a new connection, to every wanted channel. A
// channel the server refuses is dropped and reported to the error
// handler; any other failure fails the connection attempt.
func (c *Client) resubscribe(cn *conn) error {
	for _, channel := range c.Subscriptions() {
		err := c.resubscribeOne(cn, channel)
		if err == nil {
			continue
		}
		var e *Error
		if errors.As(err, &e) && !e.retryable() {
			c.forget(channel)
			c.ev.asyncError(fmt.Errorf("subscribe again to %q after reconnecting: %w", channel, err))
			continue
		}
		return fmt.Errorf("subscribe again to %q: %w", channel, err)
	}
	return nil
}

// resubscribeOne subscribes cn to channel, resuming from the position the
// client holds for it; without it if the server refuses the position.
func (c *Client) resubscribeOne(cn *conn, channel string) error {
	for {
		req, hook := c.subscribeRequest(channel, false)
		err := c.callRetrying(cn, req, hook)
		if !c.positionRefused(channel, req, err) {
			return err
		}
	}
}

// callRetrying sends req on cn, retrying a few times after a pause when the
// server answers rate_limited or internal.
func (c *Client) callRetrying(cn *conn, req request, hook replyHook) error {
	wait := resubscribeRetryWait
	for try := 0; ; try++ {
		req.ID = c.nextID()
		_, err := cn.callHook(c.ctx, &req, hook)
		var e *Error
		if err == nil || !errors.As(err, &e) || !e.retryable() || try == resubscribeRetries {
			return err
		}
		if !sleep(c.ctx, wait) {
			return c.ctx.Err()
		}
		wait *= 2
	}
}
