package transport

import (
	"net/http"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// wsConn adapts a WebSocket connection to session.Transport. Server frames
// are written as pre-built WebSocket frames straight to the socket, so the
// bytes encoded once per message are shared by every connection. A
// connection not on the event loop (TLS) writes through an asyncWriter.
type wsConn struct {
	c     *websocket.Conn
	async *asyncWriter // nil on the event loop
}

func (w *wsConn) Wire() protocol.Wire { return protocol.WireWebSocket }
func (w *wsConn) RemoteAddr() string  { return w.c.RemoteAddr().String() }

func (w *wsConn) Write(frames [][]byte) error {
	if w.async != nil {
		return w.async.Write(frames)
	}
	return writeFrames(w.c.Conn, frames)
}

func (w *wsConn) Close(d protocol.Disconnect) error {
	if w.async != nil {
		_ = w.async.Write([][]byte{closeFrame(d)})
		w.async.CloseAfterFlush()
		return nil
	}
	_ = w.c.WriteClose(d.Code, d.Reason)
	closeGracefully(w.c.Conn)
	return nil
}

// openWebSocket creates the session of a freshly upgraded connection.
func (s *Server) openWebSocket(c *websocket.Conn) {
	w := &wsConn{c: c}
	if rawConn(c.Conn) != nil {
		c.SetSession(s.mgr.Open(w))
		return
	}
	w.async = newAsyncWriter(c.Conn, s.cfg.MaxOutboundBytes)
	c.SetSession(s.mgr.Open(w))
	s.goroutines.Go(w.async.run)
	s.goroutines.Go(func() { c.HandleRead(4096) })
}

// closeFrame builds a WebSocket close frame carrying d's code and reason.
func closeFrame(d protocol.Disconnect) []byte {
	reason := d.Reason
	if len(reason) > 123 {
		reason = reason[:123]
	}
	b := []byte{0x88, byte(2 + len(reason)), byte(d.Code >> 8), byte(d.Code)}
	return append(b, reason...)
}

// newUpgrader builds the WebSocket upgrader whose callbacks feed sessions.
func (s *Server) newUpgrader() *websocket.Upgrader {
	mgr := s.mgr
	limits := mgr.Limits()
	u := websocket.NewUpgrader()
	// Origins are checked before the upgrade, with a JSON error.
	u.CheckOrigin = func(*http.Request) bool { return true }
	// Heartbeats are the session manager's; no timer per connection here.
	u.KeepaliveTime = 0
	// The engine refuses frames far over the limit before buffering them;
	// the session closes frames just over it with a clear reason.
	u.MessageLengthLimit = 2*limits.MaxFrameBytes + 1024
	// Blocking (TLS) connections are read by a goroutine the server starts
	// itself in openWebSocket, once the session is in place.
	u.BlockingModHandleRead = false
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
		}
		_ = c.WriteMessage(websocket.PongMessage, []byte(data))
	})
	u.SetPongHandler(func(c *websocket.Conn, _ string) {
		if s, ok := c.Session().(*session.Session); ok {
			s.Touch()
		}
	})
	u.OnClose(func(c *websocket.Conn, err error) {
		if sess, ok := c.Session().(*session.Session); ok {
			if w, ok := sess.Transport().(*wsConn); ok && w.async != nil {
				w.async.stop()
			}
			sess.Closed(err)
		}
	})
	return u
}
