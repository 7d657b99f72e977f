package server

import (
	"net/http/httptest"
	"testing"

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
