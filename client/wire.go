package client

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// wire is one transport connection carrying whole JSON documents. read is
// called by one goroutine; write by one at a time; close at any time, more
// than once.
type wire interface {
	// read returns the next document from the server. It blocks until one
	// arrives, the read deadline passes or the wire is closed.
	read() ([]byte, error)
	setReadDeadline(t time.Time) error
	// write sends one document, giving up at deadline.
	write(doc []byte, deadline time.Time) error
	// close releases the connection, telling the peer when the transport
	// has a way to.
	close() error
}

// parseURL checks that the scheme names a transport.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, raw, err)
	}
	switch u.Scheme {
	case "ws", "wss", "tcp", "tcps":
	default:
		return nil, fmt.Errorf("%w %q: scheme must be ws, wss, tcp or tcps", ErrUnsupportedURL, raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w %q: no host", ErrUnsupportedURL, raw)
	}
	return u, nil
}

// dialWire opens the transport the URL's scheme names.
func dialWire(ctx context.Context, u *url.URL, o *options) (wire, error) {
	switch u.Scheme {
	case "ws", "wss":
		return dialWebSocket(ctx, u, o)
	default:
		return dialLine(ctx, u, o)
	}
}
