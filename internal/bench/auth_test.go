package bench

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestMintToken(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Now()
	s, err := mintToken(secret, "b7", now)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Parse(s, func(*jwt.Token) (any, error) { return secret, nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Fatalf("parse minted token: %v", err)
	}
	sub, _ := tok.Claims.GetSubject()
	exp, _ := tok.Claims.GetExpirationTime()
	if sub != "b7" || exp == nil || exp.Unix() != now.Add(time.Hour).Unix() {
		t.Errorf("sub %q exp %v, want b7 and now+1h", sub, exp)
	}

	frame, err := newCredentials(string(secret)).connectFrame("b7")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Op, Token, User string }
	if err := json.Unmarshal(frame, &f); err != nil || f.Op != "connect" || f.Token == "" || f.User != "" {
		t.Errorf("token connect frame %s: %+v, %v", frame, f, err)
	}
	frame, _ = newCredentials("").connectFrame("b7")
	if err := json.Unmarshal(frame, &f); err != nil || f.User != "b7" {
		t.Errorf("insecure connect frame %s", frame)
	}
}
