package hooks

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type answer struct {
	User string `json:"user"`
}

// callBackend serves a hook whose answer handle writes, after checking
// the signature of each request.
func callBackend(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify(secret, r.Header.Get(SignatureHeader), body, time.Now(), time.Minute); err != nil {
			t.Errorf("signature %q: %v", r.Header.Get(SignatureHeader), err)
		}
		if string(body) != `{"client":"c1"}` {
			t.Errorf("body %s", body)
		}
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func call(c *Caller) (answer, error) {
	var a answer
	err := c.Call(context.Background(), map[string]string{"client": "c1"}, &a)
	return a, err
}

func TestCallAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request)
		user   string
		refuse *Refusal // the refusal wanted
		fails  string   // the failure wanted, when not a refusal
	}{
		{name: "admits", user: "alice", handle: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"user":"alice"}`)
		}},
		{name: "refuses with an error object", refuse: &Refusal{Code: "banned", Message: "go away"}, handle: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"error":{"code":"banned","message":"go away"}}`)
		}},
		{name: "refuses with 403", refuse: &Refusal{}, handle: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `not json`)
		}},
		{name: "refuses with 403 and a message", refuse: &Refusal{Code: "x", Message: "no"}, handle: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error":{"code":"x","message":"no"}}`)
		}},
		{name: "fails", fails: "backend answered 500", handle: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
		}},
		{name: "garbage", fails: "not a JSON object", handle: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `<html>hello</html>`)
		}},
		{name: "wrong shape", fails: "does not fit", handle: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"user":42}`)
		}},
		{name: "huge", fails: "answer over 65536 bytes", handle: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"user":"`+strings.Repeat("a", MaxAnswerBytes)+`"}`)
		}},
		{name: "redirect", fails: "backend answered 307", handle: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				t.Error("the redirect was followed")
			}
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := callBackend(t, tc.handle)
			a, err := call(NewCaller(srv.URL, secret, 5*time.Second, 4))
			var r *Refusal
			switch {
			case tc.refuse != nil:
				if !errors.As(err, &r) || *r != *tc.refuse {
					t.Fatalf("got %v, want refusal %+v", err, tc.refuse)
				}
			case tc.fails != "":
				if err == nil || errors.As(err, &r) || !strings.Contains(err.Error(), tc.fails) {
					t.Fatalf("got %v, want a failure saying %q", err, tc.fails)
				}
			case err != nil || a.User != tc.user:
				t.Fatalf("got %+v, %v; want user %q", a, err, tc.user)
			}
		})
	}
}

// TestCallSlowBody: a backend that sends its headers at once and then
// trickles its body is cut off at the timeout, like one that says
// nothing.
func TestCallSlowBody(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	srv := callBackend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"user":`)
		w.(http.Flusher).Flush()
		select {
		case <-done:
		case <-r.Context().Done():
		}
	})
	defer close(done)
	start := time.Now()
	_, err := call(NewCaller(srv.URL, secret, 200*time.Millisecond, 4))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s with a 200ms timeout", d)
	}
}

// TestCallBusy: past the concurrency bound a call fails at once.
func TestCallBusy(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	srv := callBackend(t, func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = io.WriteString(w, `{"user":"bob"}`)
	})
	c := NewCaller(srv.URL, secret, 5*time.Second, 2)
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := call(c); errs <- err }()
	}
	<-entered
	<-entered
	start := time.Now()
	if _, err := call(c); !errors.Is(err, ErrBusy) {
		t.Errorf("third call: got %v, want ErrBusy", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a busy call took %s", d)
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if _, err := call(c); err != nil {
		t.Errorf("after the others returned: %v", err)
	}
}
