package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/poll"
)

// testDataDir is the data directory of the test servers: insecure servers
// too load or create a token secret there.
var testDataDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-server-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testDataDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// testConfig is the default configuration on random loopback ports, in
// insecure mode.
func testConfig() config.Config {
	cfg := config.Default()
	cfg.DataDir = testDataDir
	cfg.HTTP = "127.0.0.1:0"
	cfg.TCP = "127.0.0.1:0"
	cfg.Insecure = true
	cfg.ClientBroadcast = true
	cfg.PublishPerSecond, cfg.PublishBurst = 1e6, 1e6
	cfg.ConnectsPerIP = 0
	return cfg
}

func startServer(t *testing.T, cfg config.Config) *Server {
	t.Helper()
	return startServerWith(t, cfg, nil)
}

// startServerWith is startServer that lets prepare set the server's test
// seams between New and Start.
func startServerWith(t *testing.T, cfg config.Config, prepare func(*Server)) *Server {
	t.Helper()
	if cfg.DataDir == testDataDir {
		// Each server locks its store: one directory each.
		cfg.DataDir = t.TempDir()
	}
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	if prepare != nil {
		prepare(srv)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// checkFor polls fn until it returns nil or total elapses.
func checkFor(t *testing.T, total, step time.Duration, fn func() error) {
	t.Helper()
	poll.Until(t, total, step, fn)
}

// frame is a decoded server frame.
type frame struct {
	Type      string          `json:"type"`
	ID        json.RawMessage `json:"id"`
	Result    json.RawMessage `json:"result"`
	Error     *struct{ Code, Message string }
	Kind      string          `json:"kind"`
	Channel   string          `json:"channel"`
	To        string          `json:"to"`
	From      string          `json:"from"`
	Offset    uint64          `json:"offset"`
	Epoch     string          `json:"epoch"`
	Seq       uint64          `json:"seq"`
	TS        int64           `json:"ts"`
	Data      json.RawMessage `json:"data"`
	Code      int             `json:"code"`
	Reason    string          `json:"reason"`
	Reconnect bool            `json:"reconnect"`
	raw       string
}

// conn is a raw test client over either transport.
type conn struct {
	t    *testing.T
	ws   *websocket.Conn
	tcp  net.Conn
	sse  *sseClient
	rd   *bufio.Reader
	next uint64
	// held keeps frames read while looking for a reply, for expect.
	held []frame
}

func dialWS(t *testing.T, srv *Server) *conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+srv.HTTPAddr().String()+"/ws", nil)
	if err != nil {
		t.Fatalf("dial ws: %v", err)
	}
	c := &conn{t: t, ws: ws}
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

func dialTCP(t *testing.T, srv *Server) *conn {
	t.Helper()
	nc, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatalf("dial tcp: %v", err)
	}
	c := &conn{t: t, tcp: nc, rd: bufio.NewReader(nc)}
	t.Cleanup(func() { _ = nc.Close() })
	return c
}

// close closes the client's socket.
func (c *conn) close() {
	switch {
	case c.ws != nil:
		_ = c.ws.Close()
	case c.sse != nil:
		_ = c.sse.body.Close()
	default:
		_ = c.tcp.Close()
	}
}

type dialer func(*testing.T, *Server) *conn

var transports = []struct {
	name string
	dial dialer
}{{"ws", dialWS}, {"tcp", dialTCP}, {"sse", dialSSE}}

