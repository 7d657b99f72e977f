package transport

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
)

// httpConns bounds the HTTP connections one source address holds open at
// once (WebSocket connections count until their upgrade), so that one
// address cannot take every file descriptor with idle keep-alives. A
// trusted proxy is exempt: it carries the connections of many clients. It
// hooks net/http's connection states.
type httpConns struct {
	max     int // 0: no bound
	proxies *proxies

	mu     sync.Mutex
	perIP  map[netip.Addr]int
	counts map[net.Conn]netip.Addr // the connections counted, by address
}

func newHTTPConns(max int, p *proxies) *httpConns {
	return &httpConns{max: max, proxies: p, perIP: make(map[netip.Addr]int), counts: make(map[net.Conn]netip.Addr)}
}

// state is an http.Server ConnState hook.
func (h *httpConns) state(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		if !h.admit(c) {
			refuseRaw(c, http.StatusTooManyRequests, "too_many_connections",
				"too many open HTTP connections from your address; reuse connections or close idle ones",
				"Retry-After", "1")
		}
	case http.StateHijacked, http.StateClosed:
		h.release(c)
	}
}

func (h *httpConns) admit(c net.Conn) bool {
	if h.max <= 0 {
		return true
	}
	ip := addrOf(c.RemoteAddr())
	if h.proxies.trusted(ip) {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.perIP[ip] >= h.max {
		return false
	}
	h.perIP[ip]++
	h.counts[c] = ip
	return true
}

func (h *httpConns) release(c net.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ip, ok := h.counts[c]
	if !ok {
		return
	}
	delete(h.counts, c)
	if h.perIP[ip] <= 1 {
		delete(h.perIP, ip)
	} else {
		h.perIP[ip]--
	}
}
