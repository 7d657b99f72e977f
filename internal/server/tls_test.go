package server

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/heraldpush/herald/internal/testcert"
)

// With a certificate, WebSocket (wss), raw TCP and the server API all run
// over TLS, and messages cross between them.
func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := testcert.SelfSigned(t)
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
	req.Header.Set("Authorization", "Bearer "+testNewKey)
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
