package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The list flags reach the options: a publisher pinned in a scenario
// without one, and a bad pid in a list, are refused by name.
func TestBenchListFlags(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"bench", "idle",
		"--server", "ws://127.0.0.1:1/ws, ws://127.0.0.1:2/ws",
		"--api", "http://127.0.0.1:1,http://127.0.0.1:2",
		"--server-pid", "1,-2", "--publish-on", "2"}, strings.NewReader(""), &stdout, &stderr)
	if code == 0 {
		t.Fatalf("bench with invalid list flags exited 0: %s", stdout.String())
	}
	for _, want := range []string{"publish-on: idle has no publisher", "server-pid: must be positive"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "server: ") {
		t.Errorf("the endpoint lists were refused:\n%s", stderr.String())
	}
}
