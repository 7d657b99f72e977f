package client_test

import (
	"crypto/tls"
	"testing"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testcert"
)

func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := testcert.SelfSigned(t)
	ts := startServer(t, func(c *config.Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	trust := client.WithTLSConfig(&tls.Config{RootCAs: pool})
	for name, url := range map[string]string{
		"wss":  "wss://" + ts.Config.HTTP + "/ws",
		"tcps": "tcps://" + ts.Config.TCP,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			var rec recorder
			alice := dial(t, url, "alice", append(rec.options(), trust)...)
			if err := alice.Subscribe(ctx, "secret"); err != nil {
				t.Fatal(err)
			}
			id, err := alice.Publish(ctx, "secret", "over tls")
			if err != nil {
				t.Fatal(err)
			}
			if m := rec.waitMessages(t, 1)[0]; m.ID != id {
				t.Errorf("got %+v, want %s", m, id)
			}
			// Without trusting the certificate the handshake fails.
			if c, err := client.Dial(ctx, url, client.WithUser("bob")); err == nil {
				_ = c.Close()
				t.Error("dial succeeded with an untrusted certificate")
			}
		})
	}
}
