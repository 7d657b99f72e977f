package bench

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

func TestParseTarget(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]target{
		"ws://127.0.0.1:7600/ws": {scheme: "ws", host: "127.0.0.1", addr: "127.0.0.1:7600", url: "ws://127.0.0.1:7600/ws"},
		"wss://localhost/ws":     {scheme: "wss", host: "localhost", addr: "localhost:443", url: "wss://localhost/ws"},
		"tcp://127.0.0.1:7601":   {scheme: "tcp", host: "127.0.0.1", addr: "127.0.0.1:7601"},
		"ws://[::1]:7600/ws":     {scheme: "ws", host: "::1", addr: "[::1]:7600", url: "ws://[::1]:7600/ws"},
	} {
		got, err := parseTarget(in)
		if err != nil || got != want {
			t.Errorf("parseTarget(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"http://127.0.0.1:7600", "tcp://127.0.0.1", "ws://:7600/ws", "::"} {
		if _, err := parseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q) succeeded", bad)
		}
	}
}

func TestParseSourceIPs(t *testing.T) {
	t.Parallel()
	got, err := parseSourceIPs("127.0.0.1-127.0.0.9")
	if err != nil || len(got) != 9 || got[0] != netip.MustParseAddr("127.0.0.1") || got[8] != netip.MustParseAddr("127.0.0.9") {
		t.Errorf("range = %v, %v", got, err)
	}
	got, err = parseSourceIPs("127.0.0.2, 127.0.0.5-127.0.0.6")
	if err != nil || len(got) != 3 {
		t.Errorf("list = %v, %v", got, err)
	}
	if got, err := parseSourceIPs(""); err != nil || got != nil {
		t.Errorf("empty = %v, %v", got, err)
	}
	for _, bad := range []string{"127.0.0.9-127.0.0.1", "x", "127.0.0.1-y", "127.0.0.0-127.255.255.255", "::1-::2"} {
		if _, err := parseSourceIPs(bad); err == nil {
			t.Errorf("parseSourceIPs(%q) succeeded", bad)
		}
	}
	if err := checkSources([]netip.Addr{netip.MustParseAddr("10.0.0.1")}, true); err == nil {
		t.Error("a non-loopback source for a loopback target passed")
	}
}

func TestAutoSources(t *testing.T) {
	t.Parallel()
	if got := autoSources("127.0.0.1", 5000); got != nil {
		t.Errorf("5,000 connections spread over %v", got)
	}
	got := autoSources("127.0.0.1", 25000)
	if len(got) != 3 || got[0] != netip.MustParseAddr("127.0.0.1") || got[2] != netip.MustParseAddr("127.0.0.3") {
		t.Errorf("25,000 connections: %v, want 127.0.0.1-127.0.0.3", got)
	}
	if got := autoSources("localhost", 1e7); len(got) != maxAutoSources {
		t.Errorf("10M connections: %d addresses, want %d", len(got), maxAutoSources)
	}
	if got := autoSources("::1", 1e6); got != nil {
		t.Errorf("IPv6 target spread over %v", got)
	}
}

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, ok := range []string{"127.0.0.1", "127.3.2.1", "::1", "localhost"} {
		if err := checkLoopback(ctx, ok); err != nil {
			t.Errorf("checkLoopback(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"192.0.2.1", "10.0.0.1", "::ffff:192.0.2.1"} {
		if err := checkLoopback(ctx, bad); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("checkLoopback(%q) = %v, want ErrNotLoopback", bad, err)
		}
	}
}
