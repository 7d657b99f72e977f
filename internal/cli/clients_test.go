package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
	"github.com/heraldpush/herald/internal/testserver"
)

// lockedBuffer is a bytes.Buffer that a command may write while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startHerald runs a real in-process server on random ports.
func startHerald(t *testing.T, tweak ...func(*config.Config)) *server.Server {
	t.Helper()
	cfg := testserver.Config(t)
	cfg.ClientBroadcast = true
	for _, f := range tweak {
		f(&cfg)
	}
	return testserver.Start(t, cfg).Server
}

func serverURLs(srv *server.Server) map[string]string {
	return map[string]string{
		"websocket": "ws://" + srv.HTTPAddr().String() + "/ws",
		"tcp":       "tcp://" + srv.TCPAddr().String(),
	}
}

// herald runs the command line to completion and returns its exit code,
// stdout and stderr.
func herald(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := cli.Run(ctx, args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// running is a command running in the background.
type running struct {
	stdout, stderr lockedBuffer
	cancel         context.CancelFunc
	code           chan int
}

func start(args ...string) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, code: make(chan int, 1)}
	go func() { r.code <- cli.Run(ctx, args, strings.NewReader(""), &r.stdout, &r.stderr) }()
	return r
}

// wait returns the exit code, failing the test if the command does not end.
func (r *running) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.code:
		return code
	case <-time.After(10 * time.Second):
		r.cancel()
		t.Fatalf("command still running; stdout %q, stderr %q", r.stdout.String(), r.stderr.String())
		return -1
	}
}

func checkFor(t *testing.T, total time.Duration, f func() error) {
	t.Helper()
	testserver.CheckFor(t, total, 5*time.Millisecond, f)
}

// waitSubscribed waits until the running sub has subscribed to channel.
func waitSubscribed(t *testing.T, srv *server.Server, sub *running, channel string) {
	t.Helper()
	checkFor(t, 5*time.Second, func() error {
		if n := srv.Hub().Subscribers(channel); n != 1 {
			return fmt.Errorf("%d subscribers on %s; sub stderr %q", n, channel, sub.stderr.String())
		}
		return nil
	})
}

// cliMessage is a line printed by sub.
type cliMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Kind    string          `json:"kind"`
	Channel string          `json:"channel"`
	To      string          `json:"to"`
	From    string          `json:"from"`
	TS      int64           `json:"ts"`
	Data    json.RawMessage `json:"data"`
}

