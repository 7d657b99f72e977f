package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The abuse scenario plays, one after the other, what a hostile client or
// a careless one does to a push server's HTTP and WebSocket listener, each
// bounded in bytes and time, and reads the server's memory around each:
// a server that holds its bounds answers early and stays small.

// Attack is one abuse and what the server made of it.
type Attack struct {
	Name string `json:"name"`
	// Outcome is what the server did, in words; Held says whether that is
	// what a hardened server does.
	Outcome   string `json:"outcome"`
	Held      bool   `json:"held"`
	SentBytes int64  `json:"sent_bytes"`
	// Server memory before the attack, its peak during it, and after it.
	RSSBeforeBytes int64 `json:"rss_before_bytes,omitempty"`
	RSSPeakBytes   int64 `json:"rss_peak_bytes,omitempty"`
	RSSAfterBytes  int64 `json:"rss_after_bytes,omitempty"`
}

// abuse bounds.
const (
	abuseBodyBytes      = 1 << 30  // an unauthenticated chunked upload
	abuseLengthBytes    = 64 << 20 // each of the declared-length uploads
	abuseLengthUploads  = 8
	abuseHeaderBytes    = 256 << 20 // header lines that never end
	abuseFrameBytes     = 16 << 20  // each upload behind a top-bit frame length
	abuseFrameConns     = 4
	abusePingBytes      = 20 << 20
	abuseIdleConns      = 1000
	abuseCloseRequests  = 1500
	abuseAnswerDeadline = 10 * time.Second
)

func (r *runner) runAbuse(ctx context.Context) {
	api := r.eps.apis[0] // one listener: the first, with several
	host := strings.TrimPrefix(strings.TrimPrefix(api, "http://"), "https://")
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	attacks := []struct {
		name string
		run  func(ctx context.Context, sent *atomic.Int64) (string, bool)
	}{
		{"chunked upload without a key (1 GiB)", func(ctx context.Context, sent *atomic.Int64) (string, bool) {
			return upload(ctx, api, "Transfer-Encoding: chunked\r\n", abuseBodyBytes, sent)
		}},
		{fmt.Sprintf("%d uploads of a declared 64 MiB without a key", abuseLengthUploads), func(ctx context.Context, sent *atomic.Int64) (string, bool) {
			return parallel(abuseLengthUploads, func() (string, bool) {
				return upload(ctx, api, fmt.Sprintf("Content-Length: %d\r\n", abuseLengthBytes), abuseLengthBytes, sent)
			})
		}},
		{"header lines without end (256 MiB)", func(ctx context.Context, sent *atomic.Int64) (string, bool) {
			return headerFlood(ctx, api, sent)
		}},
		{fmt.Sprintf("%d WebSockets sending a frame length with the top bit set", abuseFrameConns), func(ctx context.Context, sent *atomic.Int64) (string, bool) {
			return parallel(abuseFrameConns, func() (string, bool) { return topBitFrame(ctx, host, sent) })
		}},
		{"WebSocket ping flood, pongs never read (20 MiB)", func(ctx context.Context, sent *atomic.Int64) (string, bool) {
			return pingFlood(ctx, host, sent)
		}},
		{fmt.Sprintf("%d idle HTTP connections from one address", abuseIdleConns), func(ctx context.Context, _ *atomic.Int64) (string, bool) {
			return idleConnections(ctx, api)
		}},
		{fmt.Sprintf("%d requests with Connection: close", abuseCloseRequests), func(ctx context.Context, _ *atomic.Int64) (string, bool) {
			return closeRequests(ctx, api, r.o.APIKey)
		}},
	}
	for _, a := range attacks {
		if ctx.Err() != nil {
			return
		}
		res := Attack{Name: a.name}
		if s, ok := r.sampleProc(); ok {
			res.RSSBeforeBytes = s.RSSBytes
		}
		stop := make(chan struct{})
		peak := r.sampleRSSPeak(stop)
		var sent atomic.Int64
		res.Outcome, res.Held = a.run(ctx, &sent)
		close(stop)
		res.RSSPeakBytes = <-peak
		res.SentBytes = sent.Load()
		time.Sleep(time.Second) // for connections to close
		if s, ok := r.sampleProc(); ok {
			res.RSSAfterBytes = s.RSSBytes
		}
		if !res.Held {
			r.res.fail("%s: %s", a.name, res.Outcome)
		}
		r.res.Attacks = append(r.res.Attacks, res)
	}
}

