package transport

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

var errOverflow = session.ErrOverflow

// HTTP server bounds, unless Config sets them. A request's headers are
// bounded like most servers bound them (larger ones get 431); a client has
// ReadHeaderTimeout to send them and ReadTimeout for the whole request,
// body included; an idle keep-alive connection is closed after
// IdleTimeout.
const (
	MaxHeaderBytes    = 16 << 10
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second
	IdleTimeout       = 30 * time.Second
)

// Config configures the listeners.
type Config struct {
	HTTPAddr string // HTTP listener: WebSocket at /ws plus Handler's routes
	TCPAddr  string // raw TCP listener; empty disables it
	// Handler serves every HTTP path but /ws (the server API, metrics...).
	Handler http.Handler
	// AdmitWebSocket decides whether a WebSocket upgrade request, or a
	// request for an SSE stream, from client (see TrustedProxies) may
	// proceed; when it may not, it has written the HTTP error response.
	AdmitWebSocket func(w http.ResponseWriter, r *http.Request, client netip.Addr) bool
	// AllowOrigin decides whether the page a browser request comes from
	// (its Origin header, which is set) may use the SSE transport; nil
	// allows every origin.
	AllowOrigin func(r *http.Request) bool
	// MaxOutboundBytes bounds the bytes queued for a TLS connection's
	// writer goroutine (and, outside Linux, in the event loop's buffers).
	MaxOutboundBytes int
	// HTTPConnsPerIP bounds the HTTP connections one address holds open
	// at once (0: no bound). Trusted proxies are exempt.
	HTTPConnsPerIP int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For or
	// Forwarded header names the client of an HTTP request (for the
	// WebSocket admission and the connection's address in logs). From any
	// other peer those headers are ignored. Raw TCP has no headers: its
	// client is always the peer.
	TrustedProxies []netip.Prefix
	// TLSCertFile and TLSKeyFile, when set, serve both listeners over TLS
	// (Go's crypto/tls, a reader and a writer goroutine per connection).
	TLSCertFile, TLSKeyFile string
	// AdmitTCP decides whether a new TCP connection may proceed; when it
	// may not, the connection gets the returned disconnect and is closed.
	AdmitTCP func(remote net.Addr) *protocol.Disconnect
	// ErrorLog receives net/http's own messages (malformed requests, TLS
	// handshake failures).
	ErrorLog *log.Logger
	// KeepHeaders names the headers of a WebSocket upgrade or SSE stream
	// request that the connection keeps for the server (see Headered):
	// the connect frame comes after the request, so they are captured
	// there. Raw TCP has no headers.
	KeepHeaders []string
	// ReadHeaderTimeout and IdleTimeout override the defaults above.
	ReadHeaderTimeout, IdleTimeout time.Duration
}

// Server runs the HTTP and TCP listeners. HTTP (the server API and the
// WebSocket handshake) is Go's net/http, whose limits, timeouts and
// connection handling are the best tried; an upgraded WebSocket connection
// then leaves it for an epoll event loop (nbio), as do raw TCP
// connections, so that an idle connection holds no goroutine.
type Server struct {
	cfg      Config
	proxies  *proxies
	mgr      *session.Manager
	log      *slog.Logger
	http     *http.Server
	ws       *nbhttp.Engine // the event loop of upgraded WebSocket connections
	tcp      *nbio.Engine
	pool     *workerPool
	writes   *writePoller
	upgrader *websocket.Upgrader
	sse      sseStreams

	guardLimits guardLimits

	mu        sync.Mutex
	httpAddr  net.Addr
	tcpAddr   net.Addr
	httpLn    net.Listener
	listeners []*drainListener

	// handoff orders each TCP connection's open callback before its data
	// callbacks, which nbio may run on another goroutine with only the
	// kernel's epoll between them. Striped by file descriptor; uncontended.
	handoff [64]sync.Mutex

	started    time.Time      // when the engines were started
	goroutines sync.WaitGroup // net/http's Serve, the write poller, TLS connections
}

// New builds the listeners; Start opens them.
func New(cfg Config, mgr *session.Manager, log *slog.Logger) *Server {
	logging.SetLevel(logging.LevelNone) // errors reach us as values instead
	l := mgr.Limits()
	return &Server{cfg: cfg, proxies: &proxies{prefixes: cfg.TrustedProxies}, mgr: mgr, log: log, guardLimits: guardLimits{
		maxMessage:     uint64(l.MaxFrameBytes),
		pingsPerSecond: l.OpsPerSecond,
		pingBurst:      l.OpsBurst,
	}}
}

