package server

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// selfSigned writes a certificate for 127.0.0.1 and returns the file
// paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "herald test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return writePEM(t, "CERTIFICATE", der), writePEM(t, "EC PRIVATE KEY", keyDER), pool
}

// With a certificate, WebSocket (wss), raw TCP and the server API all run
// over TLS, and messages cross between them.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg := secureConfig(t)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	srv := startServer(t, cfg)
	clientTLS := &tls.Config{RootCAs: pool}

	d := websocket.Dialer{TLSClientConfig: clientTLS}
	ws, _, err := d.Dial("wss://"+srv.HTTPAddr().String()+"/ws", nil)
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	defer ws.Close()
	alice := &conn{t: t, ws: ws}
	alice.connectToken(hmacToken(t, "alice", nil, time.Hour))

	tc, err := tls.Dial("tcp", srv.TCPAddr().String(), clientTLS)
	if err != nil {
		t.Fatalf("tls tcp: %v", err)
	}
	defer tc.Close()
	bob := &conn{t: t, tcp: tc, rd: bufio.NewReader(tc)}
	bob.connectToken(hmacToken(t, "bob", nil, time.Hour))

	bob.reply(bob.send(map[string]any{"op": "send", "to": "alice", "data": "over tls"}))
	if m := alice.expect("message"); string(m.Data) != `"over tls"` {
		t.Fatalf("got %s", m.raw)
	}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	req, _ := http.NewRequest("POST", "https://"+srv.HTTPAddr().String()+"/v1/send", strings.NewReader(`{"to":"bob","data":"from the api"}`))
	req.Header.Set("Authorization", "Bearer new-key")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("https api: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("https api: %d", resp.StatusCode)
	}
	if m := bob.expect("message"); string(m.Data) != `"from the api"` {
		t.Fatalf("got %s", m.raw)
	}

	// Plain TCP to the TLS listener gets nowhere and does no harm.
	plain, err := net.Dial("tcp", srv.TCPAddr().String())
	if err == nil {
		_, _ = plain.Write([]byte(`{"op":"connect","user":"x"}` + "\n"))
		_ = plain.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		n, _ := plain.Read(buf)
		if strings.Contains(string(buf[:n]), "reply") {
			t.Fatal("plaintext spoken on the TLS listener")
		}
		plain.Close()
	}
}
