package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/auth"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// listeningLine is the line serve logs once it listens, in text or JSON;
// its groups are the HTTP address in either form.
var listeningLine = regexp.MustCompile(`herald listening" http=(\S+)|"msg":"herald listening","http":"([^"]+)"`)

// serve runs `herald serve args...` until the returned cancel is called,
// and returns the HTTP address it logged. Its data directory is a
// temporary one unless args give one.
func serve(t *testing.T, args ...string) (addr string, stderr *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = &syncBuffer{}
	code := make(chan int, 1)
	args = append([]string{"serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...)
	go func() {
		code <- Run(ctx, args, nil, &bytes.Buffer{}, stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listeningLine.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1] + m[2]
			break
		}
		select {
		case c := <-code:
			t.Fatalf("serve exited with %d: %s", c, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	var result int
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case result = <-code:
			case <-time.After(15 * time.Second):
				t.Fatal("serve did not exit after cancel")
			}
		})
		return result
	}
	t.Cleanup(func() { stop() })
	return addr, stderr, stop
}

// The serve command shuts down gracefully when its context ends (as on
// SIGINT or SIGTERM): clients are told to reconnect and it exits 0.
func TestServeGracefulShutdown(t *testing.T) {
	t.Parallel()
	addr, stderr, stop := serve(t, "--insecure")
	if !strings.Contains(stderr.String(), "INSECURE MODE") {
		t.Fatal("insecure mode was not announced")
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"connect","user":"alice"}`))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() { exited <- stop() }()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("no disconnect frame: %v", err)
	}
	var d struct {
		Type string
		Code int
	}
	if json.Unmarshal(msg, &d) != nil || d.Type != "disconnect" || d.Code != 3000 {
		t.Fatalf("got %s", msg)
	}
	_ = ws.Close() // as a client does, so that the server need not wait for it
	if code := <-exited; code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
}

// A secure server creates its token secret on first start and says how to
// mint a token; `herald token` mints one the server accepts.
func TestServeWithMintedToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr, stderr, _ := serve(t, "--data-dir", dir)
	if !strings.Contains(stderr.String(), "herald token --user") {
		t.Fatalf("no hint on minting tokens: %s", stderr.String())
	}
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"token", "--user", "alice", "--data-dir", dir, "--ttl", "1h", "--channels", "vip:*"}, nil, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("token exited %d", code)
	}
	tok := strings.TrimSpace(out.String())

	secret, err := auth.LoadOrCreateSecret(dir)
	if err != nil || secret.Created {
		t.Fatalf("secret: %v created=%v", err, secret.Created)
	}
	v, _ := auth.NewHMAC(secret.Key)
	claims, err := v.Verify(tok)
	if err != nil || claims.Subject != "alice" || len(claims.Channels) != 1 || claims.Channels[0] != "vip:*" {
		t.Fatalf("minted token: %v %+v", err, claims)
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"connect","token":"`+tok+`"}`))
	_, msg, err := ws.ReadMessage()
	if err != nil || !strings.Contains(string(msg), `"user":"alice"`) {
		t.Fatalf("connect with minted token: %s %v", msg, err)
	}
}