// listen binds addr. Accepted sockets get no TCP keepalive (Go's default
// costs three setsockopt calls a connection): heartbeats detect dead peers.
func listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", addr)
}

// HTTPAddr returns the bound HTTP address.
func (s *Server) HTTPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpAddr
}

// TCPAddr returns the bound TCP address, or nil when TCP is disabled.
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpAddr
}

func (s *Server) handoffLock(c *nbio.Conn) *sync.Mutex {
	return &s.handoff[uint(c.Hash())%uint(len(s.handoff))]
}

// Start opens the listeners. Both are bound before anything starts, so
// that a busy port is reported at once and nothing is left to stop.
func (s *Server) Start() error {
	httpLn, err := listen(s.cfg.HTTPAddr)
	if err != nil {
		return &ListenError{Listener: "http", Addr: s.cfg.HTTPAddr, Err: err}
	}
	var tcpLn net.Listener
	if s.cfg.TCPAddr != "" {
		if tcpLn, err = listen(s.cfg.TCPAddr); err != nil {
			_ = httpLn.Close()
			return &ListenError{Listener: "tcp", Addr: s.cfg.TCPAddr, Err: err}
		}
	}
	closeAll := func() {
		_ = httpLn.Close()
		if tcpLn != nil {
			_ = tcpLn.Close()
		}
	}
	var tlsCfg *tls.Config
	if s.cfg.TLSCertFile != "" {
		if tlsCfg, err = s.tlsConfig(); err != nil {
			closeAll()
			return err
		}
	}
	if s.writes, err = newWritePoller(); err != nil {
		closeAll()
		return err
	}
	s.goroutines.Go(s.writes.run)
	s.pool = newWorkerPool(4*runtime.GOMAXPROCS(0), 64<<10, s.log)
	s.ws = nbhttp.NewEngine(nbhttp.Config{
		Name:                    "herald-ws",
		MaxWriteBufferSize:      s.cfg.MaxOutboundBytes,
		ReleaseWebsocketPayload: true,
		ReadBufferSize:          32 << 10,
		ServerExecutor:          s.pool.Go,
	})
	s.upgrader = s.newUpgrader()
	if err := s.ws.Start(); err != nil {
		closeAll()
		s.stopBackground()
		return fmt.Errorf("start websocket engine: %w", err)
	}
	s.started = time.Now()
	if tcpLn != nil {
		dl := newDrainListener(tcpLn)
		s.mu.Lock()
		s.listeners = append(s.listeners, dl)
		s.mu.Unlock()
		if err := s.startTCP(dl, tlsCfg); err != nil {
			_ = httpLn.Close()
			s.stopEngine("websocket", s.ws.Stop)
			s.stopBackground()
			return err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWebSocket)
	mux.HandleFunc("GET /sse", s.serveSSE)
	mux.HandleFunc("POST /sse", s.serveSSEPost)
	mux.HandleFunc("OPTIONS /sse", s.serveSSEPreflight)
	if s.cfg.Handler != nil {
		mux.Handle("/", s.cfg.Handler)
	}
	s.http = &http.Server{
		Handler:           mux,
		TLSConfig:         tlsCfg,
		MaxHeaderBytes:    MaxHeaderBytes,
		ReadHeaderTimeout: cmp.Or(s.cfg.ReadHeaderTimeout, ReadHeaderTimeout),
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       cmp.Or(s.cfg.IdleTimeout, IdleTimeout),
		ConnState:         newHTTPConns(s.cfg.HTTPConnsPerIP, s.proxies).state,
		ErrorLog:          s.cfg.ErrorLog,
	}
	s.mu.Lock()
	s.httpAddr, s.httpLn = httpLn.Addr(), httpLn
	if tcpLn != nil {
		s.tcpAddr = tcpLn.Addr()
	}
	s.mu.Unlock()
	s.goroutines.Go(func() {
		var err error
		if tlsCfg != nil {
			err = s.http.ServeTLS(httpLn, "", "")
		} else {
			err = s.http.Serve(httpLn)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("http listener stopped", "err", err)
		}
	})
	if tlsCfg != nil {
		s.log.Info("TLS is on for every listener", "cert", s.cfg.TLSCertFile)
	}
	s.waitAccepting()
	return nil
}

// waitAccepting returns once every listener's accept loop is running.
func (s *Server) waitAccepting() {
	s.mu.Lock()
	lns := append([]*drainListener(nil), s.listeners...)
	s.mu.Unlock()
	timeout := time.After(5 * time.Second)
	for _, ln := range lns {
		select {
		case <-ln.accepting:
		case <-timeout:
			s.log.Warn("an accept loop did not start in time", "addr", ln.Addr().String())
			return
		}
	}
}

// preOpened returns a listen function that hands the engine a listener the
// server already bound.
func preOpened(ln net.Listener) func(network, addr string) (net.Listener, error) {
	return func(string, string) (net.Listener, error) { return ln, nil }
}

// startTCP serves raw TCP on ln: on the event loop, or with tlsCfg over
// TLS from a reader and a writer goroutine per connection.
func (s *Server) startTCP(ln *drainListener, tlsCfg *tls.Config) error {
	if tlsCfg != nil {
		s.goroutines.Go(func() { s.acceptTLS(tls.NewListener(ln, tlsCfg)) })
		return nil
	}
	s.tcp = nbio.NewEngine(nbio.Config{
		Name:               "herald-tcp",
		Network:            "tcp",
		Addrs:              []string{s.cfg.TCPAddr},
		Listen:             preOpened(ln),
		ReadBufferSize:     32 << 10,
		MaxWriteBufferSize: s.cfg.MaxOutboundBytes,
	})
	s.tcp.Execute = s.pool.Go
	maxLine := s.mgr.Limits().MaxFrameBytes
	s.tcp.OnOpen(func(c *nbio.Conn) {
		if s.cfg.AdmitTCP != nil {
			if d := s.cfg.AdmitTCP(c.RemoteAddr()); d != nil {
				_, _ = c.Write(protocol.DisconnectFrame(*d).Bytes(protocol.WireLine))
				closeGracefully(c)
				return
			}
		}
		mu := s.handoffLock(c)
		mu.Lock()
		defer mu.Unlock()
		t := &tcpConn{c: c}
		sw, err := newSockWriter(c, s.writes, func() { t.session.Writable() })
		if err != nil {
			closeConn(c)
			return
		}
		t.w = sw
		t.session = s.mgr.Open(t)
		c.SetSession(t)
	})
	s.tcp.OnData(func(c *nbio.Conn, data []byte) {
		mu := s.handoffLock(c)
		mu.Lock()
		t, ok := c.Session().(*tcpConn)
		mu.Unlock()
		if ok {
			t.onData(c, data, maxLine)
		}
	})
	s.tcp.OnClose(func(c *nbio.Conn, err error) {
		mu := s.handoffLock(c)
		mu.Lock()
		t, ok := c.Session().(*tcpConn)
		mu.Unlock()
		if ok {
			t.w.close()
			c.MustExecute(func() { t.session.Closed(err) })
		}
	})
	if err := s.tcp.Start(); err != nil {
		return fmt.Errorf("start tcp engine: %w", err)
	}
	return nil
}

// StopAccepting closes the listeners; open connections are unaffected.
func (s *Server) StopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpLn != nil {
		_ = s.httpLn.Close()
	}
	for _, ln := range s.listeners {
		ln.Drain()
	}
}

