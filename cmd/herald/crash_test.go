package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestMain lets the test binary stand in for the herald binary: run with
// HERALD_TEST_MAIN=1, it is herald, given its own command line.
func TestMain(m *testing.M) {
	if os.Getenv("HERALD_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// Storm shape: writers each call the API in turn on a target: a channel
// with history (publish) or a user's inbox (send).
const (
	crashRounds  = 5
	crashWriters = 8
)

var crashTargets = []string{"chat:k0", "chat:k1", "chat:k2", "u0", "u1", "u2"}

// call is one API call of the storm.
type call struct {
	target   string
	w, i     int
	sent     time.Time // before the request was written
	answered time.Time // after its 200 was read; zero: no 200
	id       string
}

func (c *call) data() string { return fmt.Sprintf(`{"w":%d,"i":%d}`, c.w, c.i) }

// callLog is every call of every round, by writer and number.
type callLog struct {
	mu    sync.Mutex
	calls map[[2]int]*call
}

// kill9 is a herald serve process on dir that the test kills.
type kill9 struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{} // closed once the process is gone
}

// startHerald runs herald serve on dir's data directory, with more
// flags, and waits until it listens.
func startHerald(t *testing.T, dir, configFile string, flags ...string) *kill9 {
	t.Helper()
	args := []string{"serve", "--insecure", "--config", configFile,
		"--data-dir", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0",
		"--connects-per-ip", "0", "--http-connections-per-ip", "0",
		"--inbox-max-messages", "100000", "--inbox-max-bytes", "1000000000",
		"--max-recovery-bytes", "100000000"}
	cmd := exec.Command(os.Args[0], append(args, flags...)...)
	cmd.Env = append(os.Environ(), "HERALD_TEST_MAIN=1")
	stderr, err := os.CreateTemp(dir, "stderr-*")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &kill9{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(h.exited) }()
	t.Cleanup(h.kill)
	re := regexp.MustCompile(`herald listening" http=(\S+)`)
	deadline := time.After(30 * time.Second)
	for {
		logged, _ := os.ReadFile(stderr.Name())
		if m := re.FindSubmatch(logged); m != nil {
			h.addr = string(m[1])
			return h
		}
		select {
		case <-h.exited:
			t.Fatalf("herald serve exited: %s", logged)
		case <-deadline:
			t.Fatalf("herald serve did not start within 30s: %s", logged)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// kill ends the process with SIGKILL (no shutdown, no flush) and waits
// until it is gone.
func (h *kill9) kill() {
	_ = h.cmd.Process.Kill()
	<-h.exited
}

// Whatever moment the server is killed at (kill -9) during a storm of
// concurrent publishes and sends, every call it answered 200 is there
// after a restart: in the channel's history and in the user's inbox, in
// the order the calls were answered (a call answered before another was
// made comes first), with its data intact, and nothing else is there but
// calls that were made and not answered. Several kills in a row.
func TestKill9DuringStorm(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	configFile := filepath.Join(dir, "herald.yaml")
	if err := os.WriteFile(configFile, []byte("publish-per-second: 1000000\npublish-burst: 1000000\nnamespaces:\n  - {name: chat, subscribe: any, publish: clients, history-size: 100000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &callLog{calls: map[[2]int]*call{}}
	epochs := map[string]string{}
	for round := range crashRounds {
		h := startHerald(t, dir, configFile)
		if round > 0 {
			checkStored(t, h.addr, log, epochs)
		}
		storm(t, h, round, log)
	}
	h := startHerald(t, dir, configFile)
	answered := checkStored(t, h.addr, log, epochs)
	t.Logf("%d calls over %d kills, %d answered 200", len(log.calls), crashRounds, answered)
	if answered == 0 {
		t.Fatal("no call was answered: the storm never reached the server")
	}
	h.kill()
}

// storm runs the writers against h and kills h at a random moment.
func storm(t *testing.T, h *kill9, round int, log *callLog) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: crashWriters}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			writer := round*crashWriters + w
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := &call{target: crashTargets[(w+i)%len(crashTargets)], w: writer, i: i}
				path, body := "/v1/publish", fmt.Sprintf(`{"channel":%q,"data":%s}`, c.target, c.data())
				if !strings.HasPrefix(c.target, "chat:") {
					path, body = "/v1/send", fmt.Sprintf(`{"to":%q,"data":%s}`, c.target, c.data())
				}
				log.mu.Lock()
				log.calls[[2]int{c.w, c.i}] = c
				log.mu.Unlock()
				c.sent = time.Now()
				resp, err := client.Post("http://"+h.addr+path, "application/json", strings.NewReader(body))
				if err != nil {
					continue // killed: the call may or may not have been stored
				}
				var out struct{ ID string }
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if err == nil && resp.StatusCode == 200 {
					log.mu.Lock()
					c.answered, c.id = time.Now(), out.ID
					log.mu.Unlock()
				}
			}
		})
	}
	time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
	_ = h.cmd.Process.Kill()
	close(stop)
	h.kill()
	wg.Wait()
}

