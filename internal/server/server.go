// Package server is the composition root: it builds every part of Herald
// from a Config, runs them under one context and shuts them down in order.
// It is the only package that knows every other.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/xid"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/broker"
	"github.com/heraldpush/herald/internal/broker/memory"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
	"github.com/heraldpush/herald/internal/store"
	"github.com/heraldpush/herald/internal/store/embedded"
	"github.com/heraldpush/herald/internal/transport"
	"github.com/heraldpush/herald/web"
)

// pagesBase is the URL of the pages on addr, for the log: the loopback
// address when the server listens on every address.
func pagesBase(addr net.Addr, tls bool) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return ""
	}
	ip := ap.Addr()
	if ip.IsUnspecified() {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + netip.AddrPortFrom(ip, ap.Port()).String()
}

// nodeID names this server among the nodes of a cluster: its host name,
// or a generated id when it has none.
func nodeID() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return xid.New().String()
}

// Server is one Herald node.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	verifier *auth.Verifier
	keyName  string // the verifier's key, for the log: never the key itself
	policy   policy
	connects *connectLimiter
	connLog  connLog
	// refusedOrigins are the browser origins refused lately, so that each
	// is logged once a minute.
	refusedOrigins originLog
	hub            *hub.Hub
	mgr            *session.Manager
	broker         broker.Broker
	counters       counters
	tr             *transport.Server
	// latency is the time from a message's acceptance to its fan-out
	// on this node.
	latency prometheus.Histogram
	nodeID  string
	started time.Time
	// ready is true from the end of Start until shutdown begins: what
	// /readyz reports.
	ready atomic.Bool
	// store keeps channel history and inboxes; open between Start and
	// Shutdown. The lanes order what is stored for live delivery.
	store    store.Store
	receipts *receiptLog
	// receiptHook posts receipts to the backend; nil when it is off.
	receiptHook *receiptHook
	// presenceHook posts presence events to the backend; nil when it is
	// off.
	presenceHook *presenceHook
	// authHooks asks the backend about connects and subscribes.
	authHooks *authHooks
	// escalator posts message.unacknowledged; nil when --escalate-after
	// is off.
	escalator *escalator
	chanLanes *lanes
	userLanes *lanes
	// cluster is the link to the other nodes of a cluster, nil for a
	// server alone (no --redis).
	cluster *clusterNode
	// failures quiets the log lines of failures that repeat with every
	// request while the store or Redis is unreachable.
	failures quietLog
	runCtx   context.Context
	// sweepEvery is sweepInterval, shorter in tests.
	sweepEvery time.Duration
	// wrapStore, when set before Start, wraps the store Start opens: tests
	// inject storage faults through it.
	wrapStore func(store.Store) store.Store

	cancelRun    context.CancelFunc
	runDone      chan error
	background   sync.WaitGroup // the store's background work: receipts, sweeps
	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds a server from cfg; Start runs it.
