package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// wireConn is one client connection with its framing.
type wireConn interface {
	// ReadFrame returns the next server frame. The slice is valid until
	// the next call. One goroutine reads.
	ReadFrame() ([]byte, error)
	// WriteFrame sends one client frame (a JSON document without framing).
	// It is safe for concurrent use.
	WriteFrame(p []byte) error
	// SetDeadline bounds reads and writes; the zero time removes the bound.
	SetDeadline(t time.Time) error
	// Close closes the connection; pending reads and writes fail.
	Close() error
}

// Buffer sizes. Frames are a few hundred bytes; larger ones still work,
// through a scratch buffer that grows to the largest frame. 4 KiB rather
// than 1 KiB: under a fan-out burst one read then takes about 15 frames
// instead of 3, which halved the load tool's CPU time per delivery (read
// syscalls dominate it), for 3 KiB more per connection.
const (
	readBufferSize = 4096
	maxServerFrame = 4 << 20 // a frame longer than this is a broken stream
)

// dialer opens client connections, spreading them round-robin over some of
// the run's endpoints and over the source addresses.
type dialer struct {
	targets []target // every endpoint of the run
	use     []int    // the indexes in targets this dialer spreads over
	sources []netip.Addr
	ws      websocket.Dialer
	rcvBuf  int // SO_RCVBUF set before connecting; 0 leaves the kernel's
}

func newDialer(targets []target, use []int, sources []netip.Addr) *dialer {
	return &dialer{
		targets: targets,
		use:     use,
		sources: sources,
		ws: websocket.Dialer{
			ReadBufferSize:  readBufferSize,
			WriteBufferSize: readBufferSize,
			// A pool, so an idle connection holds no write buffer.
			WriteBufferPool: &sync.Pool{},
		},
	}
}

// netDialer returns a net.Dialer bound to the n-th connection's source
// address.
func (d *dialer) netDialer(n int) *net.Dialer {
	nd := &net.Dialer{KeepAlive: -1}
	var controls []func(network, address string, c syscall.RawConn) error
	if len(d.sources) > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: d.sources[n%len(d.sources)].AsSlice()}
		controls = append(controls, bindNoPort)
	}
	if d.rcvBuf > 0 {
		controls = append(controls, receiveBuffer(d.rcvBuf))
	}
	if len(controls) > 0 {
		nd.Control = func(network, address string, c syscall.RawConn) error {
			for _, f := range controls {
				if err := f(network, address, c); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return nd
}

// endpoint returns the index in targets of the n-th connection's endpoint.
func (d *dialer) endpoint(n int) int { return d.use[n%len(d.use)] }

// dial opens the n-th connection: TCP, plus the WebSocket upgrade for ws.
// It returns the index in targets of the endpoint it connected to.
func (d *dialer) dial(ctx context.Context, n int) (wireConn, int, error) {
	ep := d.endpoint(n)
	t := d.targets[ep]
	nd := d.netDialer(n)
	if t.scheme == "tcp" {
		c, err := nd.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			return nil, ep, fmt.Errorf("dial %s: %w", t.addr, err)
		}
		return newLineConn(c), ep, nil
	}
	wd := d.ws // a copy, to bind this connection's source address
	wd.NetDialContext = nd.DialContext
	c, resp, err := wd.DialContext(ctx, t.url, nil)
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			err = refusedUpgrade(resp)
		}
		return nil, ep, fmt.Errorf("dial %s: %w", t.url, err)
	}
	c.SetReadLimit(maxServerFrame)
	return &wsConn{c: c}, ep, nil
}

// refusedUpgrade reads the server's answer to a refused WebSocket upgrade:
// Herald explains itself with {"error":{"code":...,"message":...}}.
func refusedUpgrade(resp *http.Response) error {
	e := &upgradeError{Status: resp.StatusCode}
	if resp.Body != nil {
		var body struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(raw, &body) == nil {
			e.Code, e.Message = body.Error.Code, body.Error.Message
		}
	}
	return e
}

// wsConn is a WebSocket connection: one JSON document per text message.
type wsConn struct {
	c       *websocket.Conn
	scratch []byte
	wmu     sync.Mutex
}

func (w *wsConn) ReadFrame() ([]byte, error) {
	for {
		typ, r, err := w.c.NextReader()
		if err != nil {
			return nil, err
		}
		if typ != websocket.TextMessage {
			continue
		}
		w.scratch, err = readAll(r, w.scratch[:0])
		return w.scratch, err
	}
}

func (w *wsConn) WriteFrame(p []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.c.WriteMessage(websocket.TextMessage, p)
}

func (w *wsConn) SetDeadline(t time.Time) error {
	return w.c.NetConn().SetDeadline(t)
}

func (w *wsConn) Close() error { return w.c.Close() }

// readAll appends all of r to buf, growing it only as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), max(512, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// lineConn is a raw TCP connection: one JSON document per line.
type lineConn struct {
	c       net.Conn
	r       *bufio.Reader
	scratch []byte
	wmu     sync.Mutex
	wbuf    []byte
}

func newLineConn(c net.Conn) *lineConn {
	return &lineConn{c: c, r: bufio.NewReaderSize(c, readBufferSize)}
}

func (l *lineConn) ReadFrame() ([]byte, error) {
	for {
		line, err := l.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it in scratch.
			l.scratch = append(l.scratch[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(l.scratch) > maxServerFrame {
					return nil, fmt.Errorf("server line longer than %d bytes", maxServerFrame)
				}
				line, err = l.r.ReadSlice('\n')
				l.scratch = append(l.scratch, line...)
			}
			line = l.scratch
		}
		if err != nil {
			return nil, err
		}
		line = trimEOL(line)
		if len(line) > 0 {
			return line, nil
		}
	}
}

// trimEOL drops the trailing "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

func (l *lineConn) WriteFrame(p []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.wbuf = append(append(l.wbuf[:0], p...), '\n')
	_, err := l.c.Write(l.wbuf)
	if cap(l.wbuf) > readBufferSize {
		l.wbuf = nil // keep no large buffer on a connection
	}
	return err
}

func (l *lineConn) SetDeadline(t time.Time) error { return l.c.SetDeadline(t) }

func (l *lineConn) Close() error { return l.c.Close() }