// got is one stored message as read back: the call it came from, in the
// order of its target.
type got struct {
	pos  uint64
	call *call
}

// checkStored reads every target back from a restarted server and checks
// it against the log; it returns how many calls were answered 200.
func checkStored(t *testing.T, addr string, log *callLog, epochs map[string]string) int {
	t.Helper()
	rd := dialReader(t, addr)
	rd.request(map[string]any{"op": "connect", "user": "auditor"})
	byTarget := map[string][]got{}
	for _, target := range crashTargets {
		var frames []frame
		if strings.HasPrefix(target, "chat:") {
			frames = rd.history(target, epochs)
		} else {
			frames = inbox(t, addr, target)
		}
		for _, f := range frames {
			var d struct{ W, I *int }
			if err := json.Unmarshal(f.Data, &d); err != nil || d.W == nil || d.I == nil {
				t.Fatalf("%s: a message that does not decode: %s", target, f.raw)
			}
			c := log.calls[[2]int{*d.W, *d.I}]
			if c == nil || c.target != target {
				t.Fatalf("%s: a message no call made: %s", target, f.raw)
			}
			if c.id != "" && c.id != f.ID {
				t.Fatalf("%s: message %s carries the data of call %s", target, f.ID, c.id)
			}
			byTarget[target] = append(byTarget[target], got{pos: f.Offset + f.Seq, call: c})
		}
	}
	answered := 0
	for _, c := range log.calls {
		if !c.answered.IsZero() {
			answered++
		}
	}
	for target, msgs := range byTarget {
		checkOrder(t, target, msgs)
	}
	for _, c := range log.calls {
		if c.answered.IsZero() {
			continue
		}
		if !slices.ContainsFunc(byTarget[c.target], func(g got) bool { return g.call == c }) {
			t.Fatalf("%s: call %s (writer %d, #%d) was answered 200 and is lost", c.target, c.id, c.w, c.i)
		}
	}
	return answered
}

// checkOrder checks that msgs, in the order their target keeps them, have
// growing positions, each call at most once, and that no call answered
// before another was made comes after it.
func checkOrder(t *testing.T, target string, msgs []got) {
	t.Helper()
	seen := map[*call]bool{}
	for i, g := range msgs {
		if seen[g.call] {
			t.Fatalf("%s: call %d/%d stored twice", target, g.call.w, g.call.i)
		}
		seen[g.call] = true
		if i > 0 && g.pos <= msgs[i-1].pos {
			t.Fatalf("%s: position %d after %d", target, g.pos, msgs[i-1].pos)
		}
	}
	// Going backwards, the earliest answer among the later messages must
	// not precede a message's request.
	var earliest time.Time
	for i := len(msgs) - 1; i >= 0; i-- {
		c := msgs[i].call
		if !c.answered.IsZero() && !earliest.IsZero() && earliest.Before(c.sent) {
			t.Fatalf("%s: call %d/%d, made after another call was answered, comes before it", target, c.w, c.i)
		}
		if !c.answered.IsZero() && (earliest.IsZero() || c.answered.Before(earliest)) {
			earliest = c.answered
		}
	}
}

