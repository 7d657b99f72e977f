package auth

import (
	"errors"
	"testing"
	"time"
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
	if _, err := v.Verify(other); !errors.Is(err, ErrInvalid) {
		t.Errorf("foreign signature: %v", err)
	}
	noSub, _ := Mint(HMACKey(secret), Claims{}, "", time.Hour)
	if _, err := v.Verify(noSub); !errors.Is(err, ErrInvalid) {
		t.Errorf("no subject: %v", err)
	}
}
