package transport

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// proxies is the set of reverse proxies whose forwarding headers are
// believed. A request from any other peer is judged by its peer address
// alone: its X-Forwarded-For and Forwarded headers are whatever the client
// chose to write.
type proxies struct {
	prefixes []netip.Prefix
}

// trusted reports whether ip is one of the proxies.
func (p *proxies) trusted(ip netip.Addr) bool {
	if p == nil {
		return false
	}
	ip = normalAddr(ip)
	for _, pr := range p.prefixes {
		if pr.Contains(ip) {
			return true
		}
	}
	return false
}

// clientAddr returns the address of the client that sent r, and whether
// it came from a forwarding header. From a trusted peer, the client is the
// right-most address of the forwarding chain that is not itself a trusted
// proxy (every proxy appends the address it received the request from, so
// the entries to the right of the first untrusted one were written by
// proxies that are trusted, and the rest by whoever the client is). When
// every address in the chain is a trusted proxy, the client is the
// left-most one. The peer address is used instead when the peer is not
// trusted, when no forwarding header came, when one is malformed or names
// no address, and when Forwarded and X-Forwarded-For both came and name
// different clients: a client can put either header in its request, and
// only the one the proxy writes can be believed, so when they disagree
// neither is.
func (p *proxies) clientAddr(r *http.Request) (netip.Addr, bool) {
	peer := parseHostPort(r.RemoteAddr)
	if !peer.IsValid() || !p.trusted(peer) {
		return peer, false
	}
	var client netip.Addr
	for _, h := range [...]struct {
		name  string
		chain func([]string) ([]netip.Addr, bool)
	}{
		{"Forwarded", forwardedChain},
		{"X-Forwarded-For", xForwardedForChain},
	} {
		values := r.Header.Values(h.name)
		if len(values) == 0 {
			continue
		}
		chain, ok := h.chain(values)
		if !ok {
			return peer, false
		}
		if len(chain) == 0 {
			continue // only empty list elements: as if absent
		}
		a := p.pick(chain)
		if client.IsValid() && a != client {
			return peer, false
		}
		client = a
	}
	if !client.IsValid() {
		return peer, false
	}
	return client, true
}

// pick returns the right-most address of chain that is not a trusted
// proxy, or the left-most when all are.
func (p *proxies) pick(chain []netip.Addr) netip.Addr {
	for i := len(chain) - 1; i >= 0; i-- {
		if !p.trusted(chain[i]) {
			return chain[i]
		}
	}
	return chain[0]
}

// xForwardedForChain parses X-Forwarded-For lines, "client, proxy1,
// proxy2", into addresses, left to right. Entries may carry a port
// ("192.0.2.1:4711", "[2001:db8::1]:4711"). ok is false when an entry is
// not an address.
func xForwardedForChain(values []string) (chain []netip.Addr, ok bool) {
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			a := parseNode(e)
			if !a.IsValid() {
				return nil, false
			}
			chain = append(chain, a)
		}
	}
	return chain, true
}

// forwardedChain parses Forwarded lines (RFC 7239) into the for= address
// of each element, left to right:
//
//	Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"
//
// ok is false when the header does not parse, when an element has no for=
// or more than one, and when a for= names no address ("unknown", or an
// obfuscated "_name").
func forwardedChain(values []string) (chain []netip.Addr, ok bool) {
	for _, v := range values {
		for len(v) > 0 {
			var (
				node  string
				found bool
				pairs int
			)
			// One element: pairs separated by ';', ended by ',' or the line.
			for {
				v = strings.TrimLeft(v, " \t")
				if v == "" || v[0] == ',' {
					break
				}
				if v[0] == ';' {
					v = v[1:]
					continue
				}
				eq := strings.IndexByte(v, '=')
				if eq <= 0 {
					return nil, false
				}
				name := strings.TrimSpace(v[:eq])
				var value string
				value, v, ok = forwardedValue(v[eq+1:])
				if !ok || strings.ContainsAny(name, " \t\",;") {
					return nil, false
				}
				pairs++
				if strings.EqualFold(name, "for") {
					if found {
						return nil, false
					}
					node, found = value, true
				}
			}
			if v != "" {
				v = v[1:] // the ','
			}
			if pairs == 0 {
				continue // an empty list element
			}
			a := parseNode(node)
			if !found || !a.IsValid() {
				return nil, false
			}
			chain = append(chain, a)
		}
	}
	return chain, true
}

// forwardedValue reads a token or a quoted string from the start of s and
// returns it and the rest of s. Tokens are read leniently, up to the next
// separator, so an unquoted IPv6 address or port (which RFC 7239 says to
// quote) is still read.
func forwardedValue(s string) (value, rest string, ok bool) {
	if s == "" || s[0] != '"' {
		end := strings.IndexAny(s, ",; \t")
		if end < 0 {
			end = len(s)
		}
		return s[:end], s[end:], end > 0
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
			if i == len(s) {
				return "", "", false
			}
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", false // no closing quote
}

// parseNode parses an address with or without a port: 192.0.2.1,
// 192.0.2.1:80, 2001:db8::1, [2001:db8::1], [2001:db8::1]:80. It returns
// the zero Addr for anything else.
func parseNode(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return normalAddr(a)
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return normalAddr(a)
		}
		return netip.Addr{}
	}
	return parseHostPort(s)
}

// parseHostPort parses "host:port" with an IP address for host.
func parseHostPort(s string) netip.Addr {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return normalAddr(a)
}

// normalAddr drops what would keep equal addresses from comparing equal,
// or from matching a prefix: an IPv6 zone, the IPv4-in-IPv6 mapping.
func normalAddr(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}

// addrOf returns the IP of a connection's address.
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return normalAddr(ip)
		}
	}
	return parseHostPort(a.String())
}
