package transport

import (
	"net"
	"net/http"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// wsConn adapts a WebSocket connection to session.Transport. Server frames
// are written as pre-built WebSocket frames straight to the socket, so the
// bytes encoded once per message are shared by every connection.
type wsConn struct {
	c *websocket.Conn
}

func (w wsConn) Wire() protocol.Wire         { return protocol.WireWebSocket }
func (w wsConn) Write(frames [][]byte) error { return writeFrames(w.c.Conn, frames) }
func (w wsConn) RemoteAddr() string          { return w.c.RemoteAddr().String() }
func (w wsConn) underlying() net.Conn        { return w.c.Conn }
func (w wsConn) Close(d protocol.Disconnect) error {
	_ = w.c.WriteClose(d.Code, d.Reason)
	closeGracefully(w.c.Conn)
	return nil
}

// newUpgrader builds the WebSocket upgrader whose callbacks feed sessions.
func newUpgrader(mgr *session.Manager) *websocket.Upgrader {
	limits := mgr.Limits()
	u := websocket.NewUpgrader()
	// Origins are checked before the upgrade, with a JSON error.
	u.CheckOrigin = func(*http.Request) bool { return true }
	// Heartbeats are the session manager's; no timer per connection here.
	u.KeepaliveTime = 0
	// The engine refuses frames far over the limit before buffering them;
	// the session closes frames just over it with a clear reason.
	u.MessageLengthLimit = 2*limits.MaxFrameBytes + 1024
	u.OnOpen(func(c *websocket.Conn) {
		c.SetSession(mgr.Open(wsConn{c: c}))
	})
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
		if s, ok := c.Session().(*session.Session); ok {
			s.Closed(err)
		}
	})
	return u
}
