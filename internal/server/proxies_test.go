package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/config"
)

// These tests send real requests from 127.0.0.1, configured as a trusted
// proxy or not.

// upgrade opens a WebSocket with the given request headers and returns the
// HTTP status of the answer (101 when it opened).
func upgrade(t *testing.T, srv *Server, headers ...string) int {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Add(headers[i], headers[i+1])
	}
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.HTTPAddr().String()+"/ws", h)
	if err == nil {
		_ = ws.Close()
		return resp.StatusCode
	}
	if resp == nil {
		t.Fatalf("upgrade %v: %v", headers, err)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		if code := jsonErrorCode(t, resp.Body); code != "connect_rate_limited" {
			t.Fatalf("upgrade %v: 429 with code %q", headers, code)
		}
	}
	return resp.StatusCode
}

// rateConfig allows each address two new connections and then, for the
// length of a test, no more.
func rateConfig(trusted ...string) config.Config {
	cfg := testConfig()
	cfg.ConnectsPerIP, cfg.ConnectsBurst = 0.001, 2
	cfg.TrustedProxies = trusted
	return cfg
}

// startLogged starts a server that logs to log.
func startLogged(t *testing.T, cfg config.Config, log *slog.Logger) *Server {
	t.Helper()
	srv, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// From a trusted proxy the connect rate applies to each forwarded client,
// found through a chain of proxies in either header; a malformed header
// counts against the proxy's own address.
func TestConnectRatePerForwardedClient(t *testing.T) {
	srv := startServer(t, rateConfig("127.0.0.1", "10.0.0.0/8"))
	steps := []struct {
		name    string
		headers []string
		want    int
	}{
		{"client A", []string{"X-Forwarded-For", "203.0.113.7"}, 101},
		{"client A again", []string{"X-Forwarded-For", "203.0.113.7"}, 101},
		{"client A over its burst", []string{"X-Forwarded-For", "203.0.113.7"}, 429},
		{"client B beside it", []string{"X-Forwarded-For", "203.0.113.8"}, 101},
		{"client A through two proxies", []string{"X-Forwarded-For", "192.0.2.1, 203.0.113.7, 10.1.2.3"}, 429},
		{"client A through Forwarded", []string{"Forwarded", `for="203.0.113.7:4711";proto=http, for=10.1.2.3`}, 429},
		{"client C through Forwarded", []string{"Forwarded", "for=203.0.113.9, for=10.1.2.3"}, 101},
		// The proxy's own address: requests without a header, then
		// malformed ones, share its bucket.
		{"the proxy", nil, 101},
		{"the proxy again", nil, 101},
		{"malformed XFF", []string{"X-Forwarded-For", "not-an-address"}, 429},
		{"Forwarded naming nobody", []string{"Forwarded", "for=unknown"}, 429},
		{"unterminated Forwarded", []string{"Forwarded", `for="203.0.113.10`}, 429},
		{"headers that disagree", []string{"X-Forwarded-For", "203.0.113.11", "Forwarded", "for=203.0.113.12"}, 429},
		{"client D, well formed", []string{"X-Forwarded-For", "203.0.113.13"}, 101},
	}
	for _, st := range steps {
		if got := upgrade(t, srv, st.headers...); got != st.want {
			t.Fatalf("%s: status %d, want %d", st.name, got, st.want)
		}
	}
}

// From a peer that is not a trusted proxy, forwarding headers are ignored:
// a client cannot escape the connect rate by naming other addresses.
func TestForwardedHeadersIgnoredFromUntrustedPeer(t *testing.T) {
	for _, trusted := range [][]string{nil, {"10.0.0.0/8"}} {
		t.Run(fmt.Sprint(trusted), func(t *testing.T) {
			srv := startServer(t, rateConfig(trusted...))
			for i, want := range []int{101, 101, 429, 429} {
				spoof := fmt.Sprintf("203.0.113.%d", i+1)
				if got := upgrade(t, srv, "X-Forwarded-For", spoof, "Forwarded", "for="+spoof); got != want {
					t.Fatalf("request %d claiming %s: status %d, want %d", i+1, spoof, got, want)
				}
			}
		})
	}
}

// logBuffer collects a logger's output for a reader on another goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The address logged for a WebSocket connection is the forwarded client's
// behind a trusted proxy, and the peer's otherwise.
func TestLoggedRemoteIsForwardedClient(t *testing.T) {
	for _, tc := range []struct {
		trusted []string
		want    string
	}{
		{[]string{"127.0.0.0/8"}, "remote=203.0.113.7 "},
		{nil, "remote=127.0.0.1:"},
	} {
		t.Run(fmt.Sprint(tc.trusted), func(t *testing.T) {
			logs := &logBuffer{}
			log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			srv := startLogged(t, rateConfig(tc.trusted...), log)
			if got := upgrade(t, srv, "X-Forwarded-For", "203.0.113.7"); got != 101 {
				t.Fatalf("status %d", got)
			}
			checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, "connection closed") {
						if !strings.Contains(line, tc.want) {
							t.Fatalf("want %q in %s", tc.want, line)
						}
						return nil
					}
				}
				return fmt.Errorf("no connection closed line in:\n%s", logs.String())
			})
		})
	}
}

// A trusted proxy carries many clients' connections: the bound on HTTP
// connections per address does not apply to it, and still applies to
// any other peer.
func TestHTTPConnectionBoundSparesTrustedProxy(t *testing.T) {
	for _, tc := range []struct {
		trusted []string
		refused bool
	}{
		{[]string{"127.0.0.1"}, false},
		{[]string{"10.0.0.0/8"}, true},
	} {
		t.Run(fmt.Sprint(tc.trusted), func(t *testing.T) {
			cfg := testConfig()
			cfg.HTTPConnsPerIP = 2
			cfg.TrustedProxies = tc.trusted
			srv := startServer(t, cfg)
			// Each connection is answered before the next opens, so the
			// server has counted every one still held.
			refusedAt := 0
			for i := 1; i <= 2*cfg.HTTPConnsPerIP; i++ {
				c, err := net.Dial("tcp", srv.HTTPAddr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113."+itoa(i)+"\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests && refusedAt == 0 {
					refusedAt = i
				} else if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusTooManyRequests {
					t.Fatalf("connection %d: status %d", i, resp.StatusCode)
				}
			}
			switch {
			case tc.refused && refusedAt != cfg.HTTPConnsPerIP+1:
				t.Fatalf("untrusted peer: first refusal at connection %d, want %d", refusedAt, cfg.HTTPConnsPerIP+1)
			case !tc.refused && refusedAt != 0:
				t.Fatalf("trusted proxy refused at connection %d", refusedAt)
			}
		})
	}
}

// A refused origin is logged with the forwarded client's address behind a
// trusted proxy, as every other line about the connection is.
func TestRefusedOriginLogsForwardedClient(t *testing.T) {
	logs := &logBuffer{}
	cfg := rateConfig("127.0.0.0/8")
	cfg.AllowedOrigins = []string{"https://app.example.com"}
	srv := startLogged(t, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if got := upgrade(t, srv, "X-Forwarded-For", "203.0.113.9", "Origin", "https://elsewhere.example"); got != http.StatusForbidden {
		t.Fatalf("status %d, want 403", got)
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "origin=https://elsewhere.example") {
				if !strings.Contains(line, "remote=203.0.113.9") {
					t.Fatalf("want remote=203.0.113.9 in %s", line)
				}
				return nil
			}
		}
		return fmt.Errorf("no refused-origin line in:\n%s", logs.String())
	})
}
