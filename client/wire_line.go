package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"time"
)

// lineWire carries one JSON document per line over a raw TCP (or TLS)
// connection.
type lineWire struct {
	c   net.Conn
	r   *bufio.Reader
	max int
	out []byte // write buffer: document plus '\n', reused under the conn's write lock
}

func dialLine(ctx context.Context, u *url.URL, o *options) (*lineWire, error) {
	var (
		c   net.Conn
		err error
	)
	if u.Scheme == "tcps" {
		d := tls.Dialer{Config: o.tls}
		c, err = d.DialContext(ctx, "tcp", u.Host)
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return nil, err
	}
	return &lineWire{c: c, r: bufio.NewReaderSize(c, 32<<10), max: o.maxFrameBytes}, nil
}

// read returns the next non-empty line without its "\n" or "\r\n". The
// slice is the caller's to keep.
func (w *lineWire) read() ([]byte, error) {
	for {
		line, err := w.readLine()
		if err != nil {
			return nil, err
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) > 0 {
			return line, nil
		}
	}
}

func (w *lineWire) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := w.r.ReadSlice('\n')
		if len(line)+len(chunk) > w.max+2 { // +2: the "\r\n" is not part of the frame
			return nil, ErrFrameTooLarge
		}
		switch {
		case err == nil:
			if line == nil {
				return bytes.Clone(chunk[:len(chunk)-1]), nil
			}
			return append(line, chunk[:len(chunk)-1]...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			line = append(line, chunk...)
		default:
			return nil, err
		}
	}
}

func (w *lineWire) setReadDeadline(t time.Time) error { return w.c.SetReadDeadline(t) }

func (w *lineWire) write(doc []byte, deadline time.Time) error {
	if err := w.c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	w.out = append(append(w.out[:0], doc...), '\n')
	_, err := w.c.Write(w.out)
	return err
}

func (w *lineWire) close() error { return w.c.Close() }