func New(cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	verifier, keyName, err := newVerifier(cfg, log)
	if err != nil {
		return nil, err
	}
	proxies, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, verifier: verifier, keyName: keyName, policy: newPolicy(cfg.Namespaces), hub: hub.New(), broker: memory.New(),
		chanLanes: newLanes(), userLanes: newLanes(), runCtx: context.Background(), sweepEvery: sweepInterval,
		connects: newConnectLimiter(cfg.ConnectsPerIP, cfg.ConnectsBurst), connLog: newConnLog(log, keyName),
		latency: newLatencyHistogram(), nodeID: nodeID(), started: time.Now(),
		receiptHook: newReceiptHook(cfg, log), presenceHook: newPresenceHook(cfg, log), authHooks: newAuthHooks(cfg)}
	s.escalator = newEscalator(cfg.EscalateAfter, s.presenceHook, log)
	writers := cfg.Writers
	if writers == 0 {
		writers = runtime.GOMAXPROCS(0)
	}
	s.mgr = session.NewManager(session.Limits{
		PingInterval:     cfg.PingInterval,
		PongTimeout:      cfg.PongTimeout,
		HandshakeTimeout: cfg.HandshakeTimeout,
		MaxFrameBytes:    cfg.MaxFrameBytes,
		MaxOutboundBytes: cfg.MaxOutboundBytes,
		OpsPerSecond:     cfg.OpsPerSecond,
		OpsBurst:         cfg.OpsBurst,
		MaxSubscriptions: cfg.MaxSubscriptions,
		MaxStrikes:       cfg.MaxStrikes,
		PublishPerSecond: cfg.PublishPerSecond,
		PublishBurst:     cfg.PublishBurst,
	}, node{s}, log, writers)
	s.tr = transport.New(transport.Config{
		HTTPAddr:         cfg.HTTP,
		TCPAddr:          cfg.TCP,
		Handler:          s.routes(),
		AdmitWebSocket:   s.admitWebSocket,
		AllowOrigin:      s.originAllowed,
		AdmitTCP:         s.admitTCP,
		MaxOutboundBytes: cfg.MaxOutboundBytes,
		HTTPConnsPerIP:   cfg.HTTPConnsPerIP,
		TrustedProxies:   proxies,
		KeepHeaders:      hookHeaders(cfg),
		// A client has as long to send its request headers as to connect.
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		TLSCertFile:       cfg.TLSCert,
		TLSKeyFile:        cfg.TLSKey,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}, s.mgr, log)
	return s, nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	a := api.New(api.Config{
		Keys:    s.cfg.APIKeys,
		Open:    s.cfg.Insecure,
		MaxBody: int64(s.cfg.APIMaxBody),
		MaxData: s.cfg.MaxFrameBytes,
	}, backend{s}, operator{s}, s.log)
	a.Register(mux)
	pages := web.New()
	for _, p := range pages.Paths() {
		mux.Handle("GET "+p, pages)
	}
	mux.Handle("GET /metrics", a.Guard(s.metricsHandler()))
	if s.cfg.Pprof {
		mux.Handle("/debug/pprof/", a.Guard(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", a.Guard(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", a.Guard(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", a.Guard(http.HandlerFunc(pprof.Trace)))
	}
	// /healthz says the process works (a node that lost Redis keeps its
	// clients and says so); /readyz whether it should get new clients
	// and API calls: not while it starts, stops, or has lost Redis.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !s.linkUp() {
			_, _ = w.Write([]byte(`{"status":"ok","redis":"down"}` + "\n"))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case !s.ready.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"not_ready"}` + "\n"))
		case !s.linkUp():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"not_ready","redis":"down"}` + "\n"))
		default:
			_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
		}
	})
	// Every error is JSON, outside /v1 as inside: a known path with
	// another method is a 405 naming the method (the WebSocket endpoint's
	// GET is served by the transport, which hands other methods here),
	// anything else a 404. A pattern without a method takes the methods
	// the one with a method does not.
	for _, path := range append([]string{"/healthz", "/readyz", "/metrics", "/ws"}, pages.Paths()...) {
		mux.Handle(path, methodNotAllowed("GET"))
	}
	mux.Handle("/sse", methodNotAllowed("GET, POST"))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		transport.WriteError(w, http.StatusNotFound, "not_found", "no such endpoint: the server API is under /v1 (see /v1/openapi.json), WebSockets at /ws, SSE at /sse, the demo at /demo/, the dashboard at /admin/")
	})
	return mux
}

// methodNotAllowed answers a request whose method the path does not take.
func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		transport.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+allow)
	})
}

// Start opens the listeners and starts the background work. It returns once
// the server accepts connections.
//
// Start changes nothing process-wide (the open-file and memory limits are
// the concern of the command that runs the server), so one process may
// run many servers, as tests do.
func (s *Server) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	s.runCtx = ctx
	var st store.Store
	if s.cfg.Redis != "" {
		if err := s.startCluster(ctx); err != nil {
			cancel()
			return err
		}
		st = s.cluster.store
	} else {
		var err error
		if st, err = embedded.Open(filepath.Join(s.cfg.DataDir, "store"), embedded.Options{Logger: s.log}); err != nil {
			cancel()
			return explainStoreError(s.cfg.DataDir, err)
		}
	}
	s.store = st
	if s.wrapStore != nil {
		s.store = s.wrapStore(st)
	}
	s.receipts = newReceiptLog(s.store, s.log)
	s.background.Go(func() { s.receipts.run(ctx) })
	if s.receiptHook != nil {
		s.background.Go(func() { s.receiptHook.run(ctx) })
	}
	if s.presenceHook != nil {
		s.background.Go(func() { s.presenceHook.run(ctx) })
	}
	s.escalator.start(ctx, s.store, s.background.Go)
	s.background.Go(func() { s.sweep(ctx) })
	if s.cluster == nil {
		if err := s.broker.Start(ctx, s.deliverLocal); err != nil {
			cancel()
			s.background.Wait()
			_ = s.store.Close()
			return fmt.Errorf("start broker: %w", err)
		}
	}
	s.cancelRun = cancel
	s.runDone = make(chan error, 1)
	go func() { s.runDone <- s.mgr.Run(ctx) }()
	if err := s.tr.Start(); err != nil {
		cancel()
		<-s.runDone
		_ = s.broker.Close()
		s.background.Wait()
		_ = s.store.Close()
		if s.cluster != nil {
			_ = s.cluster.close()
		}
		return explainListenError(err)
	}
	attrs := []any{"http", s.HTTPAddr().String()}
	if a := s.TCPAddr(); a != nil {
		attrs = append(attrs, "tcp", a.String())
	}
	s.ready.Store(true)
	s.log.Info("herald listening", attrs...)
	if base := pagesBase(s.HTTPAddr(), s.cfg.TLSCert != ""); base != "" {
		s.log.Info("in a browser", "demo", base+"/demo/", "dashboard", base+"/admin/", "client", base+"/herald.js")
	}
	s.log.Info("verifying connection tokens", "key", s.keyName)
	storing := "storing channel history and inboxes"
	if s.cfg.InboxTTL == 0 {
		storing = "storing channel history; inboxes off (inbox-ttl 0)"
	}
	dir := filepath.Join(s.cfg.DataDir, "store")
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if s.cluster != nil {
		s.log.Info(storing+" in redis; cluster mode", "redis", redactURL(s.cfg.Redis), "addresses", slices.Sorted(maps.Keys(s.cluster.client.Nodes())), "prefix", s.cfg.RedisPrefix, "node", s.nodeID,
			"pubsub", s.cluster.broker.PublishCommand(), "history_namespaces", s.policy.historyNamespaces(), "inbox_ttl", s.cfg.InboxTTL)
	} else {
		s.log.Info(storing, "dir", dir, "history_namespaces", s.policy.historyNamespaces(), "inbox_ttl", s.cfg.InboxTTL)
	}
	if s.cfg.Insecure {
		s.log.Warn("INSECURE MODE: clients may choose their own user id without a token; never run this way in production")
		if len(s.cfg.APIKeys) == 0 {
			s.log.Warn("INSECURE MODE: the server API accepts requests without an API key")
		}
		if len(s.cfg.AllowedOrigins) == 0 {
			s.log.Warn("INSECURE MODE: pages from any origin may open WebSockets; allowed-origins restricts them")
		}
	} else if len(s.cfg.APIKeys) == 0 {
		s.log.Warn("no api-keys configured: the server API refuses every request")
	}
	return nil
}

