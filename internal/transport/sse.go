package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// Server-Sent Events: for networks that let no WebSocket through. A client
// opens GET /sse, a receive-only EventSource stream that carries the
// server's frames, one event each; it sends its own frames, the same as
// on the other transports, in POST /sse requests that name the stream by
// the session key its first event gave. A stream is a session like any
// other: the same connect, limits, heartbeats and disconnects.
//
// Each stream holds one net/http goroutine, which writes what the session
// queues; the POSTs are handled on their own request goroutines, one at a
// time per stream, in the order they arrive.

// SessionHeader names the stream a POST /sse request is for.
const SessionHeader = "Herald-Session"

// maxPostFrames bounds the body of one POST /sse in frames: a POST carries
// at most this many frames' worth of bytes.
const maxPostFrames = 4

// sseConn is one SSE stream as a session.Transport. Its outbox holds
// what the session queued for the stream's goroutine to write.
type sseConn struct {
	key     string
	remote  string
	headers http.Header
	session *session.Session
	rc      *http.ResponseController
	outbox
	// ended is set, under the outbox's mu, once the stream's handler has
	// returned: its response is then no longer the stream's to touch.
	ended bool

	// handling serialises the POSTs of one stream, so that its frames are
	// handled one at a time and in order, as a socket's are.
	handling sync.Mutex
}

func (c *sseConn) Wire() protocol.Wire  { return protocol.WireLine }
func (c *sseConn) Kind() session.Kind   { return session.KindSSE }
func (c *sseConn) RemoteAddr() string   { return c.remote }
func (c *sseConn) Headers() http.Header { return c.headers }

// Write queues frames for the stream's writer; a stream whose queue
// overflows ends at once.
func (c *sseConn) Write(frames [][]byte) (int, error) {
	n, err := c.push(frames)
	if err == errOverflow {
		c.Abort()
	}
	return n, err
}

// Close ends the stream once what is queued, the disconnect included, has
// been written.
func (c *sseConn) Close(protocol.Disconnect) error {
	c.closeAfterFlush()
	return nil
}

// Abort ends the stream at once; a write in progress is cut short.
func (c *sseConn) Abort() {
	c.mu.Lock()
	if !c.ended {
		// Under mu: once the stream has ended the response is no longer
		// ours to touch.
		_ = c.rc.SetWriteDeadline(time.Now())
	}
	c.mu.Unlock()
	c.stop()
}

// end marks the stream over, once its writer has returned.
func (c *sseConn) end() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	c.stop()
}

// eventID is the SSE event id of a frame, what an EventSource keeps as
// lastEventId: for a message of a channel with history, "CHANNEL EPOCH
// OFFSET", its place in the channel; for any other frame none. The server
// does not read Last-Event-ID back: a new stream is a new connection, on
// which the client subscribes again with that epoch and offset, as on
// every transport.
func eventID(frame []byte) string {
	if !bytes.HasPrefix(frame, []byte(`{"type":"message"`)) || !bytes.Contains(frame, []byte(`"offset":`)) {
		return ""
	}
	var m struct {
		Channel string `json:"channel"`
		Epoch   string `json:"epoch"`
		Offset  uint64 `json:"offset"`
	}
	if json.Unmarshal(frame, &m) != nil || m.Channel == "" || m.Epoch == "" {
		return ""
	}
	// Channel names and epochs hold no space or line break.
	return m.Channel + " " + m.Epoch + " " + strconv.FormatUint(m.Offset, 10)
}

// appendEvent appends frame, one JSON document ending in '\n', as an SSE
// event. Server frames are compact JSON: they hold no raw newline, so one
// data line carries each.
func appendEvent(buf, frame []byte) []byte {
	if id := eventID(frame); id != "" {
		buf = append(buf, "id: "...)
		buf = append(buf, id...)
		buf = append(buf, '\n')
	}
	buf = append(buf, "data: "...)
	buf = append(buf, frame...)
	return append(buf, '\n')
}

// sseStreams finds a stream by its session key.
type sseStreams struct {
	mu    sync.Mutex
	byKey map[string]*sseConn
}

func (t *sseStreams) add(c *sseConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey == nil {
		t.byKey = make(map[string]*sseConn)
	}
	t.byKey[c.key] = c
}

func (t *sseStreams) remove(c *sseConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byKey, c.key)
}

func (t *sseStreams) get(key string) *sseConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byKey[key]
}

// abortAll ends every stream still open, at shutdown.
func (t *sseStreams) abortAll() {
	t.mu.Lock()
	open := make([]*sseConn, 0, len(t.byKey))
	for _, c := range t.byKey {
		open = append(open, c)
	}
	t.mu.Unlock()
	for _, c := range open {
		c.Abort()
	}
}

