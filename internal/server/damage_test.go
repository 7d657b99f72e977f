package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/config"
)

// damage changes the files of a store directory whose names match.
type damage struct {
	name  string
	match func(name string) bool
	do    func(path string) error
	// refused: the server must refuse to start, with an error containing
	// this ("" when it may also start, through the engine's recovery).
	refused string
}

func suffix(s string) func(string) bool {
	return func(name string) bool { return strings.HasSuffix(name, s) }
}

func prefix(s string) func(string) bool {
	return func(name string) bool { return strings.HasPrefix(name, s) }
}

func truncateHalf(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	return os.Truncate(p, fi.Size()/2)
}

// flipMiddle inverts a run of bytes in the middle of the file.
func flipMiddle(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	for i := len(b) / 2; i < min(len(b), len(b)/2+64); i++ {
		b[i] ^= 0xff
	}
	return os.WriteFile(p, b, 0o600)
}

func overwrite(s string) func(string) error {
	return func(p string) error { return os.WriteFile(p, []byte(s), 0o600) }
}

// damaged is how the server refuses a store the engine cannot open.
const damaged = "damaged or unreadable; restore it from a backup"

var damages = []damage{
	{name: "truncated WAL", match: suffix(".log"), do: truncateHalf},
	{name: "flipped bytes in the WAL", match: suffix(".log"), do: flipMiddle},
	{name: "emptied WAL", match: suffix(".log"), do: overwrite("")},
	{name: "truncated sstable", match: suffix(".sst"), do: truncateHalf, refused: damaged},
	{name: "flipped bytes in an sstable", match: suffix(".sst"), do: flipMiddle},
	{name: "missing sstable", match: suffix(".sst"), do: os.Remove, refused: damaged},
	{name: "garbage MANIFEST", match: prefix("MANIFEST-"), do: overwrite(strings.Repeat("garbage!", 64)), refused: damaged},
	{name: "truncated MANIFEST", match: prefix("MANIFEST-"), do: truncateHalf},
	{name: "missing MANIFEST", match: prefix("MANIFEST-"), do: os.Remove, refused: damaged},
	{name: "missing manifest marker", match: prefix("marker.manifest."), do: os.Remove, refused: damaged},
	{name: "garbage FORMAT", match: prefix("FORMAT"), do: overwrite("garbage"), refused: "unreadable FORMAT file"},
	{name: "missing FORMAT", match: prefix("FORMAT"), do: os.Remove, refused: "not a Herald store"},
	{name: "newer FORMAT", match: prefix("FORMAT"), do: overwrite("99\n"), refused: "newer version"},
}

// A damaged store file makes the server refuse to start with an error
// that names the data directory and what to do, or the server starts
// through the engine's own recovery and serves only messages that were
// written, intact and in order, refusing to read what it finds damaged.
// It never serves garbage. What the engine's recovery drops (a damaged WAL
// tail, the tables a truncated MANIFEST no longer lists) is lost without a
// word: docs/delivery.md says so.
func TestDamagedStore(t *testing.T) {
	t.Parallel()
	for _, dm := range damages {
		t.Run(dm.name, func(t *testing.T) {
			t.Parallel()
			cfg := historyConfig(t, 1000)
			// Two runs: the first one's writes are in an sstable after
			// the second opens the store, the second's in the WAL.
			var published, sent sentLog
			for run := range 2 {
				srv := startServer(t, cfg)
				api := newAPI(t, srv)
				for i := range 40 {
					data := fmt.Sprintf(`{"run":%d,"i":%d,"pad":%q}`, run, i, strings.Repeat("x", 100))
					out := api.ok("POST", "/v1/publish", `{"channel":"chat:d","data":`+data+`}`)
					published.add(out["id"].(string), data)
					out = api.ok("POST", "/v1/send", `{"to":"bob","data":`+data+`}`)
					sent.add(out["id"].(string), data)
				}
				if err := srv.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			dir := filepath.Join(cfg.DataDir, "store")
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			damaged := 0
			for _, e := range entries {
				if dm.match(e.Name()) {
					if err := dm.do(filepath.Join(dir, e.Name())); err != nil {
						t.Fatal(err)
					}
					damaged++
				}
			}
			if damaged == 0 {
				t.Fatalf("no file to damage among %v", entries)
			}

			srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				t.Logf("refused: %v", err)
				if msg := err.Error(); !strings.Contains(msg, "--data-dir "+cfg.DataDir) || !strings.Contains(msg, dm.refused) {
					t.Fatalf("the refusal does not name the data directory and the fault (%q): %v", dm.refused, err)
				}
				return
			}
			t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
			if dm.refused != "" {
				t.Fatalf("started; want a refusal saying %q", dm.refused)
			}
			h := readBack(t, srv, "chat:d", "bob")
			t.Logf("started: %d of %d channel messages, %d of %d inbox messages", len(h.history), len(published.ids), len(h.inbox), len(sent.ids))
			published.checkWritten(t, "history", h.history)
			sent.checkWritten(t, "inbox", h.inbox)
		})
	}
}

