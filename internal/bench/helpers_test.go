package bench

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
)

// testServer is an in-process Herald server on random loopback ports.
type testServer struct {
	srv                   *server.Server
	wsURL, tcpURL, apiURL string
}

// benchConfig is the configuration `herald bench` asks for: insecure mode
// and every rate limit lifted, on random loopback ports.
func benchConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.HTTP, cfg.TCP, cfg.Insecure = "127.0.0.1:0", "127.0.0.1:0", true
	cfg.OpsPerSecond, cfg.OpsBurst = 1e6, 1e6
	cfg.PublishPerSecond, cfg.PublishBurst = 1e6, 1e6
	cfg.ConnectsPerIP = 0
	cfg.DataDir = t.TempDir()
	return cfg
}

// startServer starts a server with cfg and stops it when the test ends.
func startServer(t *testing.T, cfg config.Config) *testServer {
	t.Helper()
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &testServer{
		srv:    srv,
		wsURL:  "ws://" + srv.HTTPAddr().String() + "/ws",
		tcpURL: "tcp://" + srv.TCPAddr().String(),
		apiURL: "http://" + srv.HTTPAddr().String(),
	}
}

// testOptions returns small, bounded options against ts over the given
// transport ("ws" or "tcp").
func testOptions(ts *testServer, scenario Scenario, transport string) Options {
	o := DefaultOptions()
	o.Scenario = scenario
	o.Server = ts.wsURL
	if transport == "tcp" {
		o.Server = ts.tcpURL
	}
	o.API = ts.apiURL
	o.Clients = 50
	o.Concurrency = 16
	o.Hold = 200 * time.Millisecond
	o.Messages = 20
	o.Cycles = 100
	o.Drain = 3 * time.Second
	o.Timeout = 60 * time.Second
	return o
}

// run runs o and fails the test on a start-up error.
func run(t *testing.T, o Options) Result {
	t.Helper()
	res, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// mustPass fails the test unless res is OK.
func mustPass(t *testing.T, res Result) {
	t.Helper()
	if err := res.Check(); err != nil {
		t.Fatalf("run failed: %v\nerrors: %v %v", err, res.Errors, res.ErrorSamples)
	}
}

// checkLatency checks that a latency summary is present, counts want
// samples and has ordered percentiles.
func checkLatency(t *testing.T, l *Latency, want uint64) {
	t.Helper()
	if l == nil {
		t.Fatal("no latency summary")
	}
	if l.Count != want {
		t.Errorf("latency samples = %d, want %d", l.Count, want)
	}
	ordered := []float64{l.MinMs, l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs}
	for i := 1; i < len(ordered); i++ {
		if ordered[i] < ordered[i-1] {
			t.Errorf("latency figures out of order: %v", ordered)
		}
	}
	var binned uint64
	for _, b := range l.Histogram {
		binned += b.Count
	}
	if binned != want {
		t.Errorf("histogram holds %d samples, want %d", binned, want)
	}
}
