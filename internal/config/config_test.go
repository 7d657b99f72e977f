package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args []string, env []string) (Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse flags: %v", err)
	}
	return Load(fs, func() []string { return env })
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.HTTP != d.HTTP || c.PingInterval != d.PingInterval || c.MaxFrameBytes != d.MaxFrameBytes || !c.ClientSend {
		t.Fatalf("got %+v", c)
	}
}

// Flags beat the environment, which beats the file, which beats defaults.
func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "herald.yaml")
	err := os.WriteFile(file, []byte(`
http: 127.0.0.1:1000
tcp: 127.0.0.1:1001
ping-interval: 7s
max-frame-bytes: 1000
api-keys: [file-key-0123456789-1, file-key-0123456789-2]
namespaces:
  - {name: news, subscribe: any, publish: server}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"HERALD_CONFIG=" + file, "HERALD_TCP=127.0.0.1:2001", "HERALD_PING_INTERVAL=8s", "HERALD_API_KEYS=env-key-0123456789-1,env-key-0123456789-2", "OTHER=1"}
	c, err := load(t, []string{"--ping-interval", "9s"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP != "127.0.0.1:1000" {
		t.Errorf("http from file: %s", c.HTTP)
	}
	if c.TCP != "127.0.0.1:2001" {
		t.Errorf("tcp from env over file: %s", c.TCP)
	}
	if c.PingInterval != 9*time.Second {
		t.Errorf("ping-interval from flag over env and file: %s", c.PingInterval)
	}
	if c.MaxFrameBytes != 1000 {
		t.Errorf("max-frame-bytes from file: %d", c.MaxFrameBytes)
	}
	if len(c.APIKeys) != 2 || c.APIKeys[0] != "env-key-0123456789-1" || c.APIKeys[1] != "env-key-0123456789-2" {
		t.Errorf("api-keys from env: %q, want two keys", c.APIKeys)
	}
	if len(c.Namespaces) != 1 || c.Namespaces[0] != (Namespace{Name: "news", Subscribe: "any", Publish: "server"}) {
		t.Errorf("namespaces from file: %+v", c.Namespaces)
	}
}

func TestInvalid(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(file, []byte("htp: x\n"), 0o600)
	if _, err := load(t, []string{"--config", file}, nil); err == nil || !strings.Contains(err.Error(), `unknown key "htp"`) {
		t.Errorf("unknown key: %v", err)
	}
	_, err := load(t, []string{"--ping-interval", "1ms", "--log-level", "loud", "--tls-cert", "x"}, nil)
	for _, want := range []string{"ping-interval", "log-level", "tls-cert"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %s, got %v", want, err)
		}
	}
	if _, err := load(t, nil, []string{"HERALD_MAX_FRAME_BYTES=lots"}); err == nil {
		t.Error("a non-numeric env value was accepted")
	}
}

// The variables Kubernetes sets in every pod for a Service named herald
// do not stop the server: Load ignores them and UnknownEnv names them, as
// it names a misspelt setting; HERALD_CONFIG and real settings are not
// unknown.
func TestUnknownEnvIgnored(t *testing.T) {
	kube := []string{
		"HERALD_PORT=tcp://10.96.0.12:7600",
		"HERALD_PORT_7600_TCP=tcp://10.96.0.12:7600",
		"HERALD_PORT_7600_TCP_ADDR=10.96.0.12",
		"HERALD_PORT_7600_TCP_PORT=7600",
		"HERALD_PORT_7600_TCP_PROTO=tcp",
		"HERALD_SERVICE_HOST=10.96.0.12",
		"HERALD_SERVICE_PORT=7600",
		"HERALD_SERVICE_PORT_HTTP=7600",
	}
	env := append([]string{"HERALD_MAX_FRAME_BYTE=5", "HERALD_TCP=127.0.0.1:2001", "HERALD_CONFIG=", "PATH=/bin"}, kube...)
	c, err := load(t, nil, env)
	if err != nil {
		t.Fatalf("unknown variables stopped the load: %v", err)
	}
	if c.TCP != "127.0.0.1:2001" || c.MaxFrameBytes != Default().MaxFrameBytes {
		t.Errorf("known variables: tcp %s, max-frame-bytes %d", c.TCP, c.MaxFrameBytes)
	}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	RegisterFlags(fs)
	got := UnknownEnv(fs, func() []string { return env })
	want := []string{"HERALD_MAX_FRAME_BYTE", "HERALD_PORT", "HERALD_PORT_7600_TCP", "HERALD_PORT_7600_TCP_ADDR",
		"HERALD_PORT_7600_TCP_PORT", "HERALD_PORT_7600_TCP_PROTO", "HERALD_SERVICE_HOST", "HERALD_SERVICE_PORT", "HERALD_SERVICE_PORT_HTTP"}
	if !slices.Equal(got, want) {
		t.Errorf("UnknownEnv = %q, want %q", got, want)
	}
}

// A short API key is refused, naming the setting and which key, without
// echoing any key into the log.
func TestShortAPIKey(t *testing.T) {
	long := strings.Repeat("k", MinAPIKeyLen)
	for _, keys := range []string{"Q", long + ",ZZshortZZ", long + ",," + long} {
		_, err := load(t, []string{"--api-keys", keys}, nil)
		if err == nil || !strings.Contains(err.Error(), "api-keys") || !strings.Contains(err.Error(), fmt.Sprint(MinAPIKeyLen)) {
			t.Errorf("--api-keys %q: want an error naming api-keys and the minimum, got %v", keys, err)
			continue
		}
		for _, k := range strings.Split(keys, ",") {
			if k != "" && strings.Contains(err.Error(), k) {
				t.Errorf("--api-keys %q: the error echoes a key: %v", keys, err)
			}
		}
	}
	if _, err := load(t, nil, []string{"HERALD_API_KEYS=tinyQ"}); err == nil || !strings.Contains(err.Error(), "api-keys") {
		t.Errorf("a short key from the environment: %v", err)
	}
	c, err := load(t, []string{"--api-keys", long + "," + long + "x"}, nil)
	if err != nil || len(c.APIKeys) != 2 {
		t.Errorf("keys of the minimum length: %v %q", err, c.APIKeys)
	}
}

func TestTokenAudienceAndIssuer(t *testing.T) {
	file := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(file, []byte("token-audience: from-file\ntoken-issuer: https://auth.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, []string{"--config", file}, nil)
	if err != nil || c.TokenAudience != "from-file" || c.TokenIssuer != "https://auth.example" {
		t.Fatalf("from the file: %v %q %q", err, c.TokenAudience, c.TokenIssuer)
	}
	c, err = load(t, []string{"--config", file, "--token-issuer", "flag-issuer"}, []string{"HERALD_TOKEN_AUDIENCE=env-audience"})
	if err != nil || c.TokenAudience != "env-audience" || c.TokenIssuer != "flag-issuer" {
		t.Fatalf("from env and flag: %v %q %q", err, c.TokenAudience, c.TokenIssuer)
	}
	if c, err := load(t, nil, nil); err != nil || c.TokenAudience != "" || c.TokenIssuer != "" {
		t.Fatalf("defaults: %v %q %q", err, c.TokenAudience, c.TokenIssuer)
	}
}

// Heartbeat settings are at least 1 s and whole seconds: clients are told
// them in whole seconds, and a value rounded down would have a client
// give up on a live connection.
func TestHeartbeatSettings(t *testing.T) {
	for _, args := range [][]string{
		{"--ping-interval", "999ms"},
		{"--pong-timeout", "999ms"},
		{"--ping-interval", "0s"},
		{"--ping-interval", "1500ms"},
		{"--pong-timeout", "2.5s"},
	} {
		if _, err := load(t, args, nil); err == nil || !strings.Contains(err.Error(), args[0][2:]) {
			t.Errorf("%v: want an error naming %s, got %v", args, args[0][2:], err)
		}
	}
	c, err := load(t, []string{"--ping-interval", "1s", "--pong-timeout", "1m"}, nil)
	if err != nil || c.PingInterval != time.Second || c.PongTimeout != time.Minute {
		t.Fatalf("1s and 1m: %v %+v", err, c)
	}
}

// trusted-proxies is a list like api-keys: comma-separated on the command
// line and in HERALD_TRUSTED_PROXIES, a YAML list in the file. Entries are
// CIDR ranges or single addresses; anything else is refused, naming the
// setting.
func TestTrustedProxies(t *testing.T) {
	file := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(file, []byte("trusted-proxies: [10.0.0.0/8, \"fd00::/8\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"default", nil, nil, nil},
		{"flag", []string{"--trusted-proxies", "127.0.0.1,192.168.0.0/16"}, nil, []string{"127.0.0.1/32", "192.168.0.0/16"}},
		{"env", nil, []string{"HERALD_TRUSTED_PROXIES=10.1.2.3/8, ::1"}, []string{"10.0.0.0/8", "::1/128"}},
		{"file", []string{"--config", file}, nil, []string{"10.0.0.0/8", "fd00::/8"}},
		{"mapped", []string{"--trusted-proxies", "::ffff:10.0.0.0/104"}, nil, []string{"10.0.0.0/8"}},
		{"empty env", nil, []string{"HERALD_TRUSTED_PROXIES="}, nil},
	} {
		c, err := load(t, tc.args, tc.env)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		prefixes, err := c.TrustedProxyPrefixes()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var got []string
		for _, p := range prefixes {
			got = append(got, p.String())
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "10.0.0.1:80", "fe80::1%eth0"} {
		if _, err := load(t, []string{"--trusted-proxies", bad}, nil); err == nil || !strings.Contains(err.Error(), "trusted-proxies") {
			t.Errorf("%q: want an error naming trusted-proxies, got %v", bad, err)
		}
	}
}

// A value that does not fit its setting, or that Validate refuses, is
// reported with the flag, variable or file that gave it.
func TestErrorsNameTheirSource(t *testing.T) {
	dir := t.TempDir()
	file := func(body string) string {
		t.Helper()
		f := filepath.Join(dir, fmt.Sprintf("c%d.yaml", len(body)))
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	typed := file("max-frame-bytes: lots\nping-interval: soon\n")
	small := file("max-frame-bytes: 100\n")
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"env type", nil, []string{"HERALD_MAX_FRAME_BYTES=lots"},
			[]string{`invalid value "lots" for HERALD_MAX_FRAME_BYTES: max-frame-bytes must be a whole number`}},
		{"env duration", nil, []string{"HERALD_PING_INTERVAL=10"},
			[]string{`invalid value "10" for HERALD_PING_INTERVAL: ping-interval must be a duration`}},
		{"file types", []string{"--config", typed}, nil,
			[]string{`invalid value "lots" for max-frame-bytes in ` + typed + `: must be a whole number`,
				`invalid value "soon" for ping-interval in ` + typed + `: must be a duration`}},
		{"env range", nil, []string{"HERALD_MAX_FRAME_BYTES=100"},
			[]string{"max-frame-bytes: must be at least 256, got 100 (set by HERALD_MAX_FRAME_BYTES)"}},
		{"flag range", []string{"--max-frame-bytes", "100"}, nil,
			[]string{"max-frame-bytes: must be at least 256, got 100 (set by --max-frame-bytes)"}},
		{"file range", []string{"--config", small}, nil,
			[]string{"max-frame-bytes: must be at least 256, got 100 (set by config file " + small + ")"}},
		{"two settings", []string{"--max-outbound-bytes", "1000"}, []string{"HERALD_MAX_FRAME_BYTES=2000"},
			[]string{"max-outbound-bytes: must be at least max-frame-bytes (2000), got 1000 (set by --max-outbound-bytes and HERALD_MAX_FRAME_BYTES)"}},
		{"default", []string{"--max-frame-bytes", "2000000"}, nil,
			[]string{"max-outbound-bytes: must be at least max-frame-bytes (2000000), got 1048576 (set by --max-frame-bytes)"}},
	} {
		_, err := load(t, tc.args, tc.env)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: want %q in the error, got %v", tc.name, w, err)
			}
		}
	}
}

// History is read from the file's namespace rules and bounded; the inbox
// settings are bounded too.
func TestHistoryAndInboxSettings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "herald.yaml")
	write := func(body string) {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("namespaces:\n  - {name: chat, subscribe: any, publish: clients, history-size: 500, history-ttl: 2h}\n  - {name: feed, subscribe: any, publish: server, history-size: 10}\n")
	c, err := load(t, []string{"--config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if size, ttl := c.Namespaces[0].History(); size != 500 || ttl != 2*time.Hour {
		t.Errorf("chat history: %d for %s", size, ttl)
	}
	if size, ttl := c.Namespaces[1].History(); size != 10 || ttl != DefaultHistoryTTL {
		t.Errorf("feed history: %d for %s, want the default age", size, ttl)
	}
	for body, want := range map[string]string{
		"{name: a, subscribe: any, publish: clients, history-size: 100001}":                  "history-size must be between 0 (no history) and 100000",
		"{name: a, subscribe: any, publish: clients, history-size: -1}":                      "history-size must be between",
		"{name: a, subscribe: any, publish: clients, history-ttl: 1h}":                       "history-ttl needs a history-size",
		"{name: a, subscribe: any, publish: clients, history-size: 5, history-ttl: 91d}":     "history-ttl",
		"{name: a, subscribe: any, publish: clients, history-size: 5, history-ttl: 2160h1s}": "history-ttl must be between 1s and",
		"{name: a, subscribe: any, publish: clients, history-size: 5, history-ttl: 10ms}":    "history-ttl must be between 1s and",
		"{name: a, publish: clients}":                                                        `"a": subscribe is required (any, grant or owner)`,
		"{name: a, subscribe: any}":                                                          `"a": publish is required (clients or server)`,
		"{name: a, subscribe: all, publish: clients}":                                        `subscribe must be any, grant or owner, got "all"`,
	} {
		write("namespaces:\n  - " + body + "\n")
		if _, err := load(t, []string{"--config", file}, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error saying %q", body, err, want)
		}
	}
	for _, args := range [][]string{
		{"--inbox-ttl", "-1s"},
		{"--inbox-max-messages", "0"},
		{"--inbox-max-bytes", "100"},
		{"--idempotency-window", "0s"},
		{"--max-recovery-bytes", "-1"},
	} {
		if _, err := load(t, args, nil); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("%v: got %v", args, err)
		}
	}
	// A misspelt key in a rule would leave history off without a word.
	write("namespaces:\n  - {name: chat, subscribe: any, publish: clients, histroy-size: 10}\n")
	if _, err := load(t, []string{"--config", file}, nil); err == nil || !strings.Contains(err.Error(), `rule 1 (chat): unknown key "histroy-size"`) {
		t.Errorf("misspelt key in a namespace rule: %v", err)
	}
	write("namespaces: chat\n")
	if _, err := load(t, []string{"--config", file}, nil); err == nil || !strings.Contains(err.Error(), "must be a list of rules") {
		t.Errorf("namespaces not a list: %v", err)
	}
	if c, err := load(t, []string{"--inbox-ttl", "0"}, nil); err != nil || c.InboxTTL != 0 {
		t.Errorf("inbox-ttl 0 turns the inbox off: %v", err)
	}
}

func TestReceiptsWebhookSettings(t *testing.T) {
	secret := strings.Repeat("s", 32)
	c, err := load(t, []string{"--receipts-webhook", "https://backend.example/herald"}, []string{"HERALD_RECEIPTS_WEBHOOK_SECRET=" + secret})
	if err != nil || c.ReceiptsWebhook != "https://backend.example/herald" || c.ReceiptsWebhookSecret != secret {
		t.Fatalf("%+v, %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--receipts-webhook", "ftp://backend.example/", "--receipts-webhook-secret", secret}, "want an http:// or https:// URL"},
		{[]string{"--receipts-webhook", "backend.example", "--receipts-webhook-secret", secret}, "want an http:// or https:// URL"},
		{[]string{"--receipts-webhook", "http://backend.example/"}, "receipts-webhook-secret: the webhook's posts are signed with it"},
		{[]string{"--receipts-webhook", "http://backend.example/", "--receipts-webhook-secret", "short"}, "at least 32 bytes"},
		{[]string{"--receipts-webhook", "http://backend.example/", "--receipts-webhook-secret", secret, "--inbox-ttl", "0"}, "needs inboxes"},
	} {
		if _, err := load(t, tc.args, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	if c, err := load(t, nil, nil); err != nil || c.ReceiptsWebhook != "" {
		t.Fatalf("off by default: %q, %v", c.ReceiptsWebhook, err)
	}
}

// The events webhook takes a URL and a secret, the offline grace a
// bounded duration, and a namespace's presence-events needs the webhook.
func TestEventsWebhookSettings(t *testing.T) {
	secret := strings.Repeat("s", 32)
	file := filepath.Join(t.TempDir(), "herald.yaml")
	body := "events-webhook: https://backend.example/events\nnamespaces:\n  - {name: room, subscribe: any, publish: clients, presence-events: true}\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, []string{"--config", file, "--offline-grace", "2s"}, []string{"HERALD_EVENTS_WEBHOOK_SECRET=" + secret})
	if err != nil || c.EventsWebhook != "https://backend.example/events" || c.EventsWebhookSecret != secret || c.OfflineGrace != 2*time.Second || !c.Namespaces[0].PresenceEvents {
		t.Fatalf("%+v, %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--events-webhook", "ftp://backend.example/", "--events-webhook-secret", secret}, "events-webhook: want an http:// or https:// URL"},
		{[]string{"--events-webhook", "http://backend.example/"}, "events-webhook-secret: the webhook's posts are signed with it"},
		{[]string{"--offline-grace", "-1s"}, "offline-grace: must be between 0 and 1h0m0s"},
		{[]string{"--offline-grace", "2h"}, "offline-grace: must be between"},
		{[]string{"--config", file}, "events-webhook-secret"},
		{[]string{"--escalate-after", "1m"}, "escalate-after: needs events-webhook"},
		{[]string{"--escalate-after", "-1s"}, "escalate-after: must not be negative"},
		{[]string{"--events-webhook", "http://backend.example/", "--events-webhook-secret", secret, "--escalate-after", "1h", "--inbox-ttl", "1h"}, "escalate-after: must be below inbox-ttl (1h0m0s)"},
		{[]string{"--events-webhook", "http://backend.example/", "--events-webhook-secret", secret, "--escalate-after", "1m", "--inbox-ttl", "0"}, "escalate-after: must be below inbox-ttl (0s)"},
	} {
		if _, err := load(t, tc.args, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	if err := os.WriteFile(file, []byte("namespaces:\n  - {name: room, subscribe: any, publish: clients, presence-events: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := load(t, []string{"--config", file}, nil); err == nil || !strings.Contains(err.Error(), `"room": presence-events needs events-webhook`) {
		t.Errorf("presence-events without the webhook: %v", err)
	}
	if c, err := load(t, nil, nil); err != nil || c.EventsWebhook != "" || c.OfflineGrace != 5*time.Second || c.EscalateAfter != 0 {
		t.Fatalf("defaults: %q, %s, %s, %v", c.EventsWebhook, c.OfflineGrace, c.EscalateAfter, err)
	}
	c, err = load(t, []string{"--events-webhook", "http://backend.example/", "--escalate-after", "30s"}, []string{"HERALD_EVENTS_WEBHOOK_SECRET=" + secret})
	if err != nil || c.EscalateAfter != 30*time.Second {
		t.Fatalf("escalate-after 30s: %s, %v", c.EscalateAfter, err)
	}
}

func TestHookSettings(t *testing.T) {
	secret := strings.Repeat("s", 32)
	file := filepath.Join(t.TempDir(), "herald.yaml")
	body := "subscribe-hook: https://backend.example/subscribe\nnamespaces:\n  - {name: room, subscribe: grant, publish: clients, subscribe-hook: true}\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, []string{"--config", file, "--connect-hook", "http://backend.example/connect", "--hook-headers", "Cookie,X-Session"}, []string{"HERALD_HOOK_SECRET=" + secret})
	if err != nil || c.ConnectHook != "http://backend.example/connect" || c.SubscribeHook != "https://backend.example/subscribe" ||
		!c.Namespaces[0].SubscribeHook || c.HookTimeout != 3*time.Second || c.HookConcurrency != 64 || !slices.Equal(c.HookHeaders, []string{"Cookie", "X-Session"}) {
		t.Fatalf("%+v, %v", c, err)
	}
	hook := []string{"--connect-hook", "http://backend.example/", "--hook-secret", secret}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--connect-hook", "ftp://backend.example/", "--hook-secret", secret}, "connect-hook: want an http:// or https:// URL"},
		{[]string{"--connect-hook", "http://backend.example/"}, "hook-secret: the connect-hook's requests are signed with it"},
		{[]string{"--config", file}, "hook-secret"},
		{append(hook, "--hook-timeout", "0s"), "hook-timeout: must be above 0 and at most 1m0s"},
		{append(hook, "--hook-timeout", "10s"), "hook-timeout: must be below handshake-timeout (10s)"},
		{append(hook, "--hook-concurrency", "0"), "hook-concurrency: must be at least 1"},
		{[]string{"--http", "127.0.0.1:8080", "--connect-hook", "http://localhost:8080/auth", "--hook-secret", secret}, "connect-hook: http://localhost:8080/auth is this server's own http address"},
		{[]string{"--http", ":8080", "--subscribe-hook", "http://127.0.0.1:8080/", "--hook-secret", secret}, "subscribe-hook: http://127.0.0.1:8080/ is this server's own http address"},
		{[]string{"--http", "10.0.0.5:80", "--connect-hook", "http://10.0.0.5/auth", "--hook-secret", secret}, "this server's own http address"},
		{append(hook, "--hook-headers", "Cookie,Bad Header"), `hook-headers: "Bad Header" is not an HTTP header name`},
	} {
		if _, err := load(t, tc.args, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	if _, err := load(t, []string{"--http", "127.0.0.1:8080", "--connect-hook", "http://127.0.0.1:9090/auth", "--hook-secret", secret}, nil); err != nil {
		t.Errorf("a hook on another port of this host: %v", err)
	}
	noURL := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(noURL, []byte("namespaces:\n  - {name: room, subscribe: any, publish: clients, subscribe-hook: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := load(t, []string{"--config", noURL}, nil); err == nil || !strings.Contains(err.Error(), "subscribe-hook needs the subscribe-hook URL") {
		t.Errorf("a namespace asking for a hook that is not set: got %v", err)
	}
}

// --redis comes from a flag, the environment or the file like every
// setting, in any of the URL forms Redis clients take; a URL that is not
// one, a prefix with braces and a node timeout too short to report in are
// refused, each naming its setting.
func TestRedisSettings(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:6379", "rediss://:secret@redis.example:6380/2", "redis://user:pw@h1:7000?addr=h2:7001&addr=h3:7002"} {
		c, err := load(t, nil, []string{"HERALD_REDIS=" + u})
		if err != nil || c.Redis != u {
			t.Fatalf("HERALD_REDIS=%s: %q, %v", u, c.Redis, err)
		}
	}
	file := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(file, []byte("redis: redis://10.0.0.5:6379/1\nredis-prefix: app1\nnode-timeout: 10s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, []string{"--config", file}, nil)
	if err != nil || c.Redis != "redis://10.0.0.5:6379/1" || c.RedisPrefix != "app1" || c.NodeTimeout != 10*time.Second {
		t.Fatalf("from the file: %+v, %v", c, err)
	}
	for args, want := range map[string]string{
		"--redis=http://127.0.0.1:6379": "redis:",
		"--redis-prefix={app}":          "redis-prefix:",
		"--node-timeout=1s":             "node-timeout:",
		"--redis-tls-ca=/ca.pem":        "redis-tls-ca:",
	} {
		if _, err := load(t, []string{args}, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", args, err, want)
		}
	}
}
