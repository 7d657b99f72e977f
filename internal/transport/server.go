package transport

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

var errOverflow = session.ErrOverflow

// Config configures the listeners.
type Config struct {
	HTTPAddr string // HTTP listener: WebSocket at /ws plus Handler's routes
	TCPAddr  string // raw TCP listener; empty disables it
	// Handler serves every HTTP path but /ws (the server API, metrics...).
	Handler http.Handler
	// AdmitWebSocket decides whether a WebSocket upgrade request may
	// proceed; when it may not, it has written the HTTP error response.
	AdmitWebSocket func(w http.ResponseWriter, r *http.Request) bool
	// MaxOutboundBytes bounds the bytes the engine buffers for a connection
	// whose socket is full.
	MaxOutboundBytes int
	// TLSCertFile and TLSKeyFile, when set, serve both listeners over TLS
	// (Go's crypto/tls, a reader and a writer goroutine per connection).
	TLSCertFile, TLSKeyFile string
	// AdmitTCP decides whether a new TCP connection may proceed; when it
	// may not, the connection gets the returned disconnect and is closed.
	AdmitTCP func(remote net.Addr) *protocol.Disconnect
}

// Server runs the WebSocket and TCP listeners.
type Server struct {
	cfg  Config
	mgr  *session.Manager
	log  *slog.Logger
	http *nbhttp.Engine
	tcp  *nbio.Engine
	pool *workerPool

	mu        sync.Mutex
	httpAddr  net.Addr
	tcpAddr   net.Addr
	listeners []*drainListener

	// handoff orders each TCP connection's open callback before its data
	// callbacks, which nbio may run on another goroutine with only the
	// kernel's epoll between them. Striped by file descriptor; uncontended.
	handoff [64]sync.Mutex

	started    time.Time      // when the engines were started
	std        *http.Server   // the HTTPS server, with TLS
	goroutines sync.WaitGroup // per-connection goroutines of TLS connections
}

// New builds the listeners; Start opens them.
func New(cfg Config, mgr *session.Manager, log *slog.Logger) *Server {
	logging.SetLevel(logging.LevelNone) // errors reach us as values instead
	return &Server{cfg: cfg, mgr: mgr, log: log}
}

// listenInto returns a listen function that records the bound address in
// *bound, so that port 0 can be read back.
func (s *Server) listenInto(bound *net.Addr) func(network, addr string) (net.Listener, error) {
	return func(network, addr string) (net.Listener, error) {
		// No TCP keepalive on accepted sockets (Go's default costs three
		// setsockopt calls a connection): heartbeats detect dead peers.
		lc := net.ListenConfig{KeepAlive: -1}
		ln, err := lc.Listen(context.Background(), network, addr)
		if err != nil {
			return nil, err
		}
		dl := newDrainListener(ln)
		s.mu.Lock()
		*bound = ln.Addr()
		s.listeners = append(s.listeners, dl)
		s.mu.Unlock()
		return dl, nil
	}
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

// handoffSync passes through the connection's handoff lock: what the
// accepting goroutine wrote before it happens before what a poller reads
// after it.
func (s *Server) handoffSync(c *nbio.Conn) {
	mu := s.handoffLock(c)
	mu.Lock()
	//lint:ignore SA2001 passing through the lock is the point: it orders the goroutines
	mu.Unlock()
}

// Start opens the listeners. Both are bound before either engine starts,
// so that a busy port is reported at once and no engine is left to stop.
func (s *Server) Start() error {
	httpLn, err := s.listenInto(&s.httpAddr)("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return err
	}
	var tcpLn net.Listener
	if s.cfg.TCPAddr != "" {
		if tcpLn, err = s.listenInto(&s.tcpAddr)("tcp", s.cfg.TCPAddr); err != nil {
			_ = httpLn.(*drainListener).Listener.Close()
			return err
		}
	}
	s.pool = newWorkerPool(4*runtime.GOMAXPROCS(0), 64<<10, s.log)
	upgrader := s.newUpgrader()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdmitWebSocket != nil && !s.cfg.AdmitWebSocket(w, r) {
			return
		}
		// The upgrader writes the HTTP error itself when it fails.
		if c, err := upgrader.Upgrade(w, r, nil); err == nil {
			s.openWebSocket(c)
		}
	})
	if s.cfg.Handler != nil {
		mux.Handle("/", s.cfg.Handler)
	}
	if s.cfg.TLSCertFile != "" {
		return s.startTLS(mux, httpLn, tcpLn)
	}
	hcfg := nbhttp.Config{
		Name:                    "herald-http",
		Network:                 "tcp",
		Listen:                  preOpened(httpLn),
		Handler:                 mux,
		ReleaseWebsocketPayload: true,
		MaxWriteBufferSize:      s.cfg.MaxOutboundBytes,
		KeepaliveTime:           60 * time.Second,
		ReadBufferSize:          32 << 10,
		ServerExecutor:          s.pool.Go,
	}
	hcfg.Addrs = []string{s.cfg.HTTPAddr}
	s.http = nbhttp.NewEngine(hcfg)
	// nbhttp sets up each connection on the accepting goroutine and reads it
	// on a poller goroutine, with only epoll in between; order the two for
	// the race detector (and any reader of this code) with the handoff lock.
	s.http.Engine.OnOpen(func(c *nbio.Conn) { s.handoffSync(c) })
	s.http.Engine.OnData(func(c *nbio.Conn, data []byte) {
		s.handoffSync(c)
		c.DataHandler()(c, data)
	})
	if err := s.http.Start(); err != nil {
		return fmt.Errorf("start http engine: %w", err)
	}
	if tcpLn != nil {
		if err := s.startTCP(tcpLn); err != nil {
			s.stopEngine("http", s.http.Stop)
			return err
		}
	}
	s.waitAccepting()
	s.started = time.Now()
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

func (s *Server) startTCP(ln net.Listener) error {
	s.tcp = nbio.NewEngine(nbio.Config{
		Name:               "herald-tcp",
		Network:            "tcp",
		Addrs:              []string{s.cfg.TCPAddr},
		Listen:             preOpened(ln),
		MaxWriteBufferSize: s.cfg.MaxOutboundBytes,
		ReadBufferSize:     32 << 10,
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
		t := &tcpConn{c: c}
		t.session = s.mgr.Open(t)
		c.SetSession(t)
		mu.Unlock()
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
		if s.http != nil {
			s.stopEngine("http", func() { _ = s.http.Shutdown(ctx) })
		}
		if s.std != nil {
			_ = s.std.Shutdown(ctx)
		}
		s.mu.Lock()
		for _, ln := range s.listeners {
			_ = ln.Close() // the TLS listeners; a no-op for the engines' own
		}
		s.mu.Unlock()
		s.goroutines.Wait()
		if s.pool != nil {
			s.pool.Stop()
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
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
