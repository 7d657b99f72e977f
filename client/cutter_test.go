package client_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// cutter is a TCP proxy in front of a server address whose connections a
// test cuts, as a failing network would, without the server saying a
// word; it can also refuse new connections for a while.
type cutter struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	refusing bool
}

// newCutter proxies to the host:port in target (a ws:// or tcp:// URL)
// and returns the proxy and the same URL through it.
func newCutter(t *testing.T, target string) (*cutter, string) {
	t.Helper()
	scheme, rest, _ := strings.Cut(target, "://")
	hostport, path, _ := strings.Cut(rest, "/")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutter{ln: ln, target: hostport, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	url := scheme + "://" + ln.Addr().String()
	if path != "" {
		url += "/" + path
	}
	return p, url
}

func (p *cutter) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refusing := p.refusing
		p.mu.Unlock()
		if refusing {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

// pipe copies from src to dst until either ends, then closes both.
func (p *cutter) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes every proxied connection.
func (p *cutter) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

// refuse makes the proxy close new connections at once (true), or pass
// them again (false).
func (p *cutter) refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = on
}
