package server

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
)

// startServerLogged starts a server whose info log goes to the returned
// buffer.
func startServerLogged(t *testing.T, cfg config.Config) (*Server, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	return startLogged(t, cfg, slog.New(slog.NewTextHandler(buf, nil))), buf
}

// waitLog polls the log until it has a line containing every one of want.
func waitLog(t *testing.T, buf *logBuffer, want ...string) string {
	t.Helper()
	var found string
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, line := range strings.Split(buf.String(), "\n") {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				found = line
				return nil
			}
		}
		return fmt.Errorf("no log line with %q in:\n%s", want, buf.String())
	})
	return found
}

// Connects and refused connects are logged at info level, with the client,
// its address, its transport and, for a refusal, the code and reason.
func TestConnectsLogged(t *testing.T) {
	t.Parallel()
	srv, buf := startServerLogged(t, secureConfig(t))
	for _, tr := range transports {
		c := tr.dial(t, srv)
		c.connectToken(hmacToken(t, "alice-"+tr.name, nil, time.Hour))
		waitLog(t, buf, "level=INFO", `msg="client connected"`, "user=alice-"+tr.name, "transport="+tr.name, "remote=127.0.0.1:")

		bad := tr.dial(t, srv)
		refused(t, bad, bad.connectToken(hmacToken(t, "bob", nil, -time.Hour)))
		waitLog(t, buf, "level=INFO", `msg="connect refused"`, "transport="+tr.name, "code=unauthorized", `reason="token has expired"`, "err=")

		// A connect frame the server cannot read is a refused connect too.
		unread := tr.dial(t, srv)
		unread.writeRaw(`{"id":1,"op":"connect","user":"bad user"}`)
		unread.wantError("invalid_user")
		waitLog(t, buf, "level=INFO", `msg="connect refused"`, "transport="+tr.name, "code=invalid_user")
	}
}

// Past connectLogPerSecond lines in a second, connect lines are held back
// and the next line logged counts them.
func TestSampler(t *testing.T) {
	t.Parallel()
	s := newSampler(3)
	for i := range 3 {
		if ok, dropped := s.allow(100); !ok || dropped != 0 {
			t.Fatalf("line %d of the first second: ok %v, dropped %d", i, ok, dropped)
		}
	}
	for i := range 5 {
		if ok, _ := s.allow(100); ok {
			t.Fatalf("line %d past the bound was let through", i)
		}
	}
	if ok, dropped := s.allow(101); !ok || dropped != 5 {
		t.Fatalf("the next second: ok %v, dropped %d, want 5", ok, dropped)
	}
	if ok, dropped := s.allow(101); !ok || dropped != 0 {
		t.Fatalf("the count is reported once: ok %v, dropped %d", ok, dropped)
	}
}

// A line held back costs no allocation, however busy the server.
func TestSamplerHoldsBackWithoutAllocating(t *testing.T) {
	l := newConnLog(slog.New(slog.NewTextHandler(io.Discard, nil)), "test key")
	l.connects = newSampler(0) // hold back every line
	if n := testing.AllocsPerRun(1000, func() { l.take(l.connects) }); n != 0 {
		t.Fatalf("%v allocations a held-back line", n)
	}
}

// A flood of refused connects is logged at most connectLogPerSecond lines
// a second; what was held back is counted on a later line.
func TestRefusedConnectsSampled(t *testing.T) {
	t.Parallel()
	srv, buf := startServerLogged(t, secureConfig(t))
	const n = 6 * connectLogPerSecond
	conns := make([]*conn, n)
	for i := range conns {
		conns[i] = dialTCP(t, srv)
		conns[i].writeRaw(`{"id":1,"op":"connect","token":"not.a.token"}`)
	}
	for _, c := range conns {
		refused(t, c, c.expect("reply"))
	}
	lines := strings.Count(buf.String(), `msg="connect refused"`)
	if lines >= n {
		t.Fatalf("%d refusals logged in %d lines", n, lines)
	}
	// The refusals took under 6 seconds, so some second
	// held lines back; a refusal in a later second reports them.
	checkFor(t, 5*time.Second, 100*time.Millisecond, func() error {
		c := dialTCP(t, srv)
		refused(t, c, c.connectToken("not.a.token"))
		if !strings.Contains(buf.String(), "suppressed=") {
			return fmt.Errorf("no count of held-back lines:\n%s", buf.String())
		}
		return nil
	})
}
