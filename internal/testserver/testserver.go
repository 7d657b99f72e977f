// Package testserver runs real Herald servers on random loopback ports for
// the tests of other packages (the client, the CLI, the load tool), so that
// they exercise real sockets with one shared helper.
package testserver

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/poll"
	"github.com/heraldpush/herald/internal/server"
)

// Config is the default configuration on random loopback ports, in
// insecure mode, with its data in a temporary directory.
func Config(t testing.TB) config.Config {
	cfg := config.Default()
	cfg.HTTP, cfg.TCP, cfg.Insecure = "127.0.0.1:0", "127.0.0.1:0", true
	cfg.DataDir = t.TempDir()
	return cfg
}

// Unlimited lifts the per-connection and per-IP rate limits, for tests that
// send fast.
func Unlimited(cfg *config.Config) {
	cfg.OpsPerSecond, cfg.OpsBurst = 1e6, 1e6
	cfg.PublishPerSecond, cfg.PublishBurst = 1e6, 1e6
	cfg.ConnectsPerIP = 0
}

// Server is a running server and the configuration it runs with, its
// addresses filled in once bound.
type Server struct {
	*server.Server
	Config config.Config
}

// Start runs a server with cfg and shuts it down when the test ends.
func Start(t testing.TB, cfg config.Config) *Server {
	t.Helper()
	s := &Server{Config: cfg}
	s.start(t)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	srv, err := server.New(s.Config, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	s.Server = srv
	// A restart comes back on the same addresses.
	s.Config.HTTP, s.Config.TCP = srv.HTTPAddr().String(), srv.TCPAddr().String()
}

// Stop shuts the server down; it is idempotent.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown server: %v", err)
	}
	s.Server = nil
}

// Restart stops the server and starts a new one on the same addresses.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.start(t)
}

// WS is the WebSocket URL, TCP the raw TCP URL and API the HTTP base URL.
func (s *Server) WS() string  { return "ws://" + s.Config.HTTP + "/ws" }
func (s *Server) TCP() string { return "tcp://" + s.Config.TCP }
func (s *Server) API() string { return "http://" + s.Config.HTTP }

// CheckFor calls f every step until it returns nil, failing the test with
// f's last error once total has passed.
func CheckFor(t testing.TB, total, step time.Duration, f func() error) {
	t.Helper()
	poll.Until(t, total, step, f)
}