// readBackResult is what a server serves of a channel and an inbox; empty
// where it refused to read.
type readBackResult struct{ history, inbox []frame }

// readBack reads channel's whole history and user's whole inbox from srv,
// as a client does; a read the server refuses (storage_failed) gives
// nothing.
func readBack(t *testing.T, srv *Server, channel, user string) readBackResult {
	t.Helper()
	var r readBackResult
	c := dialWS(t, srv)
	c.connect("reader")
	c.send(map[string]any{"op": "subscribe", "channel": channel})
	f := c.expect("reply")
	if f.Error != nil {
		if f.Error.Code != "storage_failed" {
			t.Fatalf("subscribe: %s", f.raw)
		}
	} else {
		var p position
		if err := jsonUnmarshal(f.Result, &p); err != nil {
			t.Fatal(err)
		}
		c.reply(c.send(map[string]any{"op": "unsubscribe", "channel": channel}))
		c.send(map[string]any{"op": "subscribe", "channel": channel, "offset": 0, "epoch": p.Epoch})
		f = c.expect("reply")
		switch {
		case f.Error != nil && f.Error.Code != "storage_failed":
			t.Fatalf("recover: %s", f.raw)
		case f.Error == nil:
			if err := jsonUnmarshal(f.Result, &p); err != nil {
				t.Fatal(err)
			}
			r.history = readN(c, p.Missed)
		}
	}
	d := dialWS(t, srv)
	d.send(map[string]any{"op": "connect", "user": user, "device": "reader"})
	f = d.expect("reply")
	switch {
	case f.Error != nil && f.Error.Code != "storage_failed":
		t.Fatalf("connect: %s", f.raw)
	case f.Error == nil:
		var res struct{ Inbox inboxState }
		if err := jsonUnmarshal(f.Result, &res); err != nil {
			t.Fatal(err)
		}
		r.inbox = readN(d, res.Inbox.Pending)
	}
	return r
}

// checkWritten fails unless each of got is one of l, intact, in l's order.
func (l *sentLog) checkWritten(t *testing.T, what string, got []frame) {
	t.Helper()
	next := 0
	for i, f := range got {
		id := mustIDRaw(t, f)
		for next < len(l.ids) && l.ids[next] != id {
			next++
		}
		if next == len(l.ids) || string(f.Data) != l.data[id] {
			t.Fatalf("%s: message %d is not one stored, in order: %s", what, i, f.raw)
		}
		next++
	}
}

// A data directory that cannot be created or written is refused at start,
// with an error that names it, whether the token secret (kept there
// unless configured) or the store meets it first.
func TestUnwritableDataDir(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{"under a regular file": filepath.Join(file, "data")}
	if os.Geteuid() == 0 {
		t.Log("running as root, which writes into read-only directories: the read-only case is left out")
	} else {
		ro := t.TempDir()
		if err := os.Chmod(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(ro, 0o700) })
		dirs["read-only"] = ro
	}
	for name, dir := range dirs {
		for _, secret := range []string{"", strings.Repeat("s", 32)} {
			cfg := testConfig()
			cfg.DataDir, cfg.TokenSecret = dir, secret
			err := startErr(cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "--data-dir "+dir+": ") {
				t.Errorf("%s (token secret set: %v): start: %v; want an error naming --data-dir %s", name, secret != "", err, dir)
			}
			t.Logf("%s (token secret set: %v): %v", name, secret != "", err)
		}
	}
}

// startErr is the error of New or Start; a server that starts is shut
// down.
func startErr(cfg config.Config) error {
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	return srv.Shutdown(context.Background())
}