func parseLines(t *testing.T, out string) []cliMessage {
	t.Helper()
	var msgs []cliMessage
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m cliMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("sub printed %q, not a JSON line: %v", line, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestSubAndPub(t *testing.T) {
	t.Parallel()
	srv := startHerald(t)
	for name, url := range serverURLs(srv) {
		t.Run(name, func(t *testing.T) {
			channel := "room:" + name
			sub := start("sub", "--server", url, "--user", "alice", "--channel", channel, "--channel", "other", "--count", "4")
			defer sub.cancel()
			waitSubscribed(t, srv, sub, channel)

			// DATA: JSON as it is, anything else as a string.
			inputs := [][]string{{`{"text":"hi"}`}, {"hello"}, {"42"}, {"two", "words"}}
			wantData := []string{`{"text":"hi"}`, `"hello"`, `42`, `"two words"`}
			var ids []string
			for _, in := range inputs {
				args := append([]string{"pub", "--server", url, "--user", "bob", "--channel", channel}, in...)
				code, out, errOut := herald(t, args...)
				if code != 0 {
					t.Fatalf("pub %v: exit %d, stderr %q", in, code, errOut)
				}
				ids = append(ids, strings.TrimSpace(out))
			}
			if code := sub.wait(t); code != 0 {
				t.Fatalf("sub: exit %d, stderr %q", code, sub.stderr.String())
			}
			msgs := parseLines(t, sub.stdout.String())
			if len(msgs) != len(inputs) {
				t.Fatalf("sub printed %d messages, want %d:\n%s", len(msgs), len(inputs), sub.stdout.String())
			}
			for i, m := range msgs {
				if m.Type != "message" || m.ID != ids[i] || m.Kind != "channel" || m.Channel != channel || m.From != "bob" || string(m.Data) != wantData[i] || m.TS == 0 {
					t.Errorf("message %d = %+v, want id %s on %s from bob with data %s", i, m, ids[i], channel, wantData[i])
				}
			}
			// The connection's story goes to stderr, never into the output.
			for _, want := range []string{"connected to " + url + " as alice", "subscribed to " + channel} {
				if !strings.Contains(sub.stderr.String(), want) {
					t.Errorf("sub stderr lacks %q: %q", want, sub.stderr.String())
				}
			}
		})
	}
}

func TestSendToUser(t *testing.T) {
	t.Parallel()
	srv := startHerald(t)
	urls := serverURLs(srv)
	sub := start("sub", "--server", urls["tcp"], "--user", "bob", "--channel", "ready", "--count", "1")
	defer sub.cancel()
	waitSubscribed(t, srv, sub, "ready")
	code, out, errOut := herald(t, "send", "--server", urls["websocket"], "--user", "alice", "--to", "bob", `"psst"`)
	if code != 0 {
		t.Fatalf("send: exit %d, stderr %q", code, errOut)
	}
	if code := sub.wait(t); code != 0 {
		t.Fatalf("sub: exit %d, stderr %q", code, sub.stderr.String())
	}
	m := parseLines(t, sub.stdout.String())[0]
	if m.ID != strings.TrimSpace(out) || m.Kind != "direct" || m.To != "bob" || m.From != "alice" || string(m.Data) != `"psst"` {
		t.Errorf("got %+v, want direct %s from alice", m, out)
	}
}

func TestBroadcast(t *testing.T) {
	t.Parallel()
	srv := startHerald(t)
	urls := serverURLs(srv)
	sub := start("sub", "--server", urls["websocket"], "--user", "carol", "--channel", "ready", "--count", "1")
	defer sub.cancel()
	waitSubscribed(t, srv, sub, "ready")
	code, out, errOut := herald(t, "broadcast", "--server", urls["tcp"], "--user", "alice", "hello, everyone")
	if code != 0 {
		t.Fatalf("broadcast: exit %d, stderr %q", code, errOut)
	}
	if code := sub.wait(t); code != 0 {
		t.Fatalf("sub: exit %d, stderr %q", code, sub.stderr.String())
	}
	m := parseLines(t, sub.stdout.String())[0]
	if m.ID != strings.TrimSpace(out) || m.Kind != "broadcast" || m.From != "alice" || string(m.Data) != `"hello, everyone"` {
		t.Errorf("got %+v, want broadcast %s from alice", m, out)
	}
}

func TestSubStopsWhenInterrupted(t *testing.T) {
	t.Parallel()
	srv := startHerald(t)
	sub := start("sub", "--server", serverURLs(srv)["websocket"], "--user", "alice", "--channel", "room")
	waitSubscribed(t, srv, sub, "room")
	sub.cancel()
	if code := sub.wait(t); code != 0 {
		t.Errorf("sub: exit %d after interrupt, want 0; stderr %q", code, sub.stderr.String())
	}
	if out := sub.stdout.String(); out != "" {
		t.Errorf("sub printed %q without messages", out)
	}
}

func TestClientCommandErrors(t *testing.T) {
	t.Parallel()
	srv := startHerald(t, func(c *config.Config) { c.ClientBroadcast = false })
	ws := serverURLs(srv)["websocket"]
	cases := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"invalid channel", []string{"pub", "--server", ws, "--user", "bob", "--channel", "bad channel", "x"}, "invalid_channel"},
		{"broadcast not allowed", []string{"broadcast", "--server", ws, "--user", "bob", "x"}, "forbidden"},
		{"sub invalid channel", []string{"sub", "--server", ws, "--user", "bob", "--channel", "bad channel"}, "invalid_channel"},
		{"null data", []string{"send", "--server", ws, "--user", "bob", "--to", "alice", "null"}, "null"},
		{"no credentials", []string{"pub", "--server", ws, "--channel", "room", "x"}, "--user or --token"},
		{"no channel", []string{"pub", "--server", ws, "--user", "bob", "x"}, "channel"},
		{"no data", []string{"send", "--server", ws, "--user", "bob", "--to", "alice"}, "arg"},
		{"bad scheme", []string{"pub", "--server", "http://" + srv.HTTPAddr().String(), "--user", "bob", "--channel", "room", "x"}, "unsupported server URL"},
		{"refused credentials", []string{"pub", "--server", ws, "--token", "not-a-token", "--channel", "room", "x"}, "unauthorized"},
	}
	for _, tc := range cases {
		code, out, errOut := herald(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want failure mentioning %q", tc.name, code, errOut, tc.want)
		}
		if out != "" {
			t.Errorf("%s: printed %q on stdout", tc.name, out)
		}
	}
}