// explainListenError names the setting of a listener that could not be
// opened, so that the operator knows what to change. The settings are
// named after the listeners: http and tcp.
func explainListenError(err error) error {
	var le *transport.ListenError
	if !errors.As(err, &le) {
		return err
	}
	change := fmt.Sprintf("set another address with --%s or %s", le.Listener, config.EnvVar(le.Listener))
	if errors.Is(le.Err, syscall.EADDRINUSE) {
		return fmt.Errorf("--%s %s: the address is already in use: another process (another herald?) listens there; stop it, or %s", le.Listener, le.Addr, change)
	}
	return fmt.Errorf("--%s %s: %w; %s", le.Listener, le.Addr, le.Err, change)
}

// explainStoreError says what to do about a store that would not open.
func explainStoreError(dir string, err error) error {
	change := fmt.Sprintf("or set another directory with --data-dir or %s", config.EnvVar("data-dir"))
	switch {
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("--data-dir %s: %w: another herald is running with it; stop it, %s", dir, err, change)
	case errors.Is(err, store.ErrNewerFormat):
		return fmt.Errorf("--data-dir %s: %w: run that newer version of herald, %s", dir, err, change)
	case errors.Is(err, store.ErrDamaged):
		return fmt.Errorf("--data-dir %s: %w: restore the directory from a backup, %s (see docs/delivery.md)", dir, err, change)
	}
	return fmt.Errorf("--data-dir %s: open the store: %w; %s", dir, err, change)
}

// HTTPAddr is the address the HTTP listener is bound to.
func (s *Server) HTTPAddr() net.Addr { return s.tr.HTTPAddr() }

// TCPAddr is the address the TCP listener is bound to, or nil.
func (s *Server) TCPAddr() net.Addr { return s.tr.TCPAddr() }

// Hub exposes the registry, for tests.
func (s *Server) Hub() *hub.Hub { return s.hub }

// Sessions returns the number of open connections, authenticated or not.
func (s *Server) Sessions() int { return s.mgr.Len() }

// Shutdown stops accepting connections, tells every client to reconnect
// elsewhere with a shutdown disconnect, flushes what is queued and closes
// everything, giving up on stragglers when ctx ends.
// It is safe to call more than once; later calls return the first result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.tr.StopAccepting()
	if err := s.mgr.CloseAll(ctx, protocol.DisconnectShutdown); err != nil {
		// The deadline is the operator's bound on shutdown: close the rest.
		s.log.Warn("shutdown deadline passed; closing remaining connections", "open", s.mgr.Len())
	}
	s.tr.Stop(ctx)
	// Every connection is closed: the users still within their grace are
	// offline now, posted in the webhook's last try below.
	s.presenceHook.close()
	// The escalator stops before the webhook's last try, which then takes
	// what it queued.
	s.escalator.stop()
	s.cancelRun()
	err := <-s.runDone
	if cerr := s.broker.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	// Every connection is closed and every API request answered (the
	// transport has stopped), so no write is in flight but the
	// background work's, which ends with the run context.
	s.background.Wait()
	if cerr := s.store.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
	}
	if s.cluster != nil {
		s.cluster.interest.wait()
		if cerr := s.cluster.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("leave the cluster: %w", cerr))
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Run starts the server, waits for ctx to end, then shuts down within the
// configured shutdown timeout.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	s.log.Info("shutting down", "connections", s.mgr.Len())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}
