package server

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/transport"
)

// connectLimiter bounds new connections per source IP with a token bucket
// per address. Idle buckets are dropped so the table stays small.
type connectLimiter struct {
	perSecond rate.Limit
	burst     int

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newConnectLimiter(perSecond float64, burst int) *connectLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &connectLimiter{perSecond: rate.Limit(perSecond), burst: burst, buckets: make(map[netip.Addr]*bucket)}
}

// allow reports whether a new connection from ip is within its rate. An
// address that could not be read is not limited.
func (l *connectLimiter) allow(ip netip.Addr) bool {
	if l == nil || !ip.IsValid() {
		return true
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		// A bucket idle long enough to refill completely is the same as a
		// new one.
		full := time.Duration(float64(l.burst)/float64(l.perSecond)*float64(time.Second)) + time.Second
		for k, b := range l.buckets {
			if now.Sub(b.seen) > full {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[ip]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.perSecond, l.burst)}
		l.buckets[ip] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// admitTCP applies the per-IP connection rate to a new TCP connection. Raw
// TCP has no forwarding headers: behind a TCP proxy, every client has the
// proxy's address.
func (s *Server) admitTCP(remote net.Addr) *protocol.Disconnect {
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(remote.String()); err == nil {
		ip = ap.Addr().Unmap()
	}
	if !s.connects.allow(ip) {
		return &protocol.DisconnectConnectRate
	}
	return nil
}

// admitWebSocket applies the per-IP connection rate and the Origin
// allow-list to a WebSocket upgrade, or to the request for an SSE stream,
// from client: the peer, or, behind a trusted proxy, the address the
// proxy forwarded.
func (s *Server) admitWebSocket(w http.ResponseWriter, r *http.Request, client netip.Addr) bool {
	if !s.originAllowed(r) {
		origin := r.Header.Get("Origin")
		// Browsers do not show a page's scripts why an upgrade failed, so
		// the server's log is where a developer can learn it.
		if s.refusedOrigins.first(origin, time.Now()) {
			s.log.Info("refused a WebSocket from a page of another origin; list the origin in allowed-origins to let it connect",
				"origin", truncate(origin, maxLoggedOrigin), "host", truncate(r.Host, maxLoggedOrigin), "remote", client.String())
		}
		transport.WriteError(w, http.StatusForbidden, "forbidden_origin", "origin "+origin+" may not open WebSockets or event streams here; see allowed-origins")
		return false
	}
	if !s.connects.allow(client) {
		w.Header().Set("Retry-After", "1")
		transport.WriteError(w, http.StatusTooManyRequests, "connect_rate_limited", "too many new connections from your address; retry shortly")
		return false
	}
	return true
}

// originAllowed: requests without an Origin come from non-browser clients
// and pass; a browser's Origin must be on the allow-list, or, with no list,
// name the same host the request was sent to; with no list in insecure
// (development) mode, every origin passes.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if s.cfg.Insecure && len(s.cfg.AllowedOrigins) == 0 {
		return true
	}
	for _, allowed := range s.cfg.AllowedOrigins {
		if allowed == "*" || strings.EqualFold(strings.TrimSuffix(allowed, "/"), origin) {
			return true
		}
	}
	if len(s.cfg.AllowedOrigins) > 0 {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// Refused origins are logged once a minute each, and at most
// maxOriginsRemembered of them are remembered at a time: a page retrying
// its WebSocket in a loop, or requests with made-up origins, cannot flood
// the log or grow the table.
const (
	originLogInterval    = time.Minute
	maxOriginsRemembered = 1024
	maxLoggedOrigin      = 256 // bytes of an Origin or Host header logged and remembered
)

// originLog remembers when each refused origin was last logged.
type originLog struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// first reports whether origin, refused at now, should be logged: it was
// not logged in the last minute, and the table has room for it.
func (l *originLog) first(origin string, now time.Time) bool {
	origin = truncate(origin, maxLoggedOrigin)
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.seen[origin]; ok && now.Sub(last) < originLogInterval {
		return false
	}
	if len(l.seen) >= maxOriginsRemembered {
		for o, last := range l.seen {
			if now.Sub(last) >= originLogInterval {
				delete(l.seen, o)
			}
		}
		if len(l.seen) >= maxOriginsRemembered {
			return false // this many origins in a minute: the log has the news
		}
	}
	if l.seen == nil {
		l.seen = make(map[string]time.Time)
	}
	// A copy: a slice of the header would keep all of it alive.
	l.seen[strings.Clone(origin)] = now
	return true
}

// truncate cuts s to at most n bytes, for logs.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
