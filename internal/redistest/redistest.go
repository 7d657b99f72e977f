// Package redistest starts a private redis-server for a test, or a Redis
// Cluster of three (StartCluster): on free loopback ports, with temporary
// directories and no persistence, stopped in the test's cleanup. Tests
// never use a Redis they did not start.
package redistest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long one redis-server may take to answer.
const startTimeout = 10 * time.Second

// Server is a running redis-server owned by one test.
type Server struct {
	// Addr is host:port on the loopback interface.
	Addr string
	dir  string
	t    testing.TB
	// busPort, for a node of a Cluster, is the port of its cluster bus
	// (0 for a lone server).
	busPort int
	// durable: the server keeps an append-only file, synced before each
	// answer, so that its data survive Kill and Restart.
	durable bool
	// TLSAddr, for a server started by StartTLS, is host:port of its TLS
	// listener; Addr stays plain, for the test's own checks.
	TLSAddr         string
	tlsCert, tlsKey string

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// Start runs a redis-server for t and stops it when t ends. Without
// redis-server on PATH the test is skipped, with the reason logged, unless
// HERALD_CI is set, where it fails.
func Start(t testing.TB) *Server {
	t.Helper()
	need(t, "redis-server")
	s := &Server{dir: t.TempDir(), t: t}
	if err := s.startFree(false); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(s.Kill)
	return s
}

// StartDurable is Start with an append-only file synced before every
// answer (appendfsync always): what the server acknowledged survives Kill
// and Restart.
func StartDurable(t testing.TB) *Server {
	t.Helper()
	need(t, "redis-server")
	s := &Server{dir: t.TempDir(), t: t, durable: true}
	if err := s.startFree(false); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(s.Kill)
	return s
}

// StartTLS is Start with a second listener, TLSAddr, that speaks TLS with
// the certificate and key in certFile and keyFile; clients need no
// certificate of their own.
func StartTLS(t testing.TB, certFile, keyFile string) *Server {
	t.Helper()
	need(t, "redis-server")
	s := &Server{dir: t.TempDir(), t: t, tlsCert: certFile, tlsKey: keyFile}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := s.startFree(false); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(s.Kill)
	return s
}

// need skips t, or fails it under HERALD_CI, unless each program is on
// PATH.
func need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("HERALD_CI") != "" {
				t.Fatalf("%s is not installed (the CI script installs it): %v", p, err)
			}
			t.Skipf("%s is not installed: %v", p, err)
		}
	}
}

// startFree starts s on a free port, as a node of a cluster if cluster is
// set. A port found free may be taken before redis-server binds it: it
// tries another.
func (s *Server) startFree(cluster bool) error {
	var err error
	for range 5 {
		var port int
		if port, err = freePort(); err != nil {
			continue
		}
		// The bus port would otherwise be port+10000, which may be
		// taken or beyond 65535.
		if cluster {
			if s.busPort, err = freePort(); err != nil {
				continue
			}
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err = s.start(); err == nil {
			return nil
		}
	}
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs redis-server on s.Addr and waits until it answers PING.
func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	out := &bytes.Buffer{}
	aof := []string{"--appendonly", "no"}
	if s.durable {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--daemonize", "no", "--loglevel", "warning"}, aof...)
	if s.busPort != 0 {
		args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(s.busPort))
	}
	if s.TLSAddr != "" {
		_, tlsPort, _ := net.SplitHostPort(s.TLSAddr)
		args = append(args, "--tls-port", tlsPort, "--tls-cert-file", s.tlsCert, "--tls-key-file", s.tlsKey,
			"--tls-ca-cert-file", s.tlsCert, "--tls-auth-clients", "no")
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(startTimeout)
	for {
		if ping(s.Addr) == nil {
			s.mu.Lock()
			s.cmd, s.out = cmd, out
			s.mu.Unlock()
			// Reap the process when it ends, whoever ends it.
			go func() { <-exited }()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server on %s exited: %v: %s", s.Addr, err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on %s did not answer within %v: %s", s.Addr, startTimeout, out.String())
		}
	}
}

// ping sends PING and checks the answer.
func ping(addr string) error {
	pong, err := command(addr, "PING")
	if err == nil && pong != "PONG" {
		err = fmt.Errorf("PING answered %q", pong)
	}
	return err
}

// Kill ends redis-server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	// Wait for the port to be free: the process is reaped by start's
	// goroutine.
	deadline := time.Now().Add(startTimeout)
	for ping(s.Addr) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts redis-server again on the same port, after Kill; the
// data is gone, as no persistence is on.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	// The old process's port may take a moment to be released.
	for range 20 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("restart redis-server on %s: %v", s.Addr, err)
}
