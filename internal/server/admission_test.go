package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/config"
)

// Without allowed-origins, a browser's Origin passes when its host:port is
// the request's Host header, compared without case; the scheme is not
// compared and X-Forwarded-Host is not read. docs/protocol.md states this
// rule; these cases pin it.
func TestOriginSameHost(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: config.Default()}
	cases := []struct {
		host, origin, forwardedHost string
		want                        bool
	}{
		{"chat.example.com", "", "", true}, // not a browser
		{"chat.example.com", "https://chat.example.com", "", true},
		{"chat.example.com", "http://chat.example.com", "", true}, // scheme not compared
		{"Chat.Example.COM", "https://chat.example.com", "", true},
		{"chat.example.com:7600", "http://chat.example.com:7600", "", true},
		{"chat.example.com:7600", "http://chat.example.com", "", false}, // port differs
		{"chat.example.com", "https://chat.example.com:443", "", false}, // an explicit port counts
		{"chat.example.com", "https://evil.example", "", false},
		{"chat.example.com", "https://chat.example.com.evil.example", "", false},
		// Behind a proxy that rewrites Host, browsers are refused: the
		// forwarded host is not consulted.
		{"127.0.0.1:7600", "https://chat.example.com", "chat.example.com", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "http://"+tc.host+"/ws", nil)
		r.Host = tc.host
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if tc.forwardedHost != "" {
			r.Header.Set("X-Forwarded-Host", tc.forwardedHost)
		}
		if got := s.originAllowed(r); got != tc.want {
			t.Errorf("Host %q, Origin %q: allowed=%v, want %v", tc.host, tc.origin, got, tc.want)
		}
	}

	s.cfg.AllowedOrigins = []string{"https://chat.example.com/"}
	for origin, want := range map[string]bool{
		"https://chat.example.com": true, // a trailing slash in the list is ignored
		"HTTPS://CHAT.EXAMPLE.COM": true,
		"http://chat.example.com":  false, // with a list, the scheme counts
		"http://127.0.0.1:7600":    false, // and the same host no longer passes by itself
	} {
		r := httptest.NewRequest("GET", "http://127.0.0.1:7600/ws", nil)
		r.Header.Set("Origin", origin)
		if got := s.originAllowed(r); got != want {
			t.Errorf("allowed-origins %q, Origin %q: allowed=%v, want %v", s.cfg.AllowedOrigins, origin, got, want)
		}
	}
}

// In insecure (development) mode every origin passes, so that a page on
// localhost:3000 reaches a server on :7600; a list given still rules.
func TestOriginInsecure(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: config.Default()}
	s.cfg.Insecure = true
	r := httptest.NewRequest("GET", "http://127.0.0.1:7600/ws", nil)
	r.Header.Set("Origin", "http://localhost:3000")
	if !s.originAllowed(r) {
		t.Error("insecure mode refused a page of another origin")
	}
	s.cfg.AllowedOrigins = []string{"https://app.example"}
	if s.originAllowed(r) {
		t.Error("insecure mode ignored allowed-origins")
	}
}

// A refused origin is logged once a minute, and the table of origins
// logged stays bounded however many origins are refused.
func TestOriginLogBounded(t *testing.T) {
	t.Parallel()
	var l originLog
	now := time.Now()
	if !l.first("http://localhost:3000", now) {
		t.Fatal("the first refusal of an origin is not logged")
	}
	if l.first("http://localhost:3000", now.Add(59*time.Second)) {
		t.Fatal("the same origin is logged twice within a minute")
	}
	if !l.first("http://localhost:5173", now.Add(59*time.Second)) {
		t.Fatal("another origin is not logged")
	}
	if !l.first("http://localhost:3000", now.Add(61*time.Second)) {
		t.Fatal("the origin is not logged again after a minute")
	}
	long := "http://" + strings.Repeat("a", 10000)
	for i := range 3 * maxOriginsRemembered {
		l.first(fmt.Sprintf("%s%d", long, i), now.Add(62*time.Second))
	}
	if len(l.seen) > maxOriginsRemembered {
		t.Fatalf("%d origins remembered", len(l.seen))
	}
	for o := range l.seen {
		if len(o) > maxLoggedOrigin {
			t.Fatalf("an origin of %d bytes remembered", len(o))
		}
	}
	// A minute later the table has room again.
	if !l.first("http://localhost:8080", now.Add(62*time.Second+originLogInterval)) {
		t.Fatal("a new origin is not logged once the old ones expired")
	}
}

// A page refused by the Origin check shows in the server's log (browsers
// hide the 403 from the page), once for several attempts; an insecure
// server lets it in and says at start that any origin may connect.
func TestRefusedOriginLogged(t *testing.T) {
	t.Parallel()
	srv, buf := startServerLogged(t, secureConfig(t))
	dial := func(srv *Server, origin string) (*http.Response, error) {
		ws, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.HTTPAddr().String()+"/ws", http.Header{"Origin": {origin}})
		if ws != nil {
			ws.Close()
		}
		return resp, err
	}
	for range 3 {
		if resp, err := dial(srv, "http://localhost:3000"); err == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a page of another origin was let in: %v", err)
		}
	}
	waitLog(t, buf, "level=INFO", "origin=http://localhost:3000", "allowed-origins", "host="+srv.HTTPAddr().String())
	if n := strings.Count(buf.String(), "origin=http://localhost:3000"); n != 1 {
		t.Fatalf("%d lines for one origin: %s", n, buf.String())
	}

	cfg := secureConfig(t)
	cfg.Insecure = true
	cfg.APIKeys = nil
	insecure, ibuf := startServerLogged(t, cfg)
	if _, err := dial(insecure, "http://localhost:3000"); err != nil {
		t.Fatalf("insecure server refused a page of another origin: %v", err)
	}
	waitLog(t, ibuf, "level=WARN", "any origin")
}