func newSessionKey() string {
	var b [18]byte
	_, _ = rand.Read(b[:]) // never fails on Linux; panics rather than return weak bytes
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// allowCORS checks a request's Origin as the WebSocket upgrade checks it
// and, for a page of another origin that may connect, says so in the
// response headers. It writes the refusal and returns false otherwise.
func (s *Server) allowCORS(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if s.cfg.AllowOrigin != nil && !s.cfg.AllowOrigin(r) {
		WriteError(w, http.StatusForbidden, "forbidden_origin", "origin "+origin+" may not connect here; see allowed-origins")
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	return true
}

// serveSSEPreflight answers a browser's CORS preflight for POST /sse.
func (s *Server) serveSSEPreflight(w http.ResponseWriter, r *http.Request) {
	if !s.allowCORS(w, r) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Content-Type, "+SessionHeader)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// serveSSE answers GET /sse: admission, then the stream, until the session
// or the client ends it.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	client, forwarded := s.proxies.clientAddr(r)
	if s.cfg.AdmitWebSocket != nil && !s.cfg.AdmitWebSocket(w, r, client) {
		return
	}
	if !s.allowCORS(w, r) {
		return
	}
	remote := r.RemoteAddr
	if forwarded {
		remote = client.String()
	}
	rc := http.NewResponseController(w)
	// The stream outlives net/http's request deadlines; the session's
	// heartbeats bound it instead.
	_ = rc.SetReadDeadline(time.Time{})
	c := &sseConn{key: newSessionKey(), remote: remote, headers: s.keptHeaders(r), rc: rc, outbox: newOutbox(s.cfg.MaxOutboundBytes)}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not hold events back
	w.WriteHeader(http.StatusOK)
	// Findable before the client learns its key.
	c.session = s.mgr.Open(c)
	s.sse.add(c)
	first := `event: session` + "\n" + `data: {"session":"` + c.key + `"}` + "\n\n"
	_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := writeFlush(w, rc, []byte(first))
	if err == nil {
		err = c.run(r.Context(), w)
	}
	s.sse.remove(c)
	c.end()
	c.session.Closed(err)
	_ = rc.SetWriteDeadline(time.Time{})
}

// run writes what the session queues until the stream ends, and returns
// why it ended (nil when the session closed it).
func (c *sseConn) run(ctx context.Context, w io.Writer) error {
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.signal:
		}
		q, closing, closed := c.take()
		if closed {
			return nil
		}
		if len(q) > 0 {
			buf = buf[:0]
			for _, f := range q {
				buf = appendEvent(buf, f)
			}
			_ = c.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := writeFlush(w, c.rc, buf); err != nil {
				return err
			}
			if cap(buf) > 64<<10 {
				buf = nil
			}
		}
		if closing {
			// The session closes after it has queued its last frame, and
			// take reads both at once: that frame has been written.
			return nil
		}
	}
}

func writeFlush(w io.Writer, rc *http.ResponseController, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return err
	}
	return rc.Flush()
}

// serveSSEPost answers POST /sse: the frames in the body, one a line as
// on raw TCP, go to the stream's session in order. Replies and errors go
// down the stream, as on the other transports; the POST's own answer says
// only whether the frames reached a session.
func (s *Server) serveSSEPost(w http.ResponseWriter, r *http.Request) {
	if !s.allowCORS(w, r) {
		return
	}
	key := r.Header.Get(SessionHeader)
	if key == "" {
		refuseBody(w, r)
		WriteError(w, http.StatusBadRequest, "missing_session", "send the session key of your stream (the first event of GET /sse) in the "+SessionHeader+" header")
		return
	}
	c := s.sse.get(key)
	if c == nil {
		refuseBody(w, r)
		WriteError(w, http.StatusNotFound, "unknown_session", "no open stream has this session key; open GET /sse again")
		return
	}
	maxLine := s.mgr.Limits().MaxFrameBytes
	limit := int64(maxPostFrames * (maxLine + 1))
	if r.ContentLength > limit {
		refuseBody(w, r)
		WriteError(w, http.StatusRequestEntityTooLarge, "too_large", "a POST to /sse carries at most "+strconv.FormatInt(limit, 10)+" bytes")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			WriteError(w, http.StatusRequestEntityTooLarge, "too_large", "a POST to /sse carries at most "+strconv.FormatInt(limit, 10)+" bytes")
			return
		}
		WriteError(w, http.StatusBadRequest, "invalid_body", "the request body could not be read")
		return
	}
	if oversize := c.handle(body, maxLine); oversize {
		WriteError(w, http.StatusRequestEntityTooLarge, "frame_too_large", "a frame is over "+strconv.Itoa(maxLine)+" bytes; the stream is closed")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handle hands the session each line of body, in order, and reports
// whether a line was over maxLine: that ends the session, as on raw TCP.
func (c *sseConn) handle(body []byte, maxLine int) (oversize bool) {
	c.handling.Lock()
	defer c.handling.Unlock()
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(line) > maxLine {
			c.session.HandleOversize()
			return true
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			c.session.Touch() // a keepalive, as an empty line is on TCP
			continue
		}
		c.session.HandleFrame(line)
	}
	return false
}

// refuseBody marks the answer to a request whose body is refused unread:
// the connection closes after it.
func refuseBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}