// Stop closes the listeners and every connection still open. Call it after
// the sessions have been told to disconnect.
func (s *Server) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The engines mark themselves stopping before they close their
		// listeners; closing those first would set their accept loops
		// spinning on the closed listener.
		if s.tcp != nil {
			s.stopEngine("tcp", s.tcp.Stop)
		}
		// Streams the sessions' close left open would hold Shutdown
		// until ctx ends.
		s.sse.abortAll()
		_ = s.http.Shutdown(ctx)
		// Not the engine's Shutdown: it looks for connections left open
		// on a 200 ms ticker, so it never returns sooner. The sessions
		// have been closed by now; Stop closes whatever remains at once.
		s.stopEngine("websocket", s.ws.Stop)
		s.mu.Lock()
		for _, ln := range s.listeners {
			_ = ln.Close() // the TLS listener; a no-op for the engine's own
		}
		s.mu.Unlock()
		s.stopBackground()
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// stopBackground stops the write poller and the worker pool and waits for
// every goroutine the server started.
func (s *Server) stopBackground() {
	s.writes.stop()
	s.goroutines.Wait()
	s.pool.Stop()
}

// nbio's pollers clear their stop flag when their goroutine first runs, so
// an engine stopped before its goroutines have been scheduled misses the
// stop. Stopping waits until the engine has run for engineMinLifetime, which
// is ample for the scheduler, and engineStopTimeout bounds the wait should
// it still happen: the process then goes on without that engine.
const (
	engineMinLifetime = 200 * time.Millisecond
	engineStopTimeout = time.Second
)

func (s *Server) stopEngine(name string, stop func()) {
	time.Sleep(engineMinLifetime - time.Since(s.started))
	done := make(chan struct{})
	go func() {
		stop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(engineStopTimeout):
		s.log.Warn("I/O engine did not stop in time", "engine", name)
	}
}
