package transport

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	p := &proxies{prefixes: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}}
	const proxy, stranger = "10.0.0.2:5000", "198.51.100.9:5000"
	cases := []struct {
		name    string
		peer    string
		headers map[string][]string
		want    string
		fwd     bool
	}{
		{"untrusted peer, no header", stranger, nil, "198.51.100.9", false},
		{"untrusted peer, spoofed XFF", stranger, map[string][]string{"X-Forwarded-For": {"203.0.113.7"}}, "198.51.100.9", false},
		{"untrusted peer, spoofed Forwarded", stranger, map[string][]string{"Forwarded": {"for=203.0.113.7"}}, "198.51.100.9", false},
		{"trusted peer, no header", proxy, nil, "10.0.0.2", false},
		{"XFF", proxy, map[string][]string{"X-Forwarded-For": {"203.0.113.7"}}, "203.0.113.7", true},
		{"XFF: the right-most untrusted entry", proxy, map[string][]string{"X-Forwarded-For": {"192.0.2.66, 203.0.113.7"}}, "203.0.113.7", true},
		{"XFF chain of proxies", proxy, map[string][]string{"X-Forwarded-For": {"192.0.2.66, 203.0.113.7, 10.9.9.9", "10.1.1.1"}}, "203.0.113.7", true},
		{"XFF: every entry a proxy", proxy, map[string][]string{"X-Forwarded-For": {"10.3.3.3, 10.1.1.1"}}, "10.3.3.3", true},
		{"XFF with ports and IPv6", proxy, map[string][]string{"X-Forwarded-For": {"[2001:db8::7]:4711, 10.1.1.1:80"}}, "2001:db8::7", true},
		{"XFF bare IPv6", proxy, map[string][]string{"X-Forwarded-For": {"2001:db8::7, fd00::1"}}, "2001:db8::7", true},
		{"XFF IPv4-mapped", proxy, map[string][]string{"X-Forwarded-For": {"::ffff:203.0.113.7"}}, "203.0.113.7", true},
		{"XFF empty elements", proxy, map[string][]string{"X-Forwarded-For": {" , 203.0.113.7 ,"}}, "203.0.113.7", true},
		{"XFF only empty elements", proxy, map[string][]string{"X-Forwarded-For": {" , "}}, "10.0.0.2", false},
		{"XFF malformed", proxy, map[string][]string{"X-Forwarded-For": {"not-an-ip"}}, "10.0.0.2", false},
		{"XFF malformed beyond the client", proxy, map[string][]string{"X-Forwarded-For": {"junk, 203.0.113.7"}}, "10.0.0.2", false},
		{"Forwarded", proxy, map[string][]string{"Forwarded": {"for=203.0.113.7;proto=https;by=10.0.0.2"}}, "203.0.113.7", true},
		{"Forwarded chain", proxy, map[string][]string{"Forwarded": {`for=192.0.2.66, for="[2001:db8:cafe::17]:4711"`, "For=10.1.1.1;host=example.com"}}, "2001:db8:cafe::17", true},
		{"Forwarded quoted with separators", proxy, map[string][]string{"Forwarded": {`host="a,b;c";for="203.0.113.7:80"`}}, "203.0.113.7", true},
		{"Forwarded unquoted IPv6", proxy, map[string][]string{"Forwarded": {"for=2001:db8::7"}}, "2001:db8::7", true},
		{"Forwarded unknown", proxy, map[string][]string{"Forwarded": {"for=unknown"}}, "10.0.0.2", false},
		{"Forwarded obfuscated", proxy, map[string][]string{"Forwarded": {"for=_hidden, for=10.1.1.1"}}, "10.0.0.2", false},
		{"Forwarded without for", proxy, map[string][]string{"Forwarded": {"proto=https"}}, "10.0.0.2", false},
		{"Forwarded two for in one element", proxy, map[string][]string{"Forwarded": {"for=203.0.113.7;for=192.0.2.1"}}, "10.0.0.2", false},
		{"Forwarded unterminated quote", proxy, map[string][]string{"Forwarded": {`for="203.0.113.7`}}, "10.0.0.2", false},
		{"Forwarded no value", proxy, map[string][]string{"Forwarded": {"for="}}, "10.0.0.2", false},
		{"Forwarded garbage", proxy, map[string][]string{"Forwarded": {"203.0.113.7"}}, "10.0.0.2", false},
		{"both, agreeing", proxy, map[string][]string{"Forwarded": {"for=203.0.113.7"}, "X-Forwarded-For": {"203.0.113.7"}}, "203.0.113.7", true},
		// The proxy wrote one; the client may have written the other.
		{"both, disagreeing", proxy, map[string][]string{"Forwarded": {"for=192.0.2.1"}, "X-Forwarded-For": {"203.0.113.7"}}, "10.0.0.2", false},
		{"both, one malformed", proxy, map[string][]string{"Forwarded": {"for=unknown"}, "X-Forwarded-For": {"203.0.113.7"}}, "10.0.0.2", false},
		{"trusted IPv6 peer", "[fd00::2]:5000", map[string][]string{"X-Forwarded-For": {"203.0.113.7"}}, "203.0.113.7", true},
		{"trusted IPv4-mapped peer", "[::ffff:10.0.0.2]:5000", map[string][]string{"X-Forwarded-For": {"203.0.113.7"}}, "203.0.113.7", true},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.RemoteAddr = tc.peer
		for k, vs := range tc.headers {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
		got, fwd := p.clientAddr(r)
		if got.String() != tc.want || fwd != tc.fwd {
			t.Errorf("%s: got %s forwarded=%v, want %s forwarded=%v", tc.name, got, fwd, tc.want, tc.fwd)
		}
	}

	// No trusted proxies: headers are never read.
	r := httptest.NewRequest("GET", "/ws", nil)
	r.RemoteAddr = proxy
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	for _, none := range []*proxies{nil, {}} {
		if got, fwd := none.clientAddr(r); got.String() != "10.0.0.2" || fwd {
			t.Errorf("no trusted proxies: got %s forwarded=%v", got, fwd)
		}
	}
}
