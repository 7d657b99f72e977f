package bench

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
	"github.com/heraldpush/herald/internal/testserver"
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
	cfg := testserver.Config(t)
	testserver.Unlimited(&cfg)
	return cfg
}

// startServer starts a server with cfg and stops it when the test ends.
func startServer(t *testing.T, cfg config.Config) *testServer {
	t.Helper()
	s := testserver.Start(t, cfg)
	return &testServer{srv: s.Server, wsURL: s.WS(), tcpURL: s.TCP(), apiURL: s.API()}
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
