package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("%w: b1: connect: %w", ErrHandshake, err) }
	for want, err := range map[string]error{
		"rate_limited":                    wrap(&replyError{Code: "rate_limited", Message: "slow down"}),
		"disconnect too_many_connections": wrap(&disconnectError{Code: 3503, Reason: "too_many_connections"}),
		"connect_rate_limited":            wrap(&upgradeError{Status: 429, Code: "connect_rate_limited"}),
		"HTTP 502":                        &upgradeError{Status: 502},
		"not_found":                       fmt.Errorf("POST /v1/x: %w", &APIError{Status: 404, Code: "not_found"}),
		"connection refused":              wrap(syscall.ECONNREFUSED),
		"no free local port":              wrap(syscall.EADDRNOTAVAIL),
		"too many open files":             wrap(syscall.EMFILE),
		"closed by server":                wrap(io.EOF),
		"timeout":                         wrap(os.ErrDeadlineExceeded),
		"canceled":                        wrap(context.Canceled),
		"other":                           wrap(fmt.Errorf("something else")),
	} {
		if got := classify(err); got != want {
			t.Errorf("classify(%v) = %q, want %q", err, got, want)
		}
	}
	if !rateLimited(map[string]int64{"connect: connect_rate_limited": 3}) || !rateLimited(map[string]int64{"send: HTTP 429": 1}) {
		t.Error("rate limits not recognised")
	}
	if rateLimited(map[string]int64{"connect: timeout": 1}) {
		t.Error("a timeout taken for a rate limit")
	}
}

func TestRateLimitedServerGetsAHint(t *testing.T) {
	t.Parallel()
	cfg := benchConfig(t)
	cfg.ConnectsPerIP, cfg.ConnectsBurst = 1, 2
	ts := startServer(t, cfg)
	for _, transport := range []string{"ws", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			o := testOptions(ts, ScenarioIdle, transport)
			o.Clients, o.Hold = 12, 0
			res := run(t, o)
			if res.OK || res.ConnectErrors == 0 {
				t.Fatalf("ok %v with %d connect errors against a rate-limited server", res.OK, res.ConnectErrors)
			}
			if !strings.Contains(strings.Join(res.Failures, "; "), "rate-limited") {
				t.Errorf("failures lack the rate-limit hint: %v (errors %v)", res.Failures, res.Errors)
			}
		})
	}
}
