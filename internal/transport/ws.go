package transport

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// frameWriter is how a connection's frames reach its socket: straight to an
// event-loop socket (sockWriter), or through a goroutine for a blocking one
// (asyncWriter, for TLS).
type frameWriter interface {
	Write(frames [][]byte) (int, error)
}

// wsConn adapts a WebSocket connection to session.Transport. Server frames
// are written as pre-built WebSocket frames, so the bytes encoded once per
// message are shared by every connection.
type wsConn struct {
	c       *websocket.Conn
	w       frameWriter
	session *session.Session
	guard   frameGuard
	broken  bool   // the guard refused a frame: the rest of the input is ignored
	remote  string // the client's address: behind a trusted proxy, the one it forwarded
	headers http.Header
}

func (w *wsConn) Wire() protocol.Wire                { return protocol.WireWebSocket }
func (w *wsConn) RemoteAddr() string                 { return w.remote }
func (w *wsConn) Kind() session.Kind                 { return session.KindWebSocket }
func (w *wsConn) Headers() http.Header               { return w.headers }
func (w *wsConn) Write(frames [][]byte) (int, error) { return w.w.Write(frames) }

func (w *wsConn) Abort() {
	if a, ok := w.w.(*asyncWriter); ok {
		a.stop()
	}
	closeConn(w.c.Conn)
}

func (w *wsConn) Close(d protocol.Disconnect) error {
	if a, ok := w.w.(*asyncWriter); ok {
		_, _ = a.Write([][]byte{closeFrame(d)})
		a.CloseAfterFlush()
		return nil
	}
	_, _ = w.w.Write([][]byte{closeFrame(d)})
	closeGracefully(w.c.Conn)
	return nil
}

// onData feeds the engine what arrived, once the guard has read it. It runs
// on one goroutine at a time per connection, in arrival order.
func (w *wsConn) onData(data []byte) {
	if w.broken {
		return
	}
	n, v := w.guard.scan(data)
	if n > 0 {
		if err := w.c.Parse(data[:n]); err != nil {
			w.broken = true
			closeConn(w.c.Conn)
			return
		}
	}
	if v == violationNone {
		return
	}
	w.broken = true
	d := protocol.DisconnectFrameTooLarge
	switch v {
	case violationClose:
		// The client closes. The engine would answer its close frame
		// itself and, should that write fail (the server may have shut
		// down writing already), close the descriptor from this
		// goroutine, off the event loop, which may still hold an event for
		// the number and apply it to the next connection given that
		// number. The session answers instead, with a close frame 1000
		// after what it has queued, and leaves the descriptor to the
		// event loop.
		s := w.session
		w.c.Execute(func() { s.Leave(clientClosed) })
		return
	case violationUnmasked:
		d = protocol.DisconnectProtocolViolation
		d.Message = "client frames must be masked"
	case violationPings:
		d = protocol.DisconnectProtocolViolation
		d.Message = "too many pings"
	}
	// After the frames before it, which the engine hands to the same
	// ordered queue.
	s := w.session
	w.c.Execute(func() {
		if d.Code == protocol.DisconnectFrameTooLarge.Code {
			s.HandleOversize()
			return
		}
		s.Close(d)
	})
}

// clientClosed is how a session ends when its client sent a close frame:
// a close frame 1000 (normal closure) answers it.
var clientClosed = protocol.Disconnect{Code: 1000, Reason: session.ReasonClientClosed}

// closeFrame builds a WebSocket close frame carrying d's code and reason.
func closeFrame(d protocol.Disconnect) []byte {
	reason := d.Reason
	if len(reason) > 123 {
		reason = reason[:123]
	}
	b := []byte{0x88, byte(2 + len(reason)), byte(d.Code >> 8), byte(d.Code)}
	return append(b, reason...)
}

// pongFrame builds the pong that answers a ping with payload data (at most
// 125 bytes: the engine refuses longer control frames).
func pongFrame(data string) []byte {
	return append([]byte{0x8A, byte(len(data))}, data...)
}

// websocketGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// The opening handshake is Herald's own, not the engine's Upgrader: the
// Upgrader adds a plaintext connection to the event loop before it writes
// the 101 and returns, so a client's first frame can be handled before the
// server has attached a session to the connection. Here the connection is
// complete, session and all, before the event loop reads it.

// checkUpgrade validates a WebSocket opening handshake request (RFC 6455
// section 4.2.1) and returns the client's key.
func checkUpgrade(r *http.Request) (string, *protocol.Error) {
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return "", protocol.Errorf("upgrade_required", "this endpoint takes WebSocket connections: send Connection: Upgrade and Upgrade: websocket")
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return "", protocol.Errorf("unsupported_version", "only WebSocket version 13 is supported")
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return "", protocol.Errorf("invalid_key", "Sec-WebSocket-Key must be 16 bytes in base64")
	}
	return key, nil
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func switchingProtocols(key string) []byte {
	sum := sha1.Sum([]byte(key + websocketGUID))
	return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
}

