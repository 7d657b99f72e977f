package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

// API keys of the test servers; two, as in a rotation.
const (
	testOldKey = "old-key-0123456789abcdef"
	testNewKey = "new-key-0123456789abcdef"
)

// secureConfig is a production-like configuration: tokens required, API
// keys required.
func secureConfig(t *testing.T) config.Config {
	cfg := testConfig()
	cfg.Insecure = false
	cfg.DataDir = t.TempDir()
	cfg.TokenSecret = testSecret
	cfg.APIKeys = []string{testOldKey, testNewKey}
	cfg.ClientBroadcast = false
	cfg.Namespaces = []config.Namespace{
		{Name: "vip", Subscribe: config.SubscribeGrant, Publish: config.PublishClients},
		{Name: "news", Subscribe: config.SubscribeAny, Publish: config.PublishServer},
	}
	return cfg
}

func hmacToken(t *testing.T, user string, channels []string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(auth.HMACKey([]byte(testSecret)), auth.Claims{Channels: channels}, user, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mint(t *testing.T, user string, channels []string, info json.RawMessage) (string, error) {
	t.Helper()
	return auth.Mint(auth.HMACKey([]byte(testSecret)), auth.Claims{Channels: channels, Info: info}, user, time.Hour)
}

func (c *conn) connectToken(token string) frame {
	c.t.Helper()
	return c.replyTo(c.send(map[string]any{"op": "connect", "token": token}))
}

// refused checks that a connect was refused as unauthorized and the
// connection closed with 3502.
func refused(t *testing.T, c *conn, f frame) {
	t.Helper()
	if f.Error == nil || f.Error.Code != "unauthorized" {
		t.Fatalf("want unauthorized, got %s", f.raw)
	}
	if d := c.expectClosed(3 * time.Second); d == nil || d.Code != 3502 || d.Reconnect {
		t.Fatalf("want disconnect 3502, got %+v", d)
	}
}

func TestTokenAuthentication(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t))

	t.Run("valid token", func(t *testing.T) {
		c := dialWS(t, srv)
		f := c.connectToken(hmacToken(t, "alice", nil, time.Hour))
		if f.Error != nil || !strings.Contains(string(f.Result), `"user":"alice"`) {
			t.Fatalf("got %s", f.raw)
		}
	})
	t.Run("no token", func(t *testing.T) {
		c := dialTCP(t, srv)
		refused(t, c, c.replyTo(c.send(map[string]any{"op": "connect", "user": "alice"})))
	})
	t.Run("bad signature", func(t *testing.T) {
		tok, _ := auth.Mint(auth.HMACKey([]byte("another-secret-another-secret-32b")), auth.Claims{}, "alice", time.Hour)
		c := dialWS(t, srv)
		refused(t, c, c.connectToken(tok))
	})
	t.Run("tampered payload", func(t *testing.T) {
		parts := strings.Split(hmacToken(t, "alice", nil, time.Hour), ".")
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"root","exp":%d}`, time.Now().Add(time.Hour).Unix())))
		c := dialWS(t, srv)
		refused(t, c, c.connectToken(strings.Join(parts, ".")))
	})
	t.Run("alg none", func(t *testing.T) {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).
			SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		c := dialWS(t, srv)
		refused(t, c, c.connectToken(tok))
	})
	t.Run("expired", func(t *testing.T) {
		c := dialTCP(t, srv)
		f := c.connectToken(hmacToken(t, "alice", nil, -time.Minute))
		refused(t, c, f)
		if !strings.Contains(f.Error.Message, "expired") {
			t.Fatalf("message should say expired: %s", f.raw)
		}
	})
	t.Run("no exp", func(t *testing.T) {
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).SignedString([]byte(testSecret))
		c := dialWS(t, srv)
		refused(t, c, c.connectToken(tok))
	})
	t.Run("empty user beside a token", func(t *testing.T) {
		// A present user must be a valid id, as in insecure mode; like
		// every failed connect, the refusal is final.
		c := dialWS(t, srv)
		c.send(map[string]any{"op": "connect", "token": hmacToken(t, "alice", nil, time.Hour), "user": ""})
		c.wantError("invalid_user")
		if d := c.expectClosed(3 * time.Second); d == nil || d.Code != 3502 {
			t.Fatalf("want disconnect 3502, got %+v", d)
		}
	})
	t.Run("claiming another user", func(t *testing.T) {
		c := dialWS(t, srv)
		refused(t, c, c.replyTo(c.send(map[string]any{"op": "connect", "token": hmacToken(t, "alice", nil, time.Hour), "user": "bob"})))
	})
	t.Run("from is the authenticated user", func(t *testing.T) {
		bob := dialWS(t, srv)
		bob.connectToken(hmacToken(t, "bob", nil, time.Hour))
		alice := dialTCP(t, srv)
		alice.connectToken(hmacToken(t, "alice", nil, time.Hour))
		alice.reply(alice.send(map[string]any{"op": "send", "to": "bob", "data": 1, "from": "carol", "user": "carol"}))
		if m := bob.expect("message"); m.From != "alice" {
			t.Fatalf("sender spoofed: %s", m.raw)
		}
	})
}

func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), strings.ReplaceAll(strings.ToLower(typ), " ", "-")+".pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// RS256 and ES256 servers accept their own tokens and refuse HS256 tokens,
// including the classic confusion attack: an HS256 token whose HMAC key is
// the server's public key.
func TestPublicKeyTokens(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaPub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	ecPub, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	ecPriv, _ := x509.MarshalECPrivateKey(ecKey)
	cases := []struct {
		name          string
		pubPEM, privK string
	}{
		{"RS256", writePEM(t, "PUBLIC KEY", rsaPub), writePEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))},
		{"ES256", writePEM(t, "PUBLIC KEY", ecPub), writePEM(t, "EC PRIVATE KEY", ecPriv)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := secureConfig(t)
			cfg.TokenSecret, cfg.TokenPublicKey = "", tc.pubPEM
			srv := startServer(t, cfg)

			pemBytes, _ := os.ReadFile(tc.privK)
			key, err := auth.ParsePrivateKey(pemBytes)
			if err != nil {
				t.Fatal(err)
			}
			good, _ := auth.Mint(key, auth.Claims{}, "alice", time.Hour)
			c := dialWS(t, srv)
			if f := c.connectToken(good); f.Error != nil {
				t.Fatalf("%s token refused: %s", tc.name, f.raw)
			}

			pubBytes, _ := os.ReadFile(tc.pubPEM)
			confused, _ := auth.Mint(auth.HMACKey(pubBytes), auth.Claims{}, "alice", time.Hour)
			c = dialWS(t, srv)
			refused(t, c, c.connectToken(confused))
		})
	}
}

func TestChannelPermissions(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t))
	alice := dialWS(t, srv)
	alice.connectToken(hmacToken(t, "alice", []string{"vip:gold*"}, time.Hour))
	bob := dialTCP(t, srv)
	bob.connectToken(hmacToken(t, "bob", nil, time.Hour))

	try := func(c *conn, op, channel string) frame {
		t.Helper()
		req := map[string]any{"op": op, "channel": channel}
		if op == "publish" {
			req["data"] = "x"
		}
		return c.replyTo(c.send(req))
	}
	allowed := func(f frame) {
		t.Helper()
		if f.Error != nil {
			t.Fatalf("refused: %s", f.raw)
		}
	}
	forbidden := func(f frame) {
		t.Helper()
		if f.Error == nil || f.Error.Code != "forbidden" {
			t.Fatalf("want forbidden, got %s", f.raw)
		}
	}
	allowed(try(alice, "subscribe", "user:alice")) // owner namespace: her own
	forbidden(try(bob, "subscribe", "user:alice")) // ...not bob's
	allowed(try(alice, "subscribe", "vip:gold-1")) // grant namespace: granted
	forbidden(try(bob, "subscribe", "vip:gold-1")) // ...not granted
	allowed(try(bob, "subscribe", "news:today"))   // any may subscribe
	forbidden(try(alice, "publish", "news:today")) // server-only publishing
	forbidden(try(alice, "publish", "user:bob"))   // user: is server-only too
	forbidden(try(bob, "publish", "vip:gold-1"))   // publishing needs subscribe rights
	allowed(try(alice, "publish", "vip:gold-1"))   // which alice has
	allowed(try(bob, "publish", "room:1"))         // default namespace: open
	forbidden(bob.replyTo(bob.send(map[string]any{"op": "broadcast", "data": 1})))

	// Nothing leaked: bob got no message from vip or user:alice.
	if m := alice.expect("message"); m.Channel != "vip:gold-1" {
		t.Fatalf("alice got %s", m.raw)
	}
	bob.expectSilence(200 * time.Millisecond)
}

func TestPublishRateLimit(t *testing.T) {
	t.Parallel()
	cfg := secureConfig(t)
	cfg.PublishPerSecond, cfg.PublishBurst = 1, 3
	srv := startServer(t, cfg)
	c := dialWS(t, srv)
	c.connectToken(hmacToken(t, "alice", nil, time.Hour))
	limited := 0
	for range 6 {
		f := c.replyTo(c.send(map[string]any{"op": "publish", "channel": "room:1", "data": 1}))
		if f.Error != nil {
			if f.Error.Code != "rate_limited" {
				t.Fatalf("got %s", f.raw)
			}
			limited++
		}
	}
	if limited < 2 {
		t.Fatalf("%d of 6 publishes limited with a burst of 3", limited)
	}
}

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	cfg := secureConfig(t)
	cfg.MaxConnsPerUser = 2
	cfg.MaxSubscriptions = 2
	cfg.ConnectsPerIP, cfg.ConnectsBurst = 0.001, 6
	srv := startServer(t, cfg)
	tok := hmacToken(t, "alice", nil, time.Hour)

	a := dialWS(t, srv)
	a.connectToken(tok)
	a.subscribe("room:1")
	a.subscribe("room:2")
	a.writeRaw(`{"id":99,"op":"subscribe","channel":"room:3"}`)
	a.wantError("too_many_subscriptions")

	dialWS(t, srv).connectToken(tok)
	third := dialTCP(t, srv)
	f := third.connectToken(tok)
	if f.Error == nil || f.Error.Code != "too_many_connections" {
		t.Fatalf("third connection of a user: %s", f.raw)
	}
	if d := third.expectClosed(3 * time.Second); d == nil || d.Code != 3503 {
		t.Fatalf("want disconnect 3503, got %+v", d)
	}

	// Three connections so far, burst 6: three more pass, then the
	// per-IP rate refuses with a clear reason on both transports.
	for range 3 {
		dialTCP(t, srv)
	}
	c := dialTCP(t, srv)
	if d := c.expectClosed(3 * time.Second); d == nil || d.Reason != "connect_rate_limited" {
		t.Fatalf("tcp over the connect rate: %+v", d)
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.HTTPAddr().String()+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("ws over the connect rate: %v %v", err, resp)
	}
	if code := jsonErrorCode(t, resp.Body); code != "connect_rate_limited" {
		t.Fatalf("code %q", code)
	}
}

func jsonErrorCode(t *testing.T, r io.Reader) string {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(r).Decode(&body); err != nil {
		t.Fatalf("error body is not JSON: %v", err)
	}
	if body.Error.Message == "" {
		t.Fatal("error without a message")
	}
	return body.Error.Code
}

func TestOriginAllowList(t *testing.T) {
	t.Parallel()
	cfg := secureConfig(t)
	srv := startServer(t, cfg)
	url := "ws://" + srv.HTTPAddr().String() + "/ws"
	dial := func(origin string) (*http.Response, error) {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		ws, resp, err := websocket.DefaultDialer.Dial(url, h)
		if ws != nil {
			ws.Close()
		}
		return resp, err
	}
	if _, err := dial(""); err != nil {
		t.Fatalf("no Origin (non-browser client) refused: %v", err)
	}
	if _, err := dial("http://" + srv.HTTPAddr().String()); err != nil {
		t.Fatalf("same-origin page refused: %v", err)
	}
	resp, err := dial("https://evil.example")
	if err == nil || resp.StatusCode != http.StatusForbidden || jsonErrorCode(t, resp.Body) != "forbidden_origin" {
		t.Fatalf("foreign origin: %v %v", err, resp)
	}

	cfg = secureConfig(t)
	cfg.AllowedOrigins = []string{"https://app.example"}
	srv = startServer(t, cfg)
	url = "ws://" + srv.HTTPAddr().String() + "/ws"
	if _, err := dial("https://app.example"); err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	if resp, err := dial("http://" + srv.HTTPAddr().String()); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("origin not on the list accepted")
	}
}

func TestAPIAuthAndLimits(t *testing.T) {
	t.Parallel()
	cfg := secureConfig(t)
	cfg.APIMaxBody = 2048
	srv := startServer(t, cfg)
	base := "http://" + srv.HTTPAddr().String()
	call := func(key, body string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", base+"/v1/publish", strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e struct{ Error struct{ Code string } }
		_ = json.Unmarshal(b, &e)
		return resp, e.Error.Code
	}
	ok := `{"channel":"room:1","data":1}`
	if resp, code := call("", ok); resp.StatusCode != 401 || code != "unauthorized" {
		t.Fatalf("no key: %d %s", resp.StatusCode, code)
	}
	if resp, code := call("wrong-key", ok); resp.StatusCode != 401 || code != "unauthorized" {
		t.Fatalf("wrong key: %d %s", resp.StatusCode, code)
	}
	for _, key := range []string{testOldKey, testNewKey} {
		if resp, _ := call(key, ok); resp.StatusCode != 200 {
			t.Fatalf("key %s refused: %d", key, resp.StatusCode)
		}
	}
	// Metrics are behind the key too.
	if resp, err := http.Get(base + "/metrics"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("metrics without a key: %v %v", err, resp)
	}
	big := `{"channel":"room:1","data":"` + strings.Repeat("x", 4096) + `"}`
	if resp, code := call(testNewKey, big); resp.StatusCode != 413 || code != "too_large" {
		t.Fatalf("oversized body: %d %s", resp.StatusCode, code)
	}

	// A server with no keys configured refuses everything, clearly.
	cfg = secureConfig(t)
	cfg.APIKeys = nil
	srv = startServer(t, cfg)
	base = "http://" + srv.HTTPAddr().String()
	if resp, code := call("anything", ok); resp.StatusCode != 401 || code != "unauthorized" {
		t.Fatalf("keyless server: %d %s", resp.StatusCode, code)
	}
}

// With no secret configured, a secure server creates one (mode 0600) and
// tokens minted from it work.
func TestGeneratedSecret(t *testing.T) {
	t.Parallel()
	cfg := secureConfig(t)
	cfg.TokenSecret = ""
	srv := startServer(t, cfg)
	path := filepath.Join(cfg.DataDir, auth.SecretFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v", st.Mode().Perm())
	}
	secret, err := auth.LoadOrCreateSecret(cfg.DataDir)
	if err != nil || secret.Created {
		t.Fatalf("reload: %v created=%v", err, secret.Created)
	}
	tok, _ := auth.Mint(auth.HMACKey(bytes.TrimSpace(secret.Key)), auth.Claims{}, "alice", time.Hour)
	c := dialWS(t, srv)
	if f := c.connectToken(tok); f.Error != nil {
		t.Fatalf("token from the generated secret refused: %s", f.raw)
	}
}

// A secret file that other users can read is used, and the log says so.
func TestExposedSecretWarning(t *testing.T) {
	t.Parallel()
	cfg := secureConfig(t)
	cfg.TokenSecret = ""
	path := filepath.Join(cfg.DataDir, auth.SecretFile)
	if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	var logs bytes.Buffer
	// The secret is read when the server is built.
	if _, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "token secret") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, path) || !strings.Contains(line, "0644") {
		t.Fatalf("no warning naming the file and its mode; log:\n%s", logs.String())
	}
}

// With token-audience and token-issuer set, only tokens that carry both
// connect; any other is refused as unauthorized and the connection closed.
func TestTokenAudienceAndIssuer(t *testing.T) {
	t.Parallel()
	cfg := secureConfig(t)
	cfg.TokenAudience, cfg.TokenIssuer = "herald-prod", "https://auth.example"
	srv := startServer(t, cfg)
	tokenFor := func(aud []string, iss string) string {
		t.Helper()
		tok, err := auth.Mint(auth.HMACKey([]byte(testSecret)),
			auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Audience: aud, Issuer: iss}}, "alice", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := tr.dial(t, srv)
			if f := c.connectToken(tokenFor([]string{"herald-prod"}, "https://auth.example")); f.Error != nil {
				t.Fatalf("right audience and issuer refused: %s", f.raw)
			}
			for _, tc := range []struct {
				name, want string
				aud        []string
				iss        string
			}{
				{"wrong audience", "aud", []string{"herald-staging"}, "https://auth.example"},
				{"no audience", "aud", nil, "https://auth.example"},
				{"audience in another case", "aud", []string{"Herald-Prod"}, "https://auth.example"},
				{"wrong issuer", "iss", []string{"herald-prod"}, "https://evil.example"},
				{"no issuer", "iss", []string{"herald-prod"}, ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := tr.dial(t, srv)
					f := c.connectToken(tokenFor(tc.aud, tc.iss))
					refused(t, c, f)
					if !strings.Contains(f.Error.Message, `"`+tc.want+`"`) {
						t.Errorf("the message does not name the %s claim: %s", tc.want, f.raw)
					}
				})
			}
		})
	}
}

// Channels that differ only in case are different channels: a subscriber
// to VIP:gold-1, which any user may join (namespace VIP is not listed),
// sees nothing of vip:gold-1, which needs a grant; Room:1 is not room:1.
func TestChannelNamesAreCaseSensitive(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t))
	api := apiClient{t, "http://" + srv.HTTPAddr().String(), testNewKey}
	alice := dialWS(t, srv)
	alice.connectToken(hmacToken(t, "alice", []string{"vip:gold*"}, time.Hour))
	bob := dialTCP(t, srv)
	bob.connectToken(hmacToken(t, "bob", nil, time.Hour))

	if f := bob.replyTo(bob.send(map[string]any{"op": "subscribe", "channel": "vip:gold-1"})); f.Error == nil || f.Error.Code != "forbidden" {
		t.Fatalf("bob subscribed to vip:gold-1 without a grant: %s", f.raw)
	}
	bob.subscribe("VIP:gold-1")
	bob.subscribe("Room:1")
	alice.subscribe("vip:gold-1")
	alice.subscribe("room:1")

	alice.reply(alice.send(map[string]any{"op": "publish", "channel": "vip:gold-1", "data": "client secret"}))
	api.ok("POST", "/v1/publish", `{"channel":"vip:gold-1","data":"api secret"}`)
	alice.reply(alice.send(map[string]any{"op": "publish", "channel": "room:1", "data": "lower"}))
	bob.reply(bob.send(map[string]any{"op": "publish", "channel": "VIP:gold-1", "data": "upper"}))
	bob.reply(bob.send(map[string]any{"op": "publish", "channel": "Room:1", "data": "upper room"}))

	// Delivery is synchronous and each connection's frames keep their
	// order, so a last message on a channel of each case closes the list:
	// a message that crossed cases would come before it.
	api.ok("POST", "/v1/publish", `{"channel":"room:1","data":"end"}`)
	api.ok("POST", "/v1/publish", `{"channel":"Room:1","data":"end"}`)
	for _, want := range []string{`"client secret"`, `"api secret"`, `"lower"`, `"end"`} {
		if m := alice.expect("message"); string(m.Data) != want {
			t.Fatalf("alice: want %s, got %s", want, m.raw)
		}
	}
	for _, want := range []struct{ channel, data string }{{"VIP:gold-1", `"upper"`}, {"Room:1", `"upper room"`}, {"Room:1", `"end"`}} {
		if m := bob.expect("message"); m.Channel != want.channel || string(m.Data) != want.data {
			t.Fatalf("bob: want %s on %s, got %s", want.data, want.channel, m.raw)
		}
	}
}
