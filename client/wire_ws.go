package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// closeWait bounds the close frame sent when a WebSocket is closed.
const closeWait = time.Second

// wsWire carries one JSON document per WebSocket text message.
type wsWire struct {
	c *websocket.Conn
}

func dialWebSocket(ctx context.Context, u *url.URL, o *options) (*wsWire, error) {
	d := websocket.Dialer{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: o.tls,
		// The dial context carries the handshake deadline.
		HandshakeTimeout: 0,
	}
	c, resp, err := d.DialContext(ctx, u.String(), o.header)
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			err = upgradeError(resp)
		}
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, err
	}
	c.SetReadLimit(int64(o.maxFrameBytes))
	return &wsWire{c: c}, nil
}

// maxErrorBody bounds the HTTP error body read from a refused upgrade.
const maxErrorBody = 4 << 10

// upgradeError describes a refused upgrade from its response: the status,
// Retry-After and the {"error":{"code","message"}} body.
func upgradeError(resp *http.Response) *UpgradeError {
	e := &UpgradeError{StatusCode: resp.StatusCode}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	if resp.Body != nil {
		var body struct {
			Error *Error `json:"error"`
		}
		if json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&body) == nil && body.Error != nil && body.Error.Code != "" {
			e.Reply = body.Error
		}
	}
	return e
}

func (w *wsWire) read() ([]byte, error) {
	for {
		mt, p, err := w.c.ReadMessage()
		if err != nil {
			return nil, wsReadError(err)
		}
		if mt == websocket.TextMessage {
			return p, nil
		}
		// The protocol has no binary server frames; ignore any.
	}
}

// wsReadError turns a close frame in the protocol's range into the
// *Disconnect it stands for, and an over-limit message into
// ErrFrameTooLarge.
func wsReadError(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if d, ok := closeCodeDisconnect(ce.Code, ce.Text); ok {
			return d
		}
	}
	if errors.Is(err, websocket.ErrReadLimit) {
		return ErrFrameTooLarge
	}
	return err
}

func (w *wsWire) setReadDeadline(t time.Time) error { return w.c.SetReadDeadline(t) }

func (w *wsWire) write(doc []byte, deadline time.Time) error {
	if err := w.c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	return w.c.WriteMessage(websocket.TextMessage, doc)
}

func (w *wsWire) close() error {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = w.c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait))
	return w.c.Close()
}
