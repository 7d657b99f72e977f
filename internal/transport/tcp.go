package transport

import (
	"bytes"
	"net"

	"github.com/lesismal/nbio"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// tcpConn is one raw TCP connection speaking newline-delimited JSON.
type tcpConn struct {
	c       net.Conn
	w       *sockWriter
	session *session.Session
	// partial holds the start of a line not yet terminated; nil between
	// lines, so an idle connection keeps no read buffer.
	partial []byte
	// broken is set once a line overflowed: the stream cannot be
	// resynchronised, so the rest of the input is ignored until close.
	broken bool
}

func (t *tcpConn) Wire() protocol.Wire                { return protocol.WireLine }
func (t *tcpConn) Write(frames [][]byte) (int, error) { return t.w.Write(frames) }
func (t *tcpConn) RemoteAddr() string                 { return t.c.RemoteAddr().String() }
func (t *tcpConn) Abort()                             { closeConn(t.c) }
func (t *tcpConn) Kind() session.Kind                 { return session.KindTCP }
func (t *tcpConn) Close(protocol.Disconnect) error {
	closeGracefully(t.c)
	return nil
}

// onData splits what arrived into lines. It runs on the poller goroutine,
// so it only cuts and copies; the lines are handled on the task pool, in
// order, through the connection's executor.
func (t *tcpConn) onData(nc *nbio.Conn, data []byte, maxLine int) {
	if t.broken {
		return
	}
	var lines [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(t.partial)+len(data) > maxLine {
				t.partial = nil
				t.oversize(nc, lines)
				return
			}
			t.partial = append(t.partial, data...)
			break
		}
		line := data[:i]
		data = data[i+1:]
		if t.partial != nil {
			line = append(t.partial, line...)
			t.partial = nil
		} else {
			line = bytes.Clone(line)
		}
		if len(line) > maxLine {
			t.oversize(nc, lines)
			return
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			t.session.Touch() // blank lines are allowed as keepalives
			continue
		}
		lines = append(lines, line)
	}
	if len(lines) > 0 {
		s := t.session
		nc.Execute(func() {
			for _, l := range lines {
				s.HandleFrame(l)
			}
		})
	}
}

func (t *tcpConn) oversize(nc *nbio.Conn, before [][]byte) {
	t.broken = true
	s := t.session
	nc.Execute(func() {
		for _, l := range before {
			s.HandleFrame(l)
		}
		s.HandleOversize()
	})
}
