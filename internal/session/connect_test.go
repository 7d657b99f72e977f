package session

import (
	"encoding/json"
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session/sessiontest"
)

// replyCode returns the error code of a reply frame ("" for success).
func replyCode(t *testing.T, raw string) (typ, code string, disconnect int) {
	t.Helper()
	var f struct {
		Type  string `json:"type"`
		Code  int    `json:"code"`
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		t.Fatalf("bad frame %q: %v", raw, err)
	}
	if f.Error != nil {
		code = f.Error.Code
	}
	return f.Type, code, f.Code
}

// A failed connect is final, whichever way it fails: the error reply, the
// 3502 disconnect, and nothing after it is handled, not even a connect
// that would succeed.
func TestFailedConnectIsFinal(t *testing.T) {
	cases := []struct {
		name, frame, code string
		authErr           *protocol.Error
	}{
		{"invalid user", `{"id":1,"op":"connect","user":"bad user"}`, "invalid_user", nil},
		{"user wrong type", `{"id":1,"op":"connect","user":5}`, "invalid_field", nil},
		{"token wrong type", `{"id":1,"op":"connect","token":{}}`, "invalid_field", nil},
		{"refused", `{"id":1,"op":"connect","user":"u"}`, "unauthorized", protocol.Errorf(protocol.CodeUnauthorized, "no")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, n := newScripted(t)
			n.authErr = tc.authErr
			tr := &sessiontest.Recorder{}
			s := m.Open(tr)
			s.HandleFrame([]byte(tc.frame))
			n.authErr = nil
			s.HandleFrame([]byte(`{"id":2,"op":"connect","user":"good"}`))
			s.HandleFrame([]byte(`{"id":3,"op":"ping"}`))
			waitFor(t, func() bool { return tr.Closed() != nil })

			got := tr.Frames()
			if len(got) != 2 {
				t.Fatalf("want the error reply and the disconnect, got %q", got)
			}
			if typ, code, _ := replyCode(t, got[0]); typ != "reply" || code != tc.code {
				t.Fatalf("first frame %s, want a %s reply", got[0], tc.code)
			}
			if typ, _, d := replyCode(t, got[1]); typ != "disconnect" || d != protocol.DisconnectUnauthorized.Code {
				t.Fatalf("second frame %s, want disconnect 3502", got[1])
			}
			if d := tr.Closed(); *d != protocol.DisconnectUnauthorized {
				t.Fatalf("closed with %+v", d)
			}
			n.mu.Lock()
			registered := n.registered
			n.mu.Unlock()
			if registered != 0 {
				t.Fatalf("a connect after a failed one registered the session")
			}
		})
	}
}

// Frames other than connect before a connect keep getting not_connected
// and leave the connection pending.
func TestPendingNonConnectIsAStrike(t *testing.T) {
	m, _ := newScripted(t)
	tr := &sessiontest.Recorder{}
	s := m.Open(tr)
	s.HandleFrame([]byte(`{"id":1,"op":"subscribe","channel":"c"}`))
	s.HandleFrame([]byte(`{"id":2,"op":"subscribe"}`))
	s.HandleFrame([]byte(`{"id":3,"op":"connect","user":"u"}`))
	waitFor(t, func() bool { return len(tr.Frames()) == 3 })
	got := tr.Frames()
	for i, want := range []string{"not_connected", "missing_field", ""} {
		if typ, code, _ := replyCode(t, got[i]); typ != "reply" || code != want {
			t.Fatalf("frame %d: %s, want reply %q", i, got[i], want)
		}
	}
	if tr.Closed() != nil {
		t.Fatalf("closed: %+v", tr.Closed())
	}
}
