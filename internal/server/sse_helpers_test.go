package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/transport"
)

// sseClient is the SSE side of a test conn: the stream, read by a
// goroutine into frames, and the POSTs that carry the client's frames.
type sseClient struct {
	base   string
	key    string
	body   io.ReadCloser
	frames chan []byte // closed when the stream ends

	// The client's frames wait in pending for the poster, which sends
	// all that are waiting in one POST, as a browser client batches
	// them: a POST per frame, one at a time, could not send a flood.
	// hc carries the POSTs on connections of their own, closed with the
	// stream: a connection left idle, or dialled and never used, would
	// hold the server's shutdown for 5 s (net/http waits that long for a
	// new connection's first request).
	hc      *http.Client
	mu      sync.Mutex
	pending []string
	kick    chan struct{}
	posted  error // the last POST's network error
}

// postBatchBytes bounds one POST of the test client, within the server's
// bound of 4 frames' worth of bytes for the smallest frame limit the
// tests set (1 KiB).
const postBatchBytes = 4096

// openSSE opens a stream and reads its session key; it returns the
// response when the server refused the stream.
func openSSE(t *testing.T, srv *Server, header http.Header) (*sseClient, *http.Response) {
	t.Helper()
	base := "http://" + srv.HTTPAddr().String()
	req, _ := http.NewRequest("GET", base+"/sse", nil)
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open sse: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp
	}
	tr := &http.Transport{}
	c := &sseClient{base: base, body: resp.Body, frames: make(chan []byte, 16), kick: make(chan struct{}, 1), hc: &http.Client{Transport: tr}}
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() {
		_ = resp.Body.Close()
		close(done)
		<-stopped
		tr.CloseIdleConnections()
	})
	go func() {
		defer close(stopped)
		c.poster(done)
	}()
	rd := bufio.NewReader(resp.Body)
	event, data, err := readEvent(rd)
	if err != nil || event != "session" {
		t.Fatalf("first event %q %q: %v", event, data, err)
	}
	var s struct{ Session string }
	if err := json.Unmarshal([]byte(data), &s); err != nil || s.Session == "" {
		t.Fatalf("session event %q: %v", data, err)
	}
	c.key = s.Session
	go func() {
		defer close(c.frames)
		for {
			_, data, err := readEvent(rd)
			if err != nil {
				return
			}
			c.frames <- []byte(data)
		}
	}()
	return c, resp
}

func dialSSE(t *testing.T, srv *Server) *conn {
	t.Helper()
	c, resp := openSSE(t, srv, nil)
	if c == nil {
		t.Fatalf("open sse: %s", resp.Status)
	}
	return &conn{t: t, sse: c}
}

// readEvent reads one SSE event: its type and its data.
func readEvent(rd *bufio.Reader) (event, data string, err error) {
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data != "" || event != "" {
				return event, data, nil
			}
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data += line[len("data: "):]
		}
	}
}

// post sends body to the stream's session and returns the response.
func (c *sseClient) post(body string) (*http.Response, error) {
	req, _ := http.NewRequest("POST", c.base+"/sse", strings.NewReader(body))
	req.Header.Set(transport.SessionHeader, c.key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp, nil
}

// write queues one frame for the poster. A stream the server has closed
// answers 404, which is not an error here, as a write to a socket the
// server has just closed is not: the test reads how the stream ended.
func (c *sseClient) write(s string) error {
	c.mu.Lock()
	c.pending = append(c.pending, s)
	err := c.posted
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return err
}

// poster sends what write queued, in order, until done.
func (c *sseClient) poster(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-c.kick:
		}
		for {
			c.mu.Lock()
			var body strings.Builder
			n := 0
			for n < len(c.pending) && (n == 0 || body.Len()+len(c.pending[n])+1 <= postBatchBytes) {
				body.WriteString(c.pending[n] + "\n")
				n++
			}
			c.pending = c.pending[n:]
			c.mu.Unlock()
			if n == 0 {
				break
			}
			if _, err := c.post(body.String()); err != nil {
				c.mu.Lock()
				c.posted = err
				c.mu.Unlock()
			}
		}
	}
}

func (c *sseClient) read(d time.Duration) ([]byte, error) {
	select {
	case f, ok := <-c.frames:
		if !ok {
			return nil, io.EOF
		}
		return f, nil
	case <-time.After(d):
		return nil, os.ErrDeadlineExceeded
	}
}
