package cli

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	t.Parallel()
	full := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/heraldpush/herald", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"},
			{Key: "GOARCH", Value: "amd64"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "3b6e7ca1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8"},
			{Key: "vcs.time", Value: "2026-11-27T15:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	noVCS := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/heraldpush/herald", Version: "(devel)"},
		Settings:  []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"}, {Key: "-buildvcs", Value: "false"}},
	}
	clean := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Version: "v1.4.0"},
		Settings:  []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}},
	}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"full", full, "herald v1.4.0\nrevision 3b6e7ca1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8 of 2026-11-27T15:00:00Z, with uncommitted changes\ngo1.26.8 linux/amd64\n"},
		{"no vcs", noVCS, "herald (devel)\nrevision unknown (built without version control information)\ngo1.26.8 linux/arm64\n"},
		{"clean, no time", clean, "herald v1.4.0\nrevision abc\ngo1.26.8\n"},
		{"empty", &debug.BuildInfo{}, "herald (version unknown)\nrevision unknown (built without version control information)\ngo (version unknown)\n"},
		{"none", nil, "herald (version unknown: the binary records no build information)\n"},
	} {
		if got := formatVersion(tc.bi); got != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// herald version reads the build information of the running binary: in a
// test, that of the test binary, which has a Go version and no "dev".
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, nil, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "herald ") || strings.Contains(out.String(), "dev\n") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("got %q", out.String())
	}
}
