package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/auth"
)

// An insecure server loads or creates the secret of its data directory as
// a secure one does, so tokens minted there verify; declared user ids
// still work beside them.
func TestInsecureServerVerifiesTokens(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	srv, logs := startServerLogged(t, cfg)
	path := filepath.Join(cfg.DataDir, auth.SecretFile)
	waitLog(t, logs, `msg="verifying connection tokens"`, `key="HS256 secret file `+path+`"`)
	secret, err := auth.LoadOrCreateSecret(cfg.DataDir)
	if err != nil || secret.Created {
		t.Fatalf("the server did not create its secret: %v created=%v", err, secret.Created)
	}
	tok, err := auth.Mint(auth.HMACKey(secret.Key), auth.Claims{}, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := dialWS(t, srv)
	f := c.connectToken(tok)
	var r struct{ User string }
	if f.Error != nil || json.Unmarshal(f.Result, &r) != nil || r.User != "alice" {
		t.Fatalf("token from the data directory's secret: %s", f.raw)
	}
	dialTCP(t, srv).connect("bob")
}

// A token that does not verify gets unauthorized with a message saying
// what to check, and neither the key nor where it is kept.
func TestTokenRefusalSaysWhatToCheck(t *testing.T) {
	t.Parallel()
	cfg := secureConfig(t)
	srv := startServer(t, cfg)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es256, _ := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(ecKey)
	otherSecret, _ := auth.Mint(auth.HMACKey([]byte("another-secret-another-secret-32b")), auth.Claims{}, "alice", time.Hour)
	for _, tc := range []struct{ name, token, want string }{
		{"another secret", otherSecret, "does not match this server's key"},
		{"another algorithm", es256, "signed with another algorithm than the HS256 this server accepts"},
		{"not a JWT", "not-a-token", "token is malformed"},
	} {
		c := dialTCP(t, srv)
		f := c.connectToken(tc.token)
		refused(t, c, f)
		if !strings.Contains(f.Error.Message, tc.want) {
			t.Errorf("%s: %q, want it to say %q", tc.name, f.Error.Message, tc.want)
		}
		if strings.Contains(f.Error.Message, testSecret) || strings.Contains(f.Error.Message, cfg.DataDir) {
			t.Errorf("%s: the message shows the key or where it is kept: %q", tc.name, f.Error.Message)
		}
	}
	c := dialTCP(t, srv)
	f := c.replyTo(c.send(map[string]any{"op": "connect", "user": "bob"}))
	refused(t, c, f)
	if !strings.Contains(f.Error.Message, "only a server in insecure mode takes a declared user id") {
		t.Errorf("a declared user on a secure server: %q", f.Error.Message)
	}
}

// The secret a data directory holds is the one secret of that directory:
// a later server on it, secure or not, uses it rather than making one.
func TestOneSecretPerDataDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig()
	cfg.DataDir = dir
	if err := startServer(t, cfg).Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(dir, auth.SecretFile))
	if err != nil {
		t.Fatalf("the insecure server made no secret: %v", err)
	}
	cfg = secureConfig(t)
	cfg.DataDir, cfg.TokenSecret = dir, ""
	startServer(t, cfg)
	second, err := os.ReadFile(filepath.Join(dir, auth.SecretFile))
	if err != nil || string(first) != string(second) {
		t.Fatalf("the secure server replaced the secret: %v", err)
	}
}