// pub refuses DATA that looks like JSON but is not, before connecting,
// and sends it as a string with --raw.
func TestPubRefusesBrokenJSON(t *testing.T) {
	t.Parallel()
	srv := startHerald(t)
	url := serverURLs(srv)["tcp"]
	code, out, errOut := herald(t, "pub", "--server", url, "--user", "bob", "--channel", "room:1", `{text:hi}`)
	if code == 0 || out != "" || !strings.Contains(errOut, "not valid JSON") || !strings.Contains(errOut, "--raw") {
		t.Fatalf("broken JSON: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	sub := start("sub", "--server", url, "--user", "alice", "--channel", "room:1", "--count", "1")
	defer sub.cancel()
	waitSubscribed(t, srv, sub, "room:1")
	if code, _, errOut := herald(t, "pub", "--server", url, "--user", "bob", "--channel", "room:1", "--raw", `{text:hi}`); code != 0 {
		t.Fatalf("--raw: exit %d, stderr %q", code, errOut)
	}
	if code := sub.wait(t); code != 0 {
		t.Fatalf("sub: exit %d, stderr %q", code, sub.stderr.String())
	}
	if m := parseLines(t, sub.stdout.String())[0]; string(m.Data) != `"{text:hi}"` {
		t.Fatalf("--raw sent %s", m.Data)
	}
}

// sub with a comma list of servers moves to the next when its server
// stops, and pub reaches the first server of its list that answers.
func TestSubFailsOver(t *testing.T) {
	t.Parallel()
	cfg := testserver.Config(t)
	a, b := testserver.Start(t, cfg), startHerald(t)
	urlA, urlB := serverURLs(a.Server)["websocket"], serverURLs(b)["tcp"]
	sub := start("sub", "--server", urlA+", "+urlB, "--user", "alice", "--channel", "room", "--count", "2")
	waitSubscribed(t, a.Server, sub, "room")
	if code, _, errOut := herald(t, "pub", "--server", urlA, "--user", "bob", "--channel", "room", "one"); code != 0 {
		t.Fatalf("pub: %d %s", code, errOut)
	}
	checkFor(t, 5*time.Second, func() error {
		if !strings.Contains(sub.stdout.String(), `"one"`) {
			return fmt.Errorf("sub printed %q", sub.stdout.String())
		}
		return nil
	})
	a.Stop(t)
	waitSubscribed(t, b, sub, "room")
	if code, _, errOut := herald(t, "pub", "--server", urlA+","+urlB, "--user", "bob", "--channel", "room", "two"); code != 0 {
		t.Fatalf("pub to %s,%s: %d %s", urlA, urlB, code, errOut)
	}
	if code := sub.wait(t); code != 0 {
		t.Fatalf("sub exit %d: %s", code, sub.stderr.String())
	}
	msgs := parseLines(t, sub.stdout.String())
	if len(msgs) != 2 || string(msgs[0].Data) != `"one"` || string(msgs[1].Data) != `"two"` {
		t.Errorf("sub printed %q", sub.stdout.String())
	}
	for _, want := range []string{"connected to " + urlA + " as alice", "connected to " + urlB + " as alice"} {
		if !strings.Contains(sub.stderr.String(), want) {
			t.Errorf("stderr %q lacks %q", sub.stderr.String(), want)
		}
	}
}