// frame is a server frame as the check reads it.
type frame struct {
	Type   string          `json:"type"`
	ID     string          `json:"-"`
	RawID  json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct{ Code, Message string }
	Offset uint64          `json:"offset"`
	Seq    uint64          `json:"seq"`
	Data   json.RawMessage `json:"data"`
	raw    string
}

type wsReader struct {
	t    *testing.T
	ws   *websocket.Conn
	next int
}

// dialReader opens a WebSocket to the server at addr, closed when the
// test ends.
func dialReader(t *testing.T, addr string) *wsReader {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return &wsReader{t: t, ws: ws}
}

func (r *wsReader) read() frame {
	r.t.Helper()
	for {
		_ = r.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := r.ws.ReadMessage()
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			r.t.Fatalf("a frame that does not decode: %q", b)
		}
		f.raw = string(b)
		if f.Type == "message" {
			if err := json.Unmarshal(f.RawID, &f.ID); err != nil || f.ID == "" {
				r.t.Fatalf("a message without an id: %s", b)
			}
		}
		if f.Type != "ping" {
			return f
		}
	}
}

// request sends op and returns its reply's result.
func (r *wsReader) request(op map[string]any) json.RawMessage {
	r.t.Helper()
	r.next++
	op["id"] = r.next
	if err := r.ws.WriteJSON(op); err != nil {
		r.t.Fatalf("write: %v", err)
	}
	f := r.read()
	if f.Type != "reply" || string(f.RawID) != fmt.Sprint(r.next) || f.Error != nil {
		r.t.Fatalf("%v: %s", op, f.raw)
	}
	return f.Result
}

// history reads a channel's whole history by recovering from offset 0 in
// its epoch, which must not change from one restart to the next.
func (r *wsReader) history(channel string, epochs map[string]string) []frame {
	r.t.Helper()
	var pos struct {
		Offset    uint64
		Epoch     string
		Recovered *bool
		Missed    int
	}
	_ = json.Unmarshal(r.request(map[string]any{"op": "subscribe", "channel": channel}), &pos)
	if e := epochs[channel]; e != "" && pos.Epoch != e {
		r.t.Fatalf("%s: epoch %s after a restart, was %s", channel, pos.Epoch, e)
	}
	epochs[channel] = pos.Epoch
	r.request(map[string]any{"op": "unsubscribe", "channel": channel})
	_ = json.Unmarshal(r.request(map[string]any{"op": "subscribe", "channel": channel, "offset": 0, "epoch": pos.Epoch}), &pos)
	if pos.Recovered == nil || !*pos.Recovered || uint64(pos.Missed) != pos.Offset {
		r.t.Fatalf("%s: recovery from 0: %+v", channel, pos)
	}
	frames := make([]frame, pos.Missed)
	for i := range frames {
		if frames[i] = r.read(); frames[i].Type != "message" || frames[i].Offset != uint64(i+1) {
			r.t.Fatalf("%s: message %d: %s", channel, i+1, frames[i].raw)
		}
	}
	r.request(map[string]any{"op": "unsubscribe", "channel": channel})
	return frames
}

// inbox reads a user's whole inbox as a device that never acknowledges:
// the inbox keeps everything for it.
func inbox(t *testing.T, addr, user string) []frame {
	t.Helper()
	r := dialReader(t, addr)
	var res struct {
		Inbox *struct {
			Acked, Missed uint64
			Pending       int
		}
	}
	_ = json.Unmarshal(r.request(map[string]any{"op": "connect", "user": user, "device": "auditor"}), &res)
	if res.Inbox == nil || res.Inbox.Acked != 0 || res.Inbox.Missed != 0 {
		t.Fatalf("%s: inbox %+v", user, res.Inbox)
	}
	frames := make([]frame, res.Inbox.Pending)
	for i := range frames {
		if frames[i] = r.read(); frames[i].Type != "message" || frames[i].Seq == 0 {
			t.Fatalf("%s: message %d: %s", user, i+1, frames[i].raw)
		}
	}
	return frames
}
