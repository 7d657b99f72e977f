package server

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/testcert"
)

const testAPIKey = "test-api-key-0123456789abcdef0123"

// rawHTTP sends req on a new connection and returns the status line of the
// response, or the read error.
func rawHTTP(t *testing.T, addr, req string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// The server answers a request whose credentials or declared size it
// refuses before it reads the body: an unauthenticated upload costs
// nothing, however large it claims or turns out to be.
func TestAPIRefusesBeforeReadingBody(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Insecure = false
	cfg.TokenSecret = strings.Repeat("s", 32)
	cfg.APIKeys = []string{testAPIKey}
	srv := startServer(t, cfg)
	addr := srv.HTTPAddr().String()
	cases := []struct{ name, headers, want string }{
		{"chunked without a key", "Transfer-Encoding: chunked\r\n", "401"},
		{"huge length without a key", "Content-Length: 1073741824\r\n", "401"},
		{"huge length with a key", "Content-Length: 1073741824\r\nAuthorization: Bearer " + testAPIKey + "\r\n", "413"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Headers only: a server that waits for the body never answers.
			line, err := rawHTTP(t, addr, "POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+tc.headers+"\r\n")
			if err != nil {
				t.Fatalf("no answer before the body was sent: %v", err)
			}
			if !strings.Contains(line, " "+tc.want+" ") {
				t.Fatalf("status line %q, want %s", line, tc.want)
			}
		})
	}
}

// Request headers are bounded: a client that sends header lines without
// end gets 431 once it passes the bound, not a server that buffers them.
func TestHeaderBytesBounded(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	c, err := net.Dial("tcp", srv.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		line := "X-Filler: " + strings.Repeat("a", 1000) + "\r\n"
		for range 1 << 10 { // 1 MiB, never ending the headers
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(status, " 431 ") {
		t.Fatalf("status %q, err %v; want 431", status, err)
	}
}

// One address cannot hold more HTTP connections open than the bound; the
// next gets a JSON 429, and a slot frees when a connection closes.
func TestHTTPConnectionsPerIP(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.HTTPConnsPerIP = 4
	srv := startServer(t, cfg)
	addr := srv.HTTPAddr().String()
	var held []net.Conn
	for range cfg.HTTPConnsPerIP {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The held connections are counted when the server takes them up,
	// which it does on its own goroutines: poll until it refuses.
	var body string
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusTooManyRequests {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		body = string(b)
		return nil
	})
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "too_many_connections" {
		t.Fatalf("body %q: %v", body, err)
	}
	_ = held[0].Close()
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		line, err := rawHTTP(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if err != nil || !strings.Contains(line, " 200 ") {
			return fmt.Errorf("status %q, err %v", line, err)
		}
		return nil
	})
}

// Idle connections end, with and without TLS: a keep-alive connection
// after http-idle-timeout, and one that never sends a request (or never
// completes its TLS handshake) after handshake-timeout.
func TestIdleHTTPConnectionsEnd(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[secure], func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.HTTPIdleTimeout = time.Second
			cfg.HandshakeTimeout = 500 * time.Millisecond
			if secure {
				cfg.TLSCert, cfg.TLSKey, _ = testcert.SelfSigned(t)
			}
			srv := startServer(t, cfg)
			addr := srv.HTTPAddr().String()
			dial := func() (net.Conn, error) { return net.Dial("tcp", addr) }

			silent, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()
			expectEOF(t, silent, 5*time.Second)

			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			if secure {
				c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("healthz: %v", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, br); isTimeout(err) {
				t.Fatal("idle keep-alive connection still open")
			}
		})
	}
}

func expectEOF(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	if _, err := io.Copy(io.Discard, c); isTimeout(err) {
		t.Fatalf("connection still open after %s", within)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Every request is answered, also when each comes on a connection of its
// own that the client asks to close: a backend must never see an error for
// a message that was published.
func TestConnectionCloseRequestsAllAnswered(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig())
	base := "http://" + srv.HTTPAddr().String()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	const calls = 1500
	failed := 0
	var firstErr error
	for i := range calls {
		var resp *http.Response
		var err error
		switch i % 3 {
		case 0:
			resp, err = hc.Post(base+"/v1/publish", "application/json", strings.NewReader(`{"channel":"room:1","data":1}`))
		case 1:
			resp, err = hc.Get(base + "/v1/stats")
		default:
			resp, err = hc.Get(base + "/healthz")
		}
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests got no answer; first: %v", failed, calls, firstErr)
	}
}

// wsRaw opens a WebSocket by hand, so that a test can send frames no
// library would.
type wsRaw struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialWSRaw(t *testing.T, srv *Server) *wsRaw {
	t.Helper()
	c, err := net.Dial("tcp", srv.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(key[:])+"\r\n\r\n")
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v", err)
	}
	return &wsRaw{t: t, c: c, br: br}
}

