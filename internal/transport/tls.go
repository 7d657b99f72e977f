package transport

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// TLS connections are served by Go's crypto/tls rather than by the event
// loop: a maintained TLS stack matters more than the memory of an idle
// connection, and a TLS session's own buffers (tens of kilobytes) dwarf a
// goroutine's. Each TLS connection has a reader goroutine and a writer
// goroutine; plaintext connections live on the event loop.

func (s *Server) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func (s *Server) acceptTLS(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // the listener was drained or closed
		}
		if s.cfg.AdmitTCP != nil {
			if d := s.cfg.AdmitTCP(c.RemoteAddr()); d != nil {
				s.goroutines.Go(func() { refuseTLS(c, *d) })
				continue
			}
		}
		s.goroutines.Go(func() { s.serveTLS(c.(*tls.Conn)) })
	}
}

func refuseTLS(c net.Conn, d protocol.Disconnect) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write(protocol.DisconnectFrame(d).Bytes(protocol.WireLine))
	_ = c.Close()
}

// tlsLineConn is a TCP+TLS connection speaking newline-delimited JSON.
type tlsLineConn struct {
	c *tls.Conn
	w *asyncWriter
}

func (t *tlsLineConn) Wire() protocol.Wire                { return protocol.WireLine }
func (t *tlsLineConn) Write(frames [][]byte) (int, error) { return t.w.Write(frames) }
func (t *tlsLineConn) RemoteAddr() string                 { return t.c.RemoteAddr().String() }
func (t *tlsLineConn) Kind() session.Kind                 { return session.KindTCP }
func (t *tlsLineConn) Abort() {
	t.w.stop()
	_ = t.c.Close()
}
func (t *tlsLineConn) Close(protocol.Disconnect) error {
	t.w.CloseAfterFlush()
	return nil
}

// serveTLS reads lines from one TLS connection until it ends.
func (s *Server) serveTLS(c *tls.Conn) {
	limits := s.mgr.Limits()
	_ = c.SetDeadline(time.Now().Add(limits.HandshakeTimeout))
	if err := c.Handshake(); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	t := &tlsLineConn{c: c, w: newAsyncWriter(c, s.cfg.MaxOutboundBytes)}
	s.goroutines.Go(t.w.run)
	sess := s.mgr.Open(t)
	err := readLines(c, limits.MaxFrameBytes, sess)
	t.w.stop()
	_ = c.Close()
	sess.Closed(err)
}

// readLines feeds sess each line read from r, until r fails or a line is
// over maxLine.
func readLines(r io.Reader, maxLine int, sess *session.Session) error {
	br := bufio.NewReaderSize(r, 4096)
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, chunk...)
			if len(long) > maxLine {
				sess.HandleOversize()
				_, _ = io.Copy(io.Discard, r) // until the server closes it
				return nil
			}
			continue
		}
		if err != nil {
			return err
		}
		line := chunk
		if long != nil {
			line = append(long, chunk...)
			long = nil
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
		switch {
		case len(line) > maxLine:
			sess.HandleOversize()
			_, _ = io.Copy(io.Discard, r)
			return nil
		case len(bytes.TrimSpace(line)) == 0:
			sess.Touch()
		default:
			sess.HandleFrame(line)
		}
	}
}
