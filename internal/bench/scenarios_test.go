package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testserver"
)

func TestIdle(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	for _, transport := range []string{"ws", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			o := testOptions(ts, ScenarioIdle, transport)
			o.Clients = 120
			o.ServerPIDs = []int{os.Getpid()} // the server runs in this process
			res := run(t, o)
			mustPass(t, res)
			if res.Connections != 120 || res.ConnectErrors != 0 || res.Dropped != 0 {
				t.Errorf("connections %d, errors %d, dropped %d; want 120, 0, 0", res.Connections, res.ConnectErrors, res.Dropped)
			}
			if res.Transport != transport {
				t.Errorf("transport = %q, want %q", res.Transport, transport)
			}
			if res.ConnectRate <= 0 || res.ConnectSeconds <= 0 {
				t.Errorf("connect rate %v over %vs, want positive", res.ConnectRate, res.ConnectSeconds)
			}
			p := res.Process
			if p == nil || p.RSSBeforeBytes <= 0 || p.RSSAfterBytes <= 0 || p.ClockTicks <= 0 || p.ThreadsAfter <= 0 {
				t.Fatalf("server process figures missing: %+v", p)
			}
			if p.CPUSeconds < 0 || p.ConnectCPUSeconds < 0 {
				t.Errorf("negative CPU time: %+v", p)
			}
		})
	}
}

// Clients must answer the server's pings, or a hold longer than a ping
// interval plus the pong timeout loses them all.
func TestIdleAnswersPings(t *testing.T) {
	t.Parallel()
	cfg := benchConfig(t)
	cfg.PingInterval, cfg.PongTimeout = time.Second, time.Second
	ts := startServer(t, cfg)
	for _, transport := range []string{"ws", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			o := testOptions(ts, ScenarioIdle, transport)
			o.Clients, o.Hold = 20, 4*time.Second // past interval + timeout + a sweep
			o.UserPrefix = "p" + transport
			res := run(t, o)
			mustPass(t, res)
			if res.Dropped != 0 {
				t.Errorf("%d connections dropped", res.Dropped)
			}
		})
	}
}

func TestFanout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	for _, transport := range []string{"ws", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			o := testOptions(ts, ScenarioFanout, transport)
			o.Clients, o.Messages = 100, 50
			o.Window = 8
			res := run(t, o)
			mustPass(t, res)
			if res.DeliveriesExpected != 5000 || res.DeliveriesReceived != 5000 || res.Missing != 0 || res.Duplicates != 0 {
				t.Errorf("deliveries %d of %d (missing %d, duplicates %d), want 5000 of 5000",
					res.DeliveriesReceived, res.DeliveriesExpected, res.Missing, res.Duplicates)
			}
			if res.Sent != 50 || res.SendErrors != 0 || res.Publisher != ViaClient {
				t.Errorf("sent %d, errors %d, publisher %q; want 50, 0, client", res.Sent, res.SendErrors, res.Publisher)
			}
			if res.DeliveriesPerSecond <= 0 {
				t.Errorf("deliveries per second = %v", res.DeliveriesPerSecond)
			}
			checkLatency(t, res.Latency, 5000)
		})
	}
}

func TestFanoutRateAndSize(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	o := testOptions(ts, ScenarioFanout, "ws")
	o.Clients, o.Messages, o.Rate, o.Size = 10, 20, 400, 2000
	res := run(t, o)
	mustPass(t, res)
	if res.DeliveriesReceived != 200 {
		t.Errorf("received %d, want 200", res.DeliveriesReceived)
	}
}

func TestFanoutViaAPI(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	o := testOptions(ts, ScenarioFanout, "tcp")
	o.Via, o.Clients, o.Messages, o.APIConcurrency = ViaAPI, 40, 30, 4
	res := run(t, o)
	mustPass(t, res)
	if res.DeliveriesReceived != 1200 || res.APICalls != 30 || res.Publisher != ViaAPI {
		t.Errorf("received %d via %d API calls (%s), want 1200 via 30 (api)", res.DeliveriesReceived, res.APICalls, res.Publisher)
	}
	checkLatency(t, res.Latency, 1200)
}