// serveWebSocket answers GET /ws: admission, the handshake, then the
// connection leaves net/http for the event loop (or, with TLS, for a reader
// and a writer goroutine).
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	client, forwarded := s.proxies.clientAddr(r)
	if s.cfg.AdmitWebSocket != nil && !s.cfg.AdmitWebSocket(w, r, client) {
		return
	}
	remote := r.RemoteAddr
	if forwarded {
		remote = client.String()
	}
	key, perr := checkUpgrade(r)
	if perr != nil {
		w.Header().Set("Sec-WebSocket-Version", "13")
		status := http.StatusBadRequest
		if perr.Code == "upgrade_required" {
			w.Header().Set("Upgrade", "websocket")
			status = http.StatusUpgradeRequired
		}
		WriteError(w, status, string(perr.Code), perr.Message)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		WriteError(w, http.StatusInternalServerError, "internal", "the connection could not be upgraded")
		return
	}
	if brw.Reader.Buffered() > 0 {
		// RFC 6455 4.1: a client waits for the server's handshake before
		// it sends frames.
		refuseRaw(conn, http.StatusBadRequest, "early_data", "a WebSocket client must wait for the 101 response before sending frames")
		return
	}
	_ = conn.SetDeadline(time.Time{}) // net/http's request deadlines
	resp := switchingProtocols(key)
	if tc, ok := conn.(*net.TCPConn); ok {
		s.openEventLoopWebSocket(tc, resp, remote, s.keptHeaders(r))
		return
	}
	s.openBlockingWebSocket(conn, resp, remote, s.keptHeaders(r))
}

// openEventLoopWebSocket moves a plaintext connection to the event loop.
func (s *Server) openEventLoopWebSocket(tc *net.TCPConn, resp []byte, remote string, headers http.Header) {
	nc, err := nbio.NBConn(tc) // a duplicate descriptor; tc is closed
	if err != nil {
		_ = tc.Close()
		return
	}
	wsc := websocket.NewServerConn(s.upgrader, loopConn{nc}, "", false, false)
	wsc.Execute = nc.Execute
	wc := &wsConn{c: wsc, guard: frameGuard{limits: &s.guardLimits}, remote: remote, headers: headers}
	sw, err := newSockWriter(nc, s.writes, func() { wc.session.Writable() })
	if err != nil {
		_ = nc.Close()
		return
	}
	wc.w = sw
	wc.session = s.mgr.Open(wc)
	wsc.SetSession(wc.session)
	nc.SetSession(wsc)
	nc.OnData(func(_ *nbio.Conn, data []byte) { wc.onData(data) })
	if n, err := sw.Write([][]byte{resp}); err != nil || n < len(resp) {
		sw.close()
		_ = nc.Close()
		wc.session.Closed(errors.New("handshake response not written"))
		return
	}
	if err := s.ws.AddTransferredConn(nc); err != nil {
		// On most failures the engine has reported the connection closed;
		// Closed is idempotent for the rest.
		sw.close()
		wc.session.Closed(err)
	}
}

// openBlockingWebSocket serves a TLS connection from two goroutines.
func (s *Server) openBlockingWebSocket(c net.Conn, resp []byte, remote string, headers http.Header) {
	wsc := websocket.NewServerConn(s.upgrader, c, "", false, false)
	wsc.Execute = func(f func()) bool { f(); return true } // on the reader, in order
	aw := newAsyncWriter(c, s.cfg.MaxOutboundBytes)
	wc := &wsConn{c: wsc, w: aw, guard: frameGuard{limits: &s.guardLimits}, remote: remote, headers: headers}
	wc.session = s.mgr.Open(wc)
	wsc.SetSession(wc.session)
	if _, err := aw.Write([][]byte{resp}); err != nil {
		_ = c.Close()
		wc.session.Closed(err)
		return
	}
	s.goroutines.Go(aw.run)
	s.goroutines.Go(func() {
		buf := make([]byte, 4096)
		var err error
		for {
			var n int
			n, err = c.Read(buf)
			if n > 0 {
				wc.onData(buf[:n])
			}
			if err != nil {
				break
			}
		}
		aw.stop()
		wsc.CloseAndClean(err)
	})
}

// newUpgrader builds the WebSocket engine's settings and callbacks; the
// handshake is serveWebSocket's.
func (s *Server) newUpgrader() *websocket.Upgrader {
	limits := s.mgr.Limits()
	u := websocket.NewUpgrader()
	u.Engine = s.ws
	// Heartbeats are the session manager's; no timer per connection here.
	u.KeepaliveTime = 0
	// The guard refuses larger messages before the engine buffers them;
	// this is a second line.
	u.MessageLengthLimit = limits.MaxFrameBytes + 1024
	u.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		s, ok := c.Session().(*session.Session)
		if !ok {
			return
		}
		switch {
		case mt != websocket.TextMessage:
			s.HandleBinary()
		case len(data) > limits.MaxFrameBytes:
			s.HandleOversize()
		default:
			s.HandleFrame(data)
		}
	})
	u.SetPingHandler(func(c *websocket.Conn, data string) {
		if s, ok := c.Session().(*session.Session); ok {
			s.Touch()
			s.DeliverControl(pongFrame(data))
		}
	})
	u.SetPongHandler(func(c *websocket.Conn, _ string) {
		if s, ok := c.Session().(*session.Session); ok {
			s.Touch()
		}
	})
	u.OnClose(func(c *websocket.Conn, err error) {
		sess, ok := c.Session().(*session.Session)
		if !ok {
			return
		}
		if w, ok := sess.Transport().(*wsConn); ok {
			switch fw := w.w.(type) {
			case *asyncWriter:
				fw.stop()
			case *sockWriter:
				fw.close()
			}
		}
		sess.Closed(err)
	})
	return u
}
