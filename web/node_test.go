package web_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testserver"
)

// TestJavaScriptClient runs the client's own tests (web/test, Node.js's
// built-in runner) against a real server. Without Node.js it fails,
// telling how to install it, unless HERALD_SKIP_NODE=1 says to skip.
func TestJavaScriptClient(t *testing.T) {
	if os.Getenv("HERALD_SKIP_NODE") == "1" {
		t.Skip("HERALD_SKIP_NODE=1: the JavaScript client's tests skipped")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed (Node.js 20 or newer: apt-get install -y nodejs); set HERALD_SKIP_NODE=1 to skip")
	}
	const secret = "web-test-secret-0123456789abcdef0123"
	cfg := testserver.Config(t)
	cfg.TokenSecret = secret
	// chat:* keeps history, for the recovery tests; the server keeps
	// inboxes by default.
	cfg.Namespaces = []config.Namespace{{Name: "chat", Subscribe: config.SubscribeAny, Publish: config.PublishClients, HistorySize: 100}}
	srv := testserver.Start(t, cfg)
	tok, err := auth.Mint(auth.HMACKey([]byte(secret)), auth.Claims{}, "tok", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Node.js 20 has WebSocket behind a flag; later versions ignore it.
	cmd := exec.CommandContext(ctx, node, "--experimental-websocket", "--test", "--test-reporter=spec", "test/unit.test.mjs", "test/server.test.mjs")
	cmd.Env = append(os.Environ(), "HERALD_URL="+srv.API(), "HERALD_TOKEN="+tok)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
}

// TestJavaScriptChecks checks the syntax of every script the server
// serves, and, with TypeScript's tsc on the PATH, that herald.d.ts
// compiles against an application's use of the client
// (test/types-check.ts). .ci/run installs tsc; elsewhere its absence is
// logged and that part skipped.
func TestJavaScriptChecks(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("HERALD_SKIP_NODE") == "1" {
			t.Skip("HERALD_SKIP_NODE=1")
		}
		t.Fatal("node is not installed (Node.js 20 or newer)")
	}
	for _, f := range []string{"herald.js", "demo/demo.js", "admin/admin.js"} {
		if out, err := exec.Command(node, "--check", f).CombinedOutput(); err != nil {
			t.Errorf("node --check %s: %v\n%s", f, err, out)
		}
	}
	tsc, err := exec.LookPath("tsc")
	if err != nil {
		if os.Getenv("HERALD_CI") != "" {
			t.Fatal("tsc is not installed: npm install -g typescript@5")
		}
		t.Log("tsc is not installed (npm install -g typescript@5): the type declarations were not compiled")
		return
	}
	out, err := exec.Command(tsc, "--noEmit", "--strict", "--target", "es2022", "--module", "nodenext",
		"--moduleResolution", "nodenext", "--lib", "es2022,dom", "test/types-check.ts").CombinedOutput()
	if err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}