// frame writes one frame: fin set, masked unless told otherwise, with the
// given 64-bit length field when length is not nil.
func (w *wsRaw) frame(opcode byte, payload []byte, masked bool, length *uint64) error {
	b := []byte{0x80 | opcode, 0}
	n := uint64(len(payload))
	if length != nil {
		n = *length
	}
	switch {
	case length != nil || n > 65535:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, n)
	case n > 125:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = byte(n)
	}
	p := append([]byte(nil), payload...)
	if masked {
		b[1] |= 0x80
		mask := []byte{1, 2, 3, 4}
		b = append(b, mask...)
		for i := range p {
			p[i] ^= mask[i%4]
		}
	}
	_, err := w.c.Write(append(b, p...))
	return err
}

func (w *wsRaw) text(s string) error { return w.frame(0x1, []byte(s), true, nil) }

// closed reads until the server closes and returns the disconnect push it
// sent and the code of its close frame.
func (w *wsRaw) closed(within time.Duration) (disconnect *frame, closeCode int) {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(within))
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			if isTimeout(err) {
				w.t.Fatalf("connection still open after %s", within)
			}
			return disconnect, closeCode
		}
		n := int(h[1] & 0x7F)
		switch n {
		case 126:
			var l [2]byte
			_, _ = io.ReadFull(w.br, l[:])
			n = int(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			_, _ = io.ReadFull(w.br, l[:])
			n = int(binary.BigEndian.Uint64(l[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.br, p); err != nil {
			return disconnect, closeCode
		}
		switch h[0] & 0x0F {
		case 0x1:
			var f frame
			if json.Unmarshal(p, &f) == nil && f.Type == "disconnect" {
				disconnect = &f
			}
		case 0x8:
			if len(p) >= 2 {
				closeCode = int(binary.BigEndian.Uint16(p))
			}
		}
	}
}

// Frames the server must refuse end the connection with a disconnect push
// that says why, then a close frame with the same code: before connect and
// after it alike.
func TestWebSocketFramesRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxFrameBytes = 1024
	cfg.OpsPerSecond, cfg.OpsBurst = 10, 20
	srv := startServer(t, cfg)
	topBit := uint64(1) << 63
	cases := []struct {
		name string
		send func(w *wsRaw) error
		code int
	}{
		{"length with the top bit set", func(w *wsRaw) error { return w.frame(0x1, nil, true, &topBit) }, 3501},
		{"just over the limit", func(w *wsRaw) error { return w.text(`"` + strings.Repeat("x", 1100) + `"`) }, 3501},
		{"far over the limit", func(w *wsRaw) error { return w.text(`"` + strings.Repeat("x", 5000) + `"`) }, 3501},
		{"fragments summing over the limit", func(w *wsRaw) error {
			part := []byte(strings.Repeat("x", 600))
			if err := w.frameFragment(0x1, part); err != nil {
				return err
			}
			return w.frameFragment(0x0, part)
		}, 3501},
		{"unmasked", func(w *wsRaw) error { return w.frame(0x1, []byte(`{"op":"ping"}`), false, nil) }, 3500},
		{"ping flood", func(w *wsRaw) error {
			for range 200 {
				if err := w.frame(0x9, []byte("p"), true, nil); err != nil {
					return nil // closed already
				}
			}
			return nil
		}, 3500},
	}
	for _, connected := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/connected=%v", tc.name, connected), func(t *testing.T) {
				w := dialWSRaw(t, srv)
				if connected {
					if err := w.text(`{"op":"connect","id":1,"user":"u"}`); err != nil {
						t.Fatal(err)
					}
				}
				if err := tc.send(w); err != nil {
					t.Fatal(err)
				}
				d, code := w.closed(5 * time.Second)
				if d == nil || d.Code != tc.code || code != tc.code {
					t.Fatalf("disconnect %+v, close code %d; want %d", d, code, tc.code)
				}
			})
		}
	}
}

