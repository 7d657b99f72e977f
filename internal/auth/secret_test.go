package auth

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s1, err := LoadOrCreateSecret(dir)
	if err != nil || !s1.Created || len(s1.Key) < 32 || s1.Warning != "" {
		t.Fatalf("create: %v %+v", err, s1)
	}
	if st, _ := os.Stat(s1.Path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	// The secret went through a temporary file; none is left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != SecretFile {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("data directory holds %q, want only %s", names, SecretFile)
	}
	s2, err := LoadOrCreateSecret(dir)
	if err != nil || s2.Created || !bytes.Equal(s1.Key, s2.Key) || s2.Warning != "" {
		t.Fatalf("reload: %v %+v", err, s2)
	}
}

// A file left empty or short (a first start that ran out of disk, say) is
// an error that names the file and says what to do, not a bare length.
func TestLeftoverSecretFile(t *testing.T) {
	for _, content := range []string{"", "\n", "0123456789abcdef\n"} {
		dir := t.TempDir()
		path := filepath.Join(dir, SecretFile)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateSecret(dir)
		if err == nil {
			t.Fatalf("%q: accepted", content)
		}
		for _, want := range []string{path, "delete", "32"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q: error %q does not say %q", content, err, want)
			}
		}
	}
}

// A secret file other users may read or write is used, with a warning:
// whoever reads it can mint tokens for any user.
func TestExposedSecretFile(t *testing.T) {
	dir := t.TempDir()
	created, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o620, 0o604} {
		if err := os.Chmod(created.Path, mode); err != nil {
			t.Fatal(err)
		}
		s, err := LoadOrCreateSecret(dir)
		if err != nil || !bytes.Equal(s.Key, created.Key) {
			t.Fatalf("%v: %v", mode, err)
		}
		if !strings.Contains(s.Warning, fmt.Sprintf("%04o", mode)) || !strings.Contains(s.Warning, "chmod 600") {
			t.Errorf("%v: warning %q", mode, s.Warning)
		}
	}
	if err := os.Chmod(created.Path, 0o400); err != nil {
		t.Fatal(err)
	}
	if s, err := LoadOrCreateSecret(dir); err != nil || s.Warning != "" {
		t.Errorf("owner-only file: %v, warning %q", err, s.Warning)
	}
}

// Two processes starting at once (a server and `herald token`) end with
// one secret: the second never overwrites the first's.
func TestConcurrentSecretCreation(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	results := make([]LoadedSecret, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = LoadOrCreateSecret(dir)
		}()
	}
	wg.Wait()
	onDisk, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("creator %d: %v", i, errs[i])
		}
		if !bytes.Equal(results[i].Key, onDisk.Key) {
			t.Fatalf("creator %d holds a secret that is not the one on disk", i)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d files in the data directory, want 1", len(entries))
	}
}