func (c *conn) writeRaw(s string) {
	c.t.Helper()
	if err := c.tryWrite(s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// tryWrite writes one frame; it is safe outside the test goroutine.
func (c *conn) tryWrite(s string) error {
	if c.ws != nil {
		return c.ws.WriteMessage(websocket.TextMessage, []byte(s))
	}
	if c.sse != nil {
		return c.sse.write(s)
	}
	_, err := io.WriteString(c.tcp, s+"\n")
	return err
}

func (c *conn) send(v map[string]any) uint64 {
	c.t.Helper()
	c.next++
	v["id"] = c.next
	b, _ := json.Marshal(v)
	c.writeRaw(string(b))
	return c.next
}

// readFrame reads the next server frame or fails after d.
func (c *conn) readFrameErr(d time.Duration) (frame, error) {
	var raw []byte
	var err error
	switch {
	case c.ws != nil:
		_ = c.ws.SetReadDeadline(time.Now().Add(d))
		_, raw, err = c.ws.ReadMessage()
	case c.sse != nil:
		raw, err = c.sse.read(d)
	default:
		_ = c.tcp.SetReadDeadline(time.Now().Add(d))
		raw, err = c.rd.ReadBytes('\n')
	}
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(raw, &f); err != nil {
		return frame{}, fmt.Errorf("bad server frame %q: %w", raw, err)
	}
	f.raw = strings.TrimSpace(string(raw))
	return f, nil
}

func (c *conn) readFrame() frame {
	c.t.Helper()
	if len(c.held) > 0 {
		f := c.held[0]
		c.held = c.held[1:]
		return f
	}
	f, err := c.readFrameErr(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// expect reads frames, skipping pings, until one of the given type arrives.
func (c *conn) expect(typ string) frame {
	c.t.Helper()
	for {
		f := c.readFrame()
		if f.Type == typ {
			return f
		}
		if f.Type != "ping" {
			c.t.Fatalf("want a %s frame, got %s", typ, f.raw)
		}
	}
}

// reply reads until the reply to id and fails on an error reply.
func (c *conn) reply(id uint64) frame {
	c.t.Helper()
	f := c.replyTo(id)
	if f.Error != nil {
		c.t.Fatalf("request %d failed: %s", id, f.raw)
	}
	return f
}

// replyTo reads until the reply to id; messages read meanwhile are held
// for expect, pings are dropped.
func (c *conn) replyTo(id uint64) frame {
	c.t.Helper()
	want := fmt.Sprint(id)
	var held []frame
	defer func() { c.held = append(held, c.held...) }()
	for {
		f := c.readFrame()
		switch {
		case f.Type == "reply" && string(f.ID) == want:
			return f
		case f.Type == "reply" && f.Error != nil:
			c.t.Fatalf("unexpected error reply while waiting for %d: %s", id, f.raw)
		case f.Type != "ping":
			held = append(held, f)
		}
	}
}

// wantError reads the next reply and checks its error code.
func (c *conn) wantError(code string) frame {
	c.t.Helper()
	f := c.expect("reply")
	if f.Error == nil || f.Error.Code != code {
		c.t.Fatalf("want error %s, got %s", code, f.raw)
	}
	return f
}

func (c *conn) connect(user string) {
	c.t.Helper()
	c.reply(c.send(map[string]any{"op": "connect", "user": user}))
}

func (c *conn) subscribe(channel string) {
	c.t.Helper()
	c.reply(c.send(map[string]any{"op": "subscribe", "channel": channel}))
}

// expectClosed reads until the connection ends, returning the disconnect
// frame if one came.
func (c *conn) expectClosed(d time.Duration) *frame {
	c.t.Helper()
	var got *frame
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		f, err := c.readFrameErr(time.Until(deadline))
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatalf("connection still open after %s", d)
			}
			// Close this side too, as a client does on the end of the
			// stream, so that the server need not wait for it.
			c.close()
			return got
		}
		if f.Type == "disconnect" {
			got = &f
		}
	}
	c.t.Fatalf("connection still open after %s", d)
	return nil
}

// expectSilence checks that no frame but pings arrives within d.
func (c *conn) expectSilence(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		f, err := c.readFrameErr(time.Until(deadline))
		if err != nil {
			return
		}
		if f.Type != "ping" {
			c.t.Fatalf("want nothing, got %s", f.raw)
		}
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func itoa(i int) string { return fmt.Sprint(i) }

func asCloseError(err error, target **websocket.CloseError) bool {
	ce, ok := err.(*websocket.CloseError)
	if ok {
		*target = ce
	}
	return ok
}
