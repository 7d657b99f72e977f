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
// allow-list to a WebSocket upgrade from client: the peer, or, behind a
// trusted proxy, the address the proxy forwarded.
func (s *Server) admitWebSocket(w http.ResponseWriter, r *http.Request, client netip.Addr) bool {
	if !s.originAllowed(r) {
		transport.WriteError(w, http.StatusForbidden, "forbidden_origin", "origin "+r.Header.Get("Origin")+" may not open WebSockets here; see allowed-origins")
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
// name the same host the request was sent to.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
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