func TestDirect(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	for _, tc := range []struct {
		name      string
		batch     int
		wantCalls int64
	}{
		{"one call per message", 1, 40 * 5},
		{"batches", 16, 3 * 5}, // 40 users in batches of 16 is 3 calls a round
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(ts, ScenarioDirect, "ws")
			o.Clients, o.Messages, o.Batch = 40, 5, tc.batch
			o.UserPrefix = "d" + tc.name[:1] // distinct users per subtest
			res := run(t, o)
			mustPass(t, res)
			if res.DeliveriesExpected != 200 || res.DeliveriesReceived != 200 {
				t.Errorf("deliveries %d of %d, want 200", res.DeliveriesReceived, res.DeliveriesExpected)
			}
			if res.APICalls != tc.wantCalls || res.Sent != 200 {
				t.Errorf("API calls %d, sent %d; want %d, 200", res.APICalls, res.Sent, tc.wantCalls)
			}
			checkLatency(t, res.Latency, 200)
		})
	}
}

func TestChurn(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	for _, transport := range []string{"ws", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			o := testOptions(ts, ScenarioChurn, transport)
			o.Cycles, o.Concurrency, o.Rate = 200, 8, 100
			o.UserPrefix = "c" + transport
			o.ServerPIDs = []int{os.Getpid()}
			res := run(t, o)
			c := res.Churn
			if c == nil || c.Completed+c.Failed != 200 || c.CyclesPerSecond <= 0 {
				t.Fatalf("churn = %+v, want 200 cycles accounted for", c)
			}
			if res.Connections < c.Completed {
				t.Errorf("handshakes = %d, fewer than the %d cycles completed", res.Connections, c.Completed)
			}
			if !res.OK {
				t.Fatalf("run failed: %v\nerrors: %v %v", res.Check(), res.Errors, res.ErrorSamples)
			}
			if res.StatsBefore == nil || res.StatsAfter == nil {
				t.Fatal("no server stats around the churn")
			}
			// Only the publisher may remain.
			if res.StatsAfter.Connections > res.StatsBefore.Connections+1 {
				t.Errorf("server connections %d -> %d: churned connections left open", res.StatsBefore.Connections, res.StatsAfter.Connections)
			}
			if p := res.Process; p == nil || p.RSSAfterBytes <= 0 || p.GoroutinesBefore == nil || p.GoroutinesAfter == nil {
				t.Errorf("server process figures missing: %+v", p)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef0123456789abcdef-bench"
	cfg := benchConfig(t)
	cfg.Insecure, cfg.TokenSecret = false, secret
	ts := startServer(t, cfg)

	o := testOptions(ts, ScenarioIdle, "ws")
	o.Clients, o.HMACSecret, o.InsecureUsers = 20, secret, false
	res := run(t, o)
	mustPass(t, res)
	if res.Settings.Auth != "jwt" {
		t.Errorf("auth = %q, want jwt", res.Settings.Auth)
	}

	o.HMACSecret = "the wrong secret, long enough to be accepted"
	res = run(t, o)
	if res.OK || res.Connections != 0 || res.ConnectErrors != 20 {
		t.Errorf("wrong secret: ok %v, connections %d, errors %d; want a failure with 20 errors", res.OK, res.Connections, res.ConnectErrors)
	}
	if err := res.Check(); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Check = %v, want ErrIncomplete", err)
	}
}

func TestSourceIPs(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	o := testOptions(ts, ScenarioFanout, "ws")
	o.Clients, o.Messages, o.SourceIPs = 12, 5, "127.0.0.1-127.0.0.3"
	res := run(t, o)
	mustPass(t, res)
	if res.Settings.SourceIPs != 3 {
		t.Errorf("source addresses = %d, want 3", res.Settings.SourceIPs)
	}
}

// A run whose messages do not all arrive must fail: here the server allows
// the publisher only a few publishes.
func TestMismatchFails(t *testing.T) {
	t.Parallel()
	cfg := benchConfig(t)
	cfg.PublishPerSecond, cfg.PublishBurst = 1, 5
	ts := startServer(t, cfg)
	o := testOptions(ts, ScenarioFanout, "ws")
	o.Clients, o.Messages, o.Drain = 10, 30, 300*time.Millisecond
	res := run(t, o)
	if res.OK {
		t.Fatal("run with rate-limited publishes passed")
	}
	if res.DeliveriesReceived >= res.DeliveriesExpected || res.SendErrors == 0 {
		t.Errorf("received %d of %d with %d send errors; want fewer and some errors", res.DeliveriesReceived, res.DeliveriesExpected, res.SendErrors)
	}
	if err := res.Check(); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Check = %v, want ErrIncomplete", err)
	}
}

