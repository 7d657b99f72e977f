package transport

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
)

// ListenError is a listener that could not be opened.
type ListenError struct {
	Listener string // "http" or "tcp"
	Addr     string
	Err      error
}

func (e *ListenError) Error() string {
	return "open the " + e.Listener + " listener on " + e.Addr + ": " + e.Err.Error()
}

func (e *ListenError) Unwrap() error { return e.Err }

// errorBody is the JSON body of every HTTP error Herald sends:
// {"error":{"code":...,"message":...}}.
func errorBody(code, message string) []byte {
	b, _ := json.Marshal(map[string]protocol.Error{"error": {Code: protocol.Code(code), Message: message}})
	return append(b, '\n')
}

// WriteError answers an HTTP request with a JSON error.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(code, message))
}

// refuseRaw answers a connection that net/http no longer serves (hijacked,
// or refused before its first request is read) with a JSON error, and
// closes it.
func refuseRaw(c net.Conn, status int, code, message string, extra ...string) {
	body := errorBody(code, message)
	head := "HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n" +
		"Content-Type: application/json\r\nConnection: close\r\n"
	for i := 0; i+1 < len(extra); i += 2 {
		head += extra[i] + ": " + extra[i+1] + "\r\n"
	}
	head += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(append([]byte(head), body...))
	_ = c.Close()
}
