package bench

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/auth"
)

func TestMintToken(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	before := time.Now().Truncate(time.Second)
	frame, err := newCredentials(string(secret)).connectFrame("b7", "")
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	var f struct{ Op, Token, User string }
	if err := json.Unmarshal(frame, &f); err != nil || f.Op != "connect" || f.Token == "" || f.User != "" {
		t.Fatalf("token connect frame %s: %+v, %v", frame, f, err)
	}
	v, err := auth.NewHMAC(secret)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(f.Token)
	if err != nil {
		t.Fatalf("the server refuses the minted token: %v", err)
	}
	if exp := c.ExpiresAt.Time; c.Subject != "b7" || exp.Before(before.Add(time.Hour)) || exp.After(after.Add(time.Hour)) {
		t.Errorf("sub %q exp %v, want b7 and now+1h", c.Subject, exp)
	}

	frame, _ = newCredentials("").connectFrame("b7", "")
	if err := json.Unmarshal(frame, &f); err != nil || f.User != "b7" {
		t.Errorf("insecure connect frame %s", frame)
	}
}
