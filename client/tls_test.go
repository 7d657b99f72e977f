package client_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/config"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "herald test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	ts := startServer(t, func(c *config.Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	trust := client.WithTLSConfig(&tls.Config{RootCAs: pool})
	for name, url := range map[string]string{
		"wss":  "wss://" + ts.cfg.HTTP + "/ws",
		"tcps": "tcps://" + ts.cfg.TCP,
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