// parallel runs n copies of fn and reports the first outcome; it held if
// every copy held.
func parallel(n int, fn func() (string, bool)) (string, bool) {
	var wg sync.WaitGroup
	outcomes := make([]string, n)
	held := make([]bool, n)
	for i := range n {
		wg.Go(func() { outcomes[i], held[i] = fn() })
	}
	wg.Wait()
	for i := range n {
		if !held[i] {
			return outcomes[i], false
		}
	}
	return outcomes[0], true
}

// dialHTTP opens a plain connection to the API's host.
func dialHTTP(ctx context.Context, api string) (net.Conn, error) {
	host := strings.TrimPrefix(strings.TrimPrefix(api, "http://"), "https://")
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", host)
}

// streamUntilAnswered writes head, then up to limit bytes from fill, until
// the server answers or stops reading; it returns the status line (or how
// the connection ended) and whether the server answered before the upload
// was complete.
func streamUntilAnswered(ctx context.Context, c net.Conn, head string, limit int64, fill []byte, sent *atomic.Int64) (string, bool) {
	answered := make(chan string, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(abuseAnswerDeadline + time.Minute))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			answered <- "connection ended without an answer: " + err.Error()
			return
		}
		answered <- "answered " + strings.TrimSpace(line)
	}()
	_ = c.SetWriteDeadline(time.Now().Add(abuseAnswerDeadline))
	if _, err := io.WriteString(c, head); err != nil {
		return "header write failed: " + err.Error(), false
	}
	var written int64
	for written < limit && ctx.Err() == nil {
		select {
		case a := <-answered:
			return fmt.Sprintf("%s after %s of the upload", a, bytesIEC(float64(written))), strings.HasPrefix(a, "answered")
		default:
		}
		n, err := c.Write(fill)
		written += int64(n)
		sent.Add(int64(n))
		if err != nil {
			a := <-answered
			return fmt.Sprintf("%s after %s of the upload", a, bytesIEC(float64(written))), strings.HasPrefix(a, "answered")
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(abuseAnswerDeadline))
	return fmt.Sprintf("the whole %s was taken; then %s", bytesIEC(float64(written)), <-answered), false
}

func upload(ctx context.Context, api, header string, limit int64, sent *atomic.Int64) (string, bool) {
	c, err := dialHTTP(ctx, api)
	if err != nil {
		return "dial: " + err.Error(), false
	}
	defer c.Close()
	chunk := "8000\r\n" + strings.Repeat("x", 0x8000) + "\r\n"
	if !strings.Contains(header, "chunked") {
		chunk = strings.Repeat("x", 0x8000)
	}
	head := "POST /v1/publish HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n" + header + "\r\n"
	return streamUntilAnswered(ctx, c, head, limit, []byte(chunk), sent)
}

func headerFlood(ctx context.Context, api string, sent *atomic.Int64) (string, bool) {
	c, err := dialHTTP(ctx, api)
	if err != nil {
		return "dial: " + err.Error(), false
	}
	defer c.Close()
	line := []byte("X-Filler: " + strings.Repeat("a", 8180) + "\r\n")
	return streamUntilAnswered(ctx, c, "GET /healthz HTTP/1.1\r\nHost: bench\r\n", abuseHeaderBytes, line, sent)
}

// dialWebSocketRaw opens a WebSocket by hand, for frames no library sends.
func dialWebSocketRaw(ctx context.Context, host string) (net.Conn, *bufio.Reader, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, nil, err
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	_, err = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+host+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(key[:])+"\r\n\r\n")
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(abuseAnswerDeadline))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, nil, fmt.Errorf("upgrade refused: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, br, nil
}