// When every send fails nothing can arrive: the run ends at once instead
// of waiting out the drain, and says so.
func TestNothingSent(t *testing.T) {
	t.Parallel()
	cfg := benchConfig(t)
	cfg.APIKeys = []string{"right-key-0123456789"}
	ts := startServer(t, cfg)
	o := testOptions(ts, ScenarioDirect, "ws")
	o.Clients, o.Messages, o.APIKey = 10, 2, "wrong-key-0123456789"
	o.Drain, o.Timeout = time.Hour, 30*time.Second
	res := run(t, o)
	if res.OK || res.TimedOut || res.Sent != 0 {
		t.Fatalf("ok=%v timed out=%v sent=%d; want a prompt failure with nothing sent", res.OK, res.TimedOut, res.Sent)
	}
	if len(res.ErrorSamples) != 1 {
		t.Errorf("want one sample of the one kind of error, got %q", res.ErrorSamples)
	}
	var b strings.Builder
	if err := WriteText(&b, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "nothing was sent") {
		t.Errorf("report does not say nothing was sent:\n%s", b.String())
	}
}

func TestNoServer(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: take one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	o := DefaultOptions()
	o.Scenario, o.Server, o.API = ScenarioIdle, "tcp://"+addr, "http://"+addr
	o.Clients, o.Hold, o.Timeout = 500, 0, 20*time.Second
	res := run(t, o)
	if res.OK || res.Connections != 0 {
		t.Fatalf("ok %v with %d connections against no server", res.OK, res.Connections)
	}
	if res.ConnectErrors >= 500 {
		t.Errorf("%d connect errors: the run did not give up early", res.ConnectErrors)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	o := testOptions(ts, ScenarioIdle, "ws")
	o.Clients, o.Hold, o.Timeout = 5, time.Minute, 300*time.Millisecond
	start := time.Now()
	res := run(t, o)
	if !res.TimedOut || res.OK {
		t.Errorf("timed out %v, ok %v; want a timed-out failure", res.TimedOut, res.OK)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("run took %s despite a 300ms timeout", time.Since(start))
	}
}

func TestRemoteRefused(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.Scenario, o.Server = ScenarioIdle, "ws://192.0.2.1:7600/ws" // TEST-NET-1; never dialled
	_, err := Run(context.Background(), o, nil)
	if !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Run = %v, want ErrNotLoopback", err)
	}
	o.Server, o.API = DefaultServer, "http://192.0.2.1:7600"
	if _, err := Run(context.Background(), o, nil); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Run with a remote API = %v, want ErrNotLoopback", err)
	}
}

func TestProgressAndReports(t *testing.T) {
	t.Parallel()
	ts := startServer(t, benchConfig(t))
	o := testOptions(ts, ScenarioFanout, "ws")
	o.Clients, o.Messages = 30, 20
	var progress bytes.Buffer
	res, err := Run(context.Background(), o, &progress)
	if err != nil {
		t.Fatal(err)
	}
	mustPass(t, res)
	if !bytes.Contains(progress.Bytes(), []byte("subscribing")) || !bytes.Contains(progress.Bytes(), []byte("delivering")) {
		t.Errorf("progress output lacks the phases:\n%s", progress.String())
	}

	var js bytes.Buffer
	if err := WriteJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON output does not parse: %v", err)
	}
	for _, key := range []string{"connections", "connect_rate", "deliveries_expected", "deliveries_received", "deliveries_per_second", "latency", "ok"} {
		if _, ok := back[key]; !ok {
			t.Errorf("JSON lacks %q", key)
		}
	}
	if back["deliveries_received"] != float64(600) {
		t.Errorf("JSON deliveries_received = %v, want 600", back["deliveries_received"])
	}

	var text bytes.Buffer
	if err := WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"600 of 600 expected", "p99.9", "PASS"} {
		if !bytes.Contains(text.Bytes(), []byte(want)) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

// The abuse scenario against a server with production settings: every
// attack is refused early, and the report says so.
func TestAbuse(t *testing.T) {
	t.Parallel()
	const key = "bench-abuse-test-key-0123456789"
	cfg := testserver.Config(t)
	cfg.Insecure = false
	cfg.APIKeys = []string{key}
	ts := startServer(t, cfg)
	o := testOptions(ts, ScenarioAbuse, "ws")
	o.APIKey = key
	o.ServerPIDs = []int{os.Getpid()}
	res := run(t, o)
	mustPass(t, res)
	if len(res.Attacks) != 7 {
		t.Fatalf("%d attacks reported, want 7", len(res.Attacks))
	}
	for _, a := range res.Attacks {
		if !a.Held || a.RSSPeakBytes <= 0 {
			t.Errorf("%s: %s (held %v, peak rss %d)", a.Name, a.Outcome, a.Held, a.RSSPeakBytes)
		}
	}
}
