package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testserver"
)

// runAsHerald, set in a process's environment, makes this test binary the
// herald command, so that tests run the server in a process they can
// kill.
const runAsHerald = "HERALD_TEST_RUN_AS_HERALD"

func TestMain(m *testing.M) {
	if os.Getenv(runAsHerald) == "1" {
		// As cmd/herald does.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		code := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// process is the herald command running in a process of its own.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	exited         chan struct{}
}

// startProcess runs herald args... in a new process, killed when the test
// ends if it has not exited.
func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(os.Args[0], args...), exited: make(chan struct{})}
	// Under the race detector a process sleeps a second at exit, unless
	// told not to.
	p.cmd.Env = append(os.Environ(), runAsHerald+"=1", "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start herald %v: %v", args, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// wait returns the exit code, failing the test if the process does not
// exit within a few seconds.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		t.Fatalf("herald %v still running; stderr %q", p.cmd.Args[1:], p.stderr.String())
		return -1
	}
}

// waitFor waits until the process's stderr or stdout (by which) holds
// want, failing the test if it exits first or takes more than a few
// seconds.
func (p *process) waitFor(t *testing.T, which *syncBuffer, want func(string) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !want(which.String()) {
		select {
		case <-p.exited:
			t.Fatalf("herald %v exited before %s; stderr %q", p.cmd.Args[1:], what, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald %v: no %s; stdout %q, stderr %q", p.cmd.Args[1:], what, p.stdout.String(), p.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// serveProcess starts herald serve with args and returns it and its
// HTTP address.
func serveProcess(t *testing.T, args ...string) (*process, string) {
	t.Helper()
	p := startProcess(t, append([]string{"serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0"}, args...)...)
	p.waitFor(t, &p.stderr, listeningLine.MatchString, "listening line")
	m := listeningLine.FindStringSubmatch(p.stderr.String())
	return p, m[1] + m[2]
}

// runProcess runs herald args... to its end and returns its stdout,
// failing the test unless it exits 0.
func runProcess(t *testing.T, args ...string) string {
	t.Helper()
	p := startProcess(t, args...)
	if code := p.wait(t); code != 0 {
		t.Fatalf("herald %v: exit %d, stderr %q", args, code, p.stderr.String())
	}
	return p.stdout.String()
}

// printed is a message line of herald sub, with the fields that place it.
type printed struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Channel string `json:"channel"`
	Offset  uint64 `json:"offset"`
	Epoch   string `json:"epoch"`
	Seq     uint64 `json:"seq"`
}

func (m printed) String() string {
	return fmt.Sprintf("%s %s offset %d epoch %q seq %d", m.Kind, m.ID, m.Offset, m.Epoch, m.Seq)
}

func parsePrinted(t *testing.T, out string) []printed {
	t.Helper()
	var msgs []printed
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m printed
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("sub printed %q, not a JSON line: %v", line, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// lines reports whether out holds at least n whole lines.
func lines(n int) func(string) bool {
	return func(out string) bool { return strings.Count(out, "\n") >= n }
}

// The scenario a new user tries: a subscriber with a device and a state
// file stops; messages are published to its channel and sent to its user
// meanwhile; the server is killed with SIGKILL and started again on its
// data directory; the subscriber, run again, prints exactly what it
// missed, channel messages and direct messages, and nothing it printed
// before.
//
// Not parallel: a process started while servers of other tests run in
// this one inherits their connections' descriptors (the event loop
// duplicates them without close-on-exec), and the servers' epoll then
// reports events of those for new connections, which it closes.
// Sequential tests run while no parallel test does.
func TestSubResumesAfterServerKill(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "herald.yaml")
	if err := os.WriteFile(config, []byte("namespaces:\n  - {name: chat, subscribe: any, publish: clients, history-size: 100}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	serveArgs := []string{"--insecure", "--config", config, "--data-dir", filepath.Join(dir, "data")}
	server, addr := serveProcess(t, serveArgs...)
	url := "ws://" + addr + "/ws"
	state := filepath.Join(dir, "alice.json")
	sub := func() *process {
		p := startProcess(t, "sub", "--server", url, "--user", "alice", "--device", "laptop", "--state", state, "--channel", "chat:lobby")
		p.waitFor(t, &p.stderr, func(s string) bool { return strings.Contains(s, "subscribed to chat:lobby") }, "subscription")
		return p
	}
	pub := func(data string) string {
		return strings.TrimSpace(runProcess(t, "pub", "--server", url, "--user", "bob", "--channel", "chat:lobby", data))
	}
	send := func(data string) string {
		return strings.TrimSpace(runProcess(t, "send", "--server", url, "--user", "bob", "--to", "alice", data))
	}
	stop := func(p *process) {
		t.Helper()
		_ = p.cmd.Process.Signal(os.Interrupt)
		if code := p.wait(t); code != 0 {
			t.Fatalf("sub exited %d after an interrupt; stderr %q", code, p.stderr.String())
		}
	}

	// The first run prints what comes while it runs.
	first := sub()
	before := []string{send("before, direct"), pub("before, on the channel")}
	first.waitFor(t, &first.stdout, lines(2), "the first two messages")
	stop(first)
	got := parsePrinted(t, first.stdout.String())
	if len(got) != 2 || got[0].ID != before[0] || got[0].Seq != 1 || got[1].ID != before[1] || got[1].Offset != 1 || got[1].Epoch == "" {
		t.Fatalf("first run printed %v, want %v with their seq and offset", got, before)
	}

	// Away: three channel messages and two direct ones.
	var missed []string
	for i := range 3 {
		missed = append(missed, pub(fmt.Sprintf(`{"missed":%d}`, i)))
		if i < 2 {
			missed = append(missed, send(fmt.Sprintf(`{"missed direct":%d}`, i)))
		}
	}
	_ = server.cmd.Process.Kill() // SIGKILL: no shutdown, no flush
	<-server.exited
	_, addr = serveProcess(t, serveArgs...)
	url = "ws://" + addr + "/ws"

	second := sub()
	// Once a message published now is printed, everything sent before it
	// has been; there must be exactly what was missed before it.
	marker := pub("after")
	second.waitFor(t, &second.stdout, func(s string) bool { return strings.Contains(s, marker) }, "the message published after the restart")
	stop(second)
	got = parsePrinted(t, second.stdout.String())
	var ids []string
	for _, m := range got {
		ids = append(ids, m.ID)
	}
	want := append(slices.Clone(missed), marker)
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("second run printed %v\nwant the ids %v (what was missed, then %s)", got, want, marker)
	}
	var offsets, seqs []uint64
	for _, m := range got {
		if m.Kind == "channel" {
			offsets = append(offsets, m.Offset)
		} else {
			seqs = append(seqs, m.Seq)
		}
	}
	if fmt.Sprint(offsets) != "[2 3 4 5]" || fmt.Sprint(seqs) != "[2 3]" {
		t.Errorf("offsets %v and sequences %v, want [2 3 4 5] and [2 3]", offsets, seqs)
	}
	if !strings.Contains(second.stderr.String(), "3 missed messages follow") || !strings.Contains(second.stderr.String(), "device laptop: 2 inbox messages pending") {
		t.Errorf("the status lines do not say what was missed: %q", second.stderr.String())
	}
}

// sub acknowledges the inbox messages it printed, and only those: one
// that came after --count is printed next time. The device is kept in
// the state file.
func TestSubAcknowledgesWhatItPrinted(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, testserver.Config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ids []string
	for i := range 3 {
		var out, errOut bytes.Buffer
		if code := Run(ctx, []string{"send", "--server", srv.TCP(), "--user", "bob", "--to", "alice", fmt.Sprint(i)}, nil, &out, &errOut); code != 0 {
			t.Fatalf("send: exit %d: %s", code, errOut.String())
		}
		ids = append(ids, strings.TrimSpace(out.String()))
	}
	state := filepath.Join(t.TempDir(), "alice.json")
	sub := func(args ...string) []printed {
		t.Helper()
		var out, errOut bytes.Buffer
		args = append([]string{"sub", "--server", srv.WS(), "--user", "alice", "--state", state}, args...)
		if code := Run(ctx, args, nil, &out, &errOut); code != 0 {
			t.Fatalf("sub %v: exit %d: %s", args, code, errOut.String())
		}
		return parsePrinted(t, out.String())
	}
	if got := sub("--device", "phone", "--count", "2"); len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] || got[1].Seq != 2 {
		t.Fatalf("first run printed %v, want %v", got, ids[:2])
	}
	if got := sub("--count", "1"); len(got) != 1 || got[0].ID != ids[2] || got[0].Seq != 3 {
		t.Fatalf("second run printed %v, want %s", got, ids[2])
	}
}

// sub --device with a --state file of another device switches the file to
// the new device, and says on stderr that the old one keeps its inbox.
func TestSubWarnsOfAnotherDevice(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, testserver.Config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	state := filepath.Join(t.TempDir(), "alice.json")
	if err := os.WriteFile(state, []byte(`{"device":"laptop","channels":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := Run(ctx, []string{"send", "--server", srv.TCP(), "--user", "bob", "--to", "alice", "1"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("send: exit %d: %s", code, errOut.String())
	}
	sub := func(device string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		args := []string{"sub", "--server", srv.WS(), "--user", "alice", "--state", state, "--device", device, "--count", "1"}
		if code := Run(ctx, args, nil, &out, &errOut); code != 0 {
			t.Fatalf("sub %v: exit %d: %s", args, code, errOut.String())
		}
		return errOut.String()
	}
	got := sub("phone")
	for _, want := range []string{"warning: " + state + " was written for device laptop; it is now phone's", "keeps holding laptop's inbox", "--inbox-ttl", "device phone: 1 inbox message pending"} {
		if !strings.Contains(got, want) {
			t.Errorf("stderr lacks %q:\n%s", want, got)
		}
	}
	if b, err := os.ReadFile(state); err != nil || !strings.Contains(string(b), `"device": "phone"`) {
		t.Fatalf("state after the switch: %s %v", b, err)
	}
}
