package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestMatchChannel(t *testing.T) {
	cases := []struct {
		patterns []string
		channel  string
		want     bool
	}{
		{[]string{"room:*"}, "room:42", true},
		{[]string{"room:*"}, "room:a/b", false}, // * stops at /
		{[]string{"room:4?"}, "room:42", true},
		{[]string{"room:4?"}, "room:420", false},
		{[]string{"news:sport", "vip:*"}, "vip:gold", true},
		{nil, "room:1", false},
		{[]string{"[bad"}, "[bad", false}, // a malformed pattern matches nothing
	}
	for _, c := range cases {
		if got := MatchChannel(c.patterns, c.channel); got != c.want {
			t.Errorf("MatchChannel(%q, %q) = %v", c.patterns, c.channel, got)
		}
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	if _, err := NewHMAC(secret[:31]); err == nil {
		t.Fatal("a 31-byte secret was accepted")
	}
	v, err := NewHMAC(secret)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Mint(HMACKey(secret), Claims{Channels: []string{"vip:*"}, Info: []byte(`{"n":1}`)}, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil || c.Subject != "alice" || len(c.Channels) != 1 || string(c.Info) != `{"n":1}` {
		t.Fatalf("verify: %v %+v", err, c)
	}
	if _, err := v.Verify(""); !errors.Is(err, ErrMissing) {
		t.Errorf("empty token: %v", err)
	}
	expired, _ := Mint(HMACKey(secret), Claims{}, "alice", -time.Minute)
	if _, err := v.Verify(expired); !errors.Is(err, ErrExpired) {
		t.Errorf("expired token: %v", err)
	}
	other, _ := Mint(HMACKey([]byte("another-secret-another-secret-32b")), Claims{}, "alice", time.Hour)
	if _, err := v.Verify(other); !errors.Is(err, ErrSignature) {
		t.Errorf("foreign signature: %v", err)
	}
	if _, err := v.Verify("not.a.token"); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed token: %v", err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es256, _ := Mint(SigningKey{jwt.SigningMethodES256, ecKey}, Claims{}, "alice", time.Hour)
	if _, err := v.Verify(es256); !errors.Is(err, ErrAlgorithm) || !strings.Contains(err.Error(), "ES256, not HS256") {
		t.Errorf("ES256 token to an HS256 verifier: %v", err)
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if _, err := v.Verify(none); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("alg none: %v", err)
	}
	noSub, _ := Mint(HMACKey(secret), Claims{}, "", time.Hour)
	if _, err := v.Verify(noSub); !errors.Is(err, ErrInvalid) {
		t.Errorf("no subject: %v", err)
	}
}

// A verifier with an audience or an issuer refuses tokens that do not
// carry it; one without accepts tokens with or without.
func TestAudienceAndIssuer(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	key := HMACKey(secret)
	mint := func(aud []string, iss string) string {
		t.Helper()
		tok, err := Mint(key, Claims{RegisteredClaims: jwt.RegisteredClaims{Audience: aud, Issuer: iss}}, "alice", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cases := []struct {
		name       string
		opts       []Option
		aud        []string
		iss        string
		wantErr    error // nil: accepted
		wantClaims func(*Claims) bool
	}{
		{"no checks, no claims", nil, nil, "", nil, nil},
		{"no checks, any claims", nil, []string{"elsewhere"}, "someone", nil, nil},
		{"right audience", []Option{WithAudience("herald")}, []string{"herald"}, "", nil,
			func(c *Claims) bool { return len(c.Audience) == 1 && c.Audience[0] == "herald" }},
		{"audience among several", []Option{WithAudience("herald")}, []string{"billing", "herald"}, "", nil, nil},
		{"wrong audience", []Option{WithAudience("herald")}, []string{"billing"}, "", ErrAudience, nil},
		{"missing audience", []Option{WithAudience("herald")}, nil, "", ErrAudience, nil},
		{"audience differs in case", []Option{WithAudience("herald")}, []string{"Herald"}, "", ErrAudience, nil},
		{"right issuer", []Option{WithIssuer("https://auth.example")}, nil, "https://auth.example", nil,
			func(c *Claims) bool { return c.Issuer == "https://auth.example" }},
		{"wrong issuer", []Option{WithIssuer("https://auth.example")}, nil, "https://evil.example", ErrIssuer, nil},
		{"missing issuer", []Option{WithIssuer("https://auth.example")}, nil, "", ErrIssuer, nil},
		{"both right", []Option{WithAudience("herald"), WithIssuer("auth")}, []string{"herald"}, "auth", nil, nil},
		{"right audience, wrong issuer", []Option{WithAudience("herald"), WithIssuer("auth")}, []string{"herald"}, "other", ErrIssuer, nil},
		{"empty settings check nothing", []Option{WithAudience(""), WithIssuer("")}, nil, "", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewHMAC(secret, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(mint(tc.aud, tc.iss))
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			case tc.wantClaims != nil && !tc.wantClaims(c):
				t.Fatalf("claims %+v", c)
			}
		})
	}
}