// frameFragment writes a masked frame without fin.
func (w *wsRaw) frameFragment(opcode byte, payload []byte) error {
	b := []byte{opcode, 0x80 | 126}
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, 0, 0, 0, 0) // a zero mask leaves the payload as it is
	_, err := w.c.Write(append(b, payload...))
	return err
}

// A client that reads everything is never dropped for the server's own
// writes to clients that read nothing: its messages arrive, in order, while
// a crowd of non-readers falls behind and is dropped.
func TestReaderNotDroppedAmongNonReaders(t *testing.T) {
	cfg := testConfig()
	cfg.MaxOutboundBytes = 256 << 10
	cfg.OpsPerSecond, cfg.OpsBurst = 1e6, 1e6
	srv := startServer(t, cfg)
	// Clients that never read, with small receive buffers so that the
	// kernel soon stops taking data for them.
	const stalled = 200
	dialer := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	for i := range stalled {
		nc, err := dialer.Dial("tcp", srv.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		c := &conn{t: t, tcp: nc, rd: bufio.NewReader(nc)}
		c.connect(fmt.Sprintf("stalled%d", i))
		c.subscribe("firehose:big")
	}
	var wg sync.WaitGroup
	reader := dialWS(t, srv)
	reader.connect("reader")
	reader.subscribe("firehose:big")
	const messages = 100
	got := make(chan error, 1)
	wg.Add(1)
	go func() { // the reader keeps up on its own goroutine
		defer wg.Done()
		for i := range messages {
			f, err := reader.readFrameErr(10 * time.Second)
			for err == nil && f.Type != "message" {
				f, err = reader.readFrameErr(10 * time.Second)
			}
			if err != nil {
				got <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			var n struct{ N int }
			if json.Unmarshal(f.Data, &n) != nil || n.N != i {
				got <- fmt.Errorf("message %d: got %s", i, f.Data)
				return
			}
		}
		got <- nil
	}()
	pub := dialTCP(t, srv)
	pub.connect("pub")
	pad := strings.Repeat("x", 48<<10)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	for i := range messages {
		pub.reply(pub.send(map[string]any{"op": "publish", "channel": "firehose:big", "data": map[string]any{"n": i, "pad": pad}}))
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// What the non-readers could not take is held as references to the
	// frames every subscriber shares, not as a copy each: 200 copies of
	// their bound would be 50 MiB. (Outside Linux the event loop buffers
	// a copy per connection.)
	t.Logf("heap in use grew by %d MiB at most", (peak-base)>>20)
	if grew := peak - base; grew > 25<<20 && runtime.GOOS == "linux" {
		t.Errorf("heap in use grew by %d MiB during the burst", grew>>20)
	}
	wg.Wait()
	if len(srv.Hub().UserConnections("reader")) != 1 {
		t.Fatal("the reader was dropped")
	}
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if n := srv.Hub().Subscribers("firehose:big"); n != 1 {
			return fmt.Errorf("%d subscribers left, want the reader alone", n)
		}
		return nil
	})
}

// Connections that the server ends while new ones arrive never take a new
// one down with them: every client of a stream of refused connects gets
// its error reply. (A descriptor closed outside the event loop's poller
// could be reused by the next connection while the poller still held an
// event for the old one.)
func TestRefusedConnectsAllAnswered(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Insecure = false
	cfg.TokenSecret = strings.Repeat("s", 32)
	srv := startServer(t, cfg)
	const clients, rounds = 8, 300
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	refused := func(ws bool) error {
		const connect = `{"id":1,"op":"connect","token":"not.a.token"}`
		var reply []byte
		if ws {
			c, _, err := websocket.DefaultDialer.Dial("ws://"+srv.HTTPAddr().String()+"/ws", nil)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_ = c.WriteMessage(websocket.TextMessage, []byte(connect))
			_, reply, err = c.ReadMessage()
			if err != nil {
				return err
			}
		} else {
			c, err := net.Dial("tcp", srv.TCPAddr().String())
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, connect+"\n")
			line, err := bufio.NewReader(c).ReadBytes('\n')
			if err != nil {
				return err
			}
			reply = line
		}
		if !strings.Contains(string(reply), `"unauthorized"`) {
			return fmt.Errorf("reply %s", reply)
		}
		return nil
	}
	for i := range clients {
		wg.Go(func() {
			for range rounds {
				if err := refused(i%2 == 0); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d refused connects got no reply; first: %v", n, clients*rounds, first)
	}
}
