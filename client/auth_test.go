package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
)

const testSecret = "client-test-secret-0123456789abcdef"

func mintToken(t *testing.T, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(auth.HMACKey([]byte(testSecret)), auth.Claims{}, user, ttl)
	if err != nil {
		t.Fatalf("mint token: %v", err)
	}
	return tok
}

func TestTokenConnect(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *config.Config) { c.Insecure, c.TokenSecret = false, testSecret })
	transports(t, ts, func(t *testing.T, url string) {
		ctx := testContext(t)
		var rec recorder
		c := dial(t, url, "", append(rec.options(), client.WithToken(mintToken(t, "alice", time.Hour)))...)
		s := rec.waitState(t, "connected", func(s client.StateChange) bool { return s.State == client.StateConnected })
		if s.Info.User != "alice" {
			t.Errorf("connected as %q, want the token's subject alice", s.Info.User)
		}
		id, err := c.Send(ctx, "alice", "note to self")
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		if m := rec.waitMessages(t, 1)[0]; m.ID != id || m.From != "alice" {
			t.Errorf("got %+v, want %s from alice", m, id)
		}

		for name, opts := range map[string][]client.Option{
			"expired token":    {client.WithToken(mintToken(t, "alice", -time.Minute))},
			"garbage token":    {client.WithToken("not-a-jwt")},
			"no token":         {client.WithUser("alice")},
			"user not subject": {client.WithToken(mintToken(t, "alice", time.Hour)), client.WithUser("bob")},
		} {
			c, err := client.Dial(ctx, url, opts...)
			if err == nil {
				_ = c.Close()
				t.Errorf("%s: dial succeeded", name)
				continue
			}
			var e *client.Error
			if !errors.As(err, &e) || e.Code != client.CodeUnauthorized {
				t.Errorf("%s: got %v, want *client.Error unauthorized", name, err)
			}
		}
	})
}

func TestTokenFuncOnEveryConnect(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *config.Config) { c.Insecure, c.TokenSecret = false, testSecret })
	var mu sync.Mutex
	calls := 0
	fresh := client.WithTokenFunc(func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		// A short-lived token: only a fresh one lets a reconnect in.
		return mintToken(t, "alice", time.Minute), nil
	})
	var rec recorder
	c := dial(t, ts.wsURL(), "", append(rec.options(), fresh, fastBackoff())...)
	ts.Restart(t)
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if calls < 2 || c.State() != client.StateConnected {
			return fmt.Errorf("%d token calls, state %s", calls, c.State())
		}
		return nil
	})
	if err := c.Ping(testContext(t)); err != nil {
		t.Fatalf("ping after reconnecting with a fresh token: %v", err)
	}
}
