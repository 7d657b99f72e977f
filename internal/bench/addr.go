package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// target is a parsed --server URL.
type target struct {
	scheme string // "ws", "wss" or "tcp"
	host   string // host name or address, without port
	addr   string // host:port to dial
	url    string // the WebSocket URL (ws and wss only)
}

// transport is how the report names the wire: "ws" or "tcp".
func (t target) transport() string {
	if t.scheme == "tcp" {
		return "tcp"
	}
	return "ws"
}

// parseTarget parses ws://host:port/path, wss://... or tcp://host:port.
func parseTarget(s string) (target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return target{}, fmt.Errorf("parse %q: %w", s, err)
	}
	t := target{scheme: u.Scheme, host: u.Hostname(), addr: u.Host}
	switch u.Scheme {
	case "ws", "wss":
		t.url = u.String()
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "wss" {
				port = "443"
			}
			t.addr = net.JoinHostPort(t.host, port)
		}
	case "tcp":
		if u.Port() == "" {
			return target{}, fmt.Errorf("%q: tcp:// needs a port", s)
		}
	default:
		return target{}, fmt.Errorf("%q: scheme must be ws, wss or tcp", s)
	}
	if t.host == "" {
		return target{}, fmt.Errorf("%q: no host", s)
	}
	return t, nil
}

// checkLoopback returns ErrNotLoopback unless every address host resolves
// to is a loopback address.
func checkLoopback(ctx context.Context, host string) error {
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s (use --allow-remote to benchmark another machine)", ErrNotLoopback, host)
		}
		return nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s is %s (use --allow-remote to benchmark another machine)", ErrNotLoopback, host, ip)
		}
	}
	return nil
}

// hostOf returns the host of a URL, for checkLoopback.
func hostOf(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", rawURL, err)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("%q: no host", rawURL)
	}
	return u.Hostname(), nil
}

// maxSourceIPs bounds how many source addresses one range may name.
const maxSourceIPs = 4096

// parseSourceIPs parses "" (none), one address, a comma-separated list, or
// a range "first-last" of IPv4 addresses.
func parseSourceIPs(s string) ([]netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		first, last, isRange := strings.Cut(part, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(first))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, err := netip.ParseAddr(strings.TrimSpace(last))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		if !a.Is4() || !b.Is4() || b.Less(a) {
			return nil, fmt.Errorf("%q: a range needs two IPv4 addresses, low to high", part)
		}
		for ip := a; ; ip = ip.Next() {
			out = append(out, ip)
			if len(out) > maxSourceIPs {
				return nil, fmt.Errorf("%q: more than %d addresses", part, maxSourceIPs)
			}
			if ip == b {
				break
			}
		}
	}
	return out, nil
}

// portsPerSource is how many connections (open or in TIME_WAIT) one source
// address is given before another is added: the ephemeral port range of a
// Linux host is about 28,000 ports, and earlier runs may still hold some in
// TIME_WAIT.
const portsPerSource = 10000

// maxAutoSources caps automatic spreading at 127.0.0.1-127.0.0.250.
const maxAutoSources = 250

// autoSources returns the source addresses for a run that opens conns
// connections over its lifetime to a loopback IPv4 host: none (let the
// kernel choose) while one address has ports enough, else 127.0.0.1 up.
func autoSources(host string, conns int) []netip.Addr {
	ip, err := netip.ParseAddr(host)
	if strings.EqualFold(host, "localhost") {
		ip, err = netip.MustParseAddr("127.0.0.1"), nil
	}
	if err != nil || !ip.Is4() || !ip.IsLoopback() || conns <= portsPerSource {
		return nil
	}
	n := min((conns+portsPerSource-1)/portsPerSource, maxAutoSources)
	out := make([]netip.Addr, 0, n)
	for ip := netip.MustParseAddr("127.0.0.1"); len(out) < n; ip = ip.Next() {
		out = append(out, ip)
	}
	return out
}

// autoSourcesAll is autoSources for a run whose connections go to several
// hosts: none unless every host takes a spread.
func autoSourcesAll(hosts []string, conns int) []netip.Addr {
	var out []netip.Addr
	for _, host := range hosts {
		if out = autoSources(host, conns); out == nil {
			return nil
		}
	}
	return out
}

// checkSources refuses source addresses outside loopback when the target is
// on loopback: such a bind would fail for every connection anyway.
func checkSources(sources []netip.Addr, targetLoopback bool) error {
	if !targetLoopback {
		return nil
	}
	var errs []error
	for _, ip := range sources {
		if !ip.IsLoopback() {
			errs = append(errs, fmt.Errorf("source address %s is not a loopback address", ip))
		}
	}
	return errors.Join(errs...)
}