// wsEnd reads server frames until the connection ends and returns the
// close code the server sent, or 0.
func wsEnd(br *bufio.Reader) int {
	code := 0
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return code
		}
		n := int64(h[1] & 0x7F)
		switch n {
		case 126:
			var l [2]byte
			_, _ = io.ReadFull(br, l[:])
			n = int64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			_, _ = io.ReadFull(br, l[:])
			n = int64(binary.BigEndian.Uint64(l[:]) & (1<<62 - 1))
		}
		p := make([]byte, min(n, 1<<16))
		if _, err := io.ReadFull(br, p); err != nil {
			return code
		}
		if h[0]&0x0F == 0x8 && len(p) >= 2 {
			code = int(binary.BigEndian.Uint16(p))
		}
	}
}

// wsFlood opens a WebSocket, writes head and then fill until limit bytes
// or an error, and reports how the server ended the connection: held when
// its close code is one of want.
func wsFlood(ctx context.Context, host string, head, fill []byte, limit int64, sent *atomic.Int64, want ...int) (string, bool) {
	c, br, err := dialWebSocketRaw(ctx, host)
	if err != nil {
		return err.Error(), false
	}
	defer c.Close()
	// What the server sends back is never read until the end: a client
	// that does not read its pongs, or anything else.
	closed := make(chan int, 1)
	go func() { closed <- wsEnd(br) }()
	_ = c.SetWriteDeadline(time.Now().Add(abuseAnswerDeadline))
	var written int64
	if _, err := c.Write(head); err == nil {
		for written < limit && ctx.Err() == nil {
			n, err := c.Write(fill)
			written += int64(n)
			sent.Add(int64(n))
			if err != nil {
				break
			}
		}
	}
	select {
	case code := <-closed:
		return fmt.Sprintf("closed with %d after %s", code, bytesIEC(float64(written))), slices.Contains(want, code)
	case <-time.After(abuseAnswerDeadline):
		return fmt.Sprintf("still open after %s", bytesIEC(float64(written))), false
	}
}

// topBitFrame sends a frame header whose 64-bit length has its top bit set,
// then payload: refused as frame_too_large (or by a WebSocket close for a
// frame too big or malformed).
func topBitFrame(ctx context.Context, host string, sent *atomic.Int64) (string, bool) {
	head := []byte{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}
	return wsFlood(ctx, host, head, make([]byte, 64<<10), abuseFrameBytes, sent, 3501, 1009, 1002)
}

// pingFlood sends pings and never reads the pongs: refused as a
// protocol_violation, not by some other limit.
func pingFlood(ctx context.Context, host string, sent *atomic.Int64) (string, bool) {
	ping := []byte{0x89, 0x81, 1, 2, 3, 4, 'p' ^ 1}
	batch := make([]byte, 0, 64<<10)
	for len(batch)+len(ping) <= cap(batch) {
		batch = append(batch, ping...)
	}
	return wsFlood(ctx, host, ping, batch, abusePingBytes, sent, 3500)
}

func idleConnections(ctx context.Context, api string) (string, bool) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range abuseIdleConns {
		c, err := dialHTTP(ctx, api)
		if err != nil {
			return "dial: " + err.Error(), false
		}
		conns = append(conns, c)
	}
	// A refused connection gets its answer at once; one held open has
	// nothing to say within the second.
	var n atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); err == nil && strings.Contains(line, " 429 ") {
				n.Add(1)
			}
		})
	}
	wg.Wait()
	refused := int(n.Load())
	held := len(conns) - refused
	return fmt.Sprintf("%d held open, %d refused with 429", held, refused), refused > 0
}

func closeRequests(ctx context.Context, api, key string) (string, bool) {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: abuseAnswerDeadline}
	lost := 0
	var first error
	for i := range abuseCloseRequests {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/publish", strings.NewReader(fmt.Sprintf(`{"channel":"bench:abuse","data":%d}`, i)))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := hc.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			lost++
			if first == nil {
				first = err
			}
		}
	}
	if lost > 0 {
		return fmt.Sprintf("%d of %d got no answer (first: %v)", lost, abuseCloseRequests, first), false
	}
	return fmt.Sprintf("all %d answered", abuseCloseRequests), true
}
