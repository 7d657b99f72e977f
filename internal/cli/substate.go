package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/fsutil"
)

// stateSaveInterval is how often sub writes its --state file while
// messages move it; it writes it once more when it stops.
const stateSaveInterval = 200 * time.Millisecond

// subState is what `herald sub --state FILE` keeps between runs: the
// device it connected as, and the position of the last message it printed
// in each channel with history.
type subState struct {
	Device   string                     `json:"device,omitempty"`
	Channels map[string]client.Position `json:"channels"`
}

// stateFile is a subState kept in a file, written whole to a temporary
// file and renamed over it, so that the file always holds one complete
// state.
type stateFile struct {
	path string

	mu    sync.Mutex
	state subState
	dirty bool
}

// openState reads the state in path; a missing file is an empty state.
func openState(path string) (*stateFile, error) {
	f := &stateFile{path: path, state: subState{Channels: map[string]client.Position{}}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--state: %w", err)
	}
	if err := json.Unmarshal(b, &f.state); err != nil {
		return nil, fmt.Errorf("--state %s: not a state file written by herald sub: %w", path, err)
	}
	if f.state.Channels == nil {
		f.state.Channels = map[string]client.Position{}
	}
	return f, nil
}

// device returns the device of the state.
func (f *stateFile) device() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state.Device
}

// setDevice records the device.
func (f *stateFile) setDevice(device string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state.Device != device {
		f.state.Device, f.dirty = device, true
	}
}

// position returns where channel's messages resume; zero if unknown.
func (f *stateFile) position(channel string) client.Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state.Channels[channel]
}

// setPosition records that channel's messages resume after p.
func (f *stateFile) setPosition(channel string, p client.Position) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state.Channels[channel] != p {
		f.state.Channels[channel], f.dirty = p, true
	}
}

// save writes the state if it changed since the last save.
func (f *stateFile) save() error {
	f.mu.Lock()
	if !f.dirty {
		f.mu.Unlock()
		return nil
	}
	b, err := json.MarshalIndent(f.state, "", "  ")
	f.dirty = false
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(f.path, append(b, '\n')); err != nil {
		f.mu.Lock()
		f.dirty = true
		f.mu.Unlock()
		return fmt.Errorf("--state: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data: written and synced to a
// temporary file in the same directory, renamed over path, and the
// directory synced so that the new name survives a crash.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}