// herald token sets "aud" and "iss" from its flags, or else from the
// server's settings, read as the server reads them.
func TestTokenAudienceAndIssuer(t *testing.T) {
	dir := t.TempDir()
	mint := func(env []string, args ...string) *auth.Claims {
		t.Helper()
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		var out, stderr bytes.Buffer
		if code := Run(context.Background(), append([]string{"token", "--user", "alice", "--data-dir", dir}, args...), nil, &out, &stderr); code != 0 {
			t.Fatalf("token %v exited %d: %s", args, code, stderr.String())
		}
		secret, err := auth.LoadOrCreateSecret(dir)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := auth.NewHMAC(secret.Key)
		c, err := v.Verify(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := mint(nil); len(c.Audience) != 0 || c.Issuer != "" {
		t.Errorf("no settings: aud %q iss %q", c.Audience, c.Issuer)
	}
	if c := mint(nil, "--audience", "herald-prod", "--issuer", "https://auth.example"); len(c.Audience) != 1 || c.Audience[0] != "herald-prod" || c.Issuer != "https://auth.example" {
		t.Errorf("flags: aud %q iss %q", c.Audience, c.Issuer)
	}
	c := mint([]string{"HERALD_TOKEN_AUDIENCE=from-env", "HERALD_TOKEN_ISSUER=env-issuer"})
	if len(c.Audience) != 1 || c.Audience[0] != "from-env" || c.Issuer != "env-issuer" {
		t.Errorf("server settings: aud %q iss %q", c.Audience, c.Issuer)
	}
	if c := mint(nil, "--audience", "flag-wins"); len(c.Audience) != 1 || c.Audience[0] != "flag-wins" || c.Issuer != "env-issuer" {
		t.Errorf("flag over setting: aud %q iss %q", c.Audience, c.Issuer)
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"token"},
		{"token", "--user", "not valid"},
		{"token", "--user", "a", "--ttl", "-1h"},
		{"token", "--user", "a", "--info", "{nope"},
		{"token", "--user", "a", "--private-key", "/does/not/exist"},
	} {
		var stderr bytes.Buffer
		if code := Run(context.Background(), append(args, "--data-dir", t.TempDir()), nil, &bytes.Buffer{}, &stderr); code == 0 || stderr.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ping-interval", "1ms"}, "ping-interval"},
		{[]string{"--insecure", "--api-keys", "a"}, "api-keys: key 1 of 1 is too short"},
	} {
		var stderr bytes.Buffer
		code := Run(context.Background(), append([]string{"serve"}, tc.args...), nil, &bytes.Buffer{}, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d: %s", tc.args, code, stderr.String())
		}
	}
}

// A busy port is reported at once, not waited on, naming the setting to
// change and the address.
func TestServeBusyPort(t *testing.T) {
	t.Parallel()
	addr, stderr, _ := serve(t, "--insecure")
	m := regexp.MustCompile(`tcp=(\S+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no tcp address logged: %s", stderr.String())
	}
	tcpAddr := m[1]
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http", addr, "--tcp", "127.0.0.1:0"}, "--http " + addr + ": the address is already in use"},
		{[]string{"--http", "127.0.0.1:0", "--tcp", tcpAddr}, "--tcp " + tcpAddr + ": the address is already in use"},
	} {
		var stderr bytes.Buffer
		code := Run(context.Background(), append([]string{"serve", "--insecure", "--data-dir", t.TempDir()}, tc.args...), nil, &bytes.Buffer{}, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "HERALD_"+strings.ToUpper(tc.want[2:5])) {
			t.Errorf("%v: exit %d, %s", tc.args, code, stderr.String())
		}
	}
}

// Kubernetes sets HERALD_PORT, HERALD_SERVICE_HOST and more in every pod
// of a Service named herald: the server names them in a warning and
// starts.
func TestServeWarnsUnknownEnv(t *testing.T) {
	t.Setenv("HERALD_PORT", "tcp://10.96.0.12:7600")
	t.Setenv("HERALD_PORT_7600_TCP", "tcp://10.96.0.12:7600")
	t.Setenv("HERALD_SERVICE_HOST", "10.96.0.12")
	t.Setenv("HERALD_SERVICE_PORT", "7600")
	_, stderr, stop := serve(t, "--insecure")
	for _, name := range []string{"HERALD_PORT", "HERALD_PORT_7600_TCP", "HERALD_SERVICE_HOST", "HERALD_SERVICE_PORT"} {
		if !strings.Contains(stderr.String(), name) {
			t.Errorf("the warning does not name %s: %s", name, stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), "level=WARN") {
		t.Errorf("no warning: %s", stderr.String())
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// A bad value names the flag, variable or file it came from, and the
// value.
func TestServeBadValueNamesItsSource(t *testing.T) {
	file := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(file, []byte("max-frame-bytes: lots\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env, args []string
		want      string
	}{
		{nil, []string{"--max-frame-bytes", "lots"}, `invalid argument "lots" for "--max-frame-bytes"`},
		{[]string{"HERALD_MAX_FRAME_BYTES", "lots"}, nil, `invalid value "lots" for HERALD_MAX_FRAME_BYTES`},
		{nil, []string{"--config", file}, `invalid value "lots" for max-frame-bytes in ` + file},
		{[]string{"HERALD_MAX_FRAME_BYTES", "100"}, nil, "(set by HERALD_MAX_FRAME_BYTES)"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv(tc.env[0], tc.env[1])
			}
			var stderr bytes.Buffer
			code := Run(context.Background(), append([]string{"serve"}, tc.args...), nil, &bytes.Buffer{}, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d: %s", code, stderr.String())
			}
		})
	}
}

// --log-format json (or HERALD_LOG_FORMAT=json) writes one JSON object a
// line.
func TestServeLogFormatJSON(t *testing.T) {
	for _, env := range []bool{false, true} {
		args := []string{"--insecure", "--log-format", "json"}
		if env {
			t.Setenv("HERALD_LOG_FORMAT", "json")
			args = args[:1]
		}
		_, stderr, stop := serve(t, args...)
		if code := stop(); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		for _, line := range lines {
			var rec struct{ Level, Msg string }
			if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level == "" || rec.Msg == "" {
				t.Errorf("env %v: not a JSON log record: %q (%v)", env, line, err)
			}
		}
		if len(lines) < 3 {
			t.Errorf("env %v: %d lines: %s", env, len(lines), stderr.String())
		}
	}
	var stderr bytes.Buffer
	if code := Run(context.Background(), []string{"serve", "--log-format", "xml"}, nil, &bytes.Buffer{}, &stderr); code == 0 || !strings.Contains(stderr.String(), "log-format: want text or json") {
		t.Errorf("--log-format xml: exit %d: %s", code, stderr.String())
	}
}

// The path from insecure to secure: an insecure server uses the secret of
// its data directory, so `herald token` run with the same --data-dir mints
// tokens it accepts, and says which secret it used. `herald token` run
// with another directory warns that it created a new secret, and the
// server's refusal says what to check.
func TestInsecureServerAcceptsMintedToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr, stderr, _ := serve(t, "--insecure", "--data-dir", dir)
	secretPath := filepath.Join(dir, "token-secret")
	if !strings.Contains(stderr.String(), "verifying connection tokens") || !strings.Contains(stderr.String(), secretPath) {
		t.Fatalf("the server does not name its secret: %s", stderr.String())
	}
	mint := func(dataDir string) (token, stderr string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := Run(context.Background(), []string{"token", "--user", "alice", "--data-dir", dataDir}, nil, &out, &errOut); code != 0 {
			t.Fatalf("token exited %d: %s", code, errOut.String())
		}
		return strings.TrimSpace(out.String()), errOut.String()
	}
	pub := func(token string) (int, string) {
		var errOut bytes.Buffer
		code := Run(context.Background(), []string{"pub", "--server", "ws://" + addr + "/ws", "--token", token, "--channel", "room:1", `{"text":"hi"}`}, nil, &bytes.Buffer{}, &errOut)
		return code, errOut.String()
	}

	tok, said := mint(dir)
	if !strings.Contains(said, "signed with the secret in "+secretPath) {
		t.Errorf("token does not say which secret it used: %q", said)
	}
	if code, out := pub(tok); code != 0 {
		t.Fatalf("the insecure server refused a token minted with its --data-dir: %s", out)
	}

	other := t.TempDir()
	tok, said = mint(other)
	if !strings.Contains(said, "warning") || !strings.Contains(said, filepath.Join(other, "token-secret")) {
		t.Errorf("token does not warn that it created a secret: %q", said)
	}
	code, out := pub(tok)
	if code == 0 || !strings.Contains(out, "unauthorized") || !strings.Contains(out, "does not match this server's key") {
		t.Fatalf("a token of another secret: exit %d, %s", code, out)
	}
	secret, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, strings.TrimSpace(string(secret))) || strings.Contains(out, dir) {
		t.Fatalf("the client's error shows the server's secret or its path: %s", out)
	}
	// The server's log names the key the token was checked against.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), `msg="connect refused"`) || !strings.Contains(stderr.String(), `key="HS256 secret file `+secretPath) {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal naming the key in the log: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
