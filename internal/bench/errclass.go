package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
)

// replyError is an error reply from the server to a client frame.
type replyError struct {
	Code, Message string
}

func (e *replyError) Error() string { return e.Code + ": " + e.Message }

// disconnectError is a disconnect frame received during a handshake.
type disconnectError struct {
	Code   int
	Reason string
}

func (e *disconnectError) Error() string { return fmt.Sprintf("disconnected: %d %s", e.Code, e.Reason) }

// upgradeError is a WebSocket upgrade the server refused with an HTTP
// answer (a rate limit, a forbidden origin).
type upgradeError struct {
	Status        int
	Code, Message string
}

func (e *upgradeError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("websocket upgrade refused: HTTP %d", e.Status)
	}
	return fmt.Sprintf("websocket upgrade refused: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// classify names the cause of err in a few words, so that errors of one
// kind are counted together: a server error code, or what the network
// said.
func classify(err error) string {
	var (
		re  *replyError
		de  *disconnectError
		ue  *upgradeError
		ae  *APIError
		ne  net.Error
		dns *net.DNSError
	)
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &re):
		return re.Code
	case errors.As(err, &de):
		return "disconnect " + de.Reason
	case errors.As(err, &ue):
		return codeOrStatus(ue.Code, ue.Status)
	case errors.As(err, &ae):
		return codeOrStatus(ae.Code, ae.Status)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return "no free local port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(err.Error(), "unexpected EOF"):
		return "closed by server"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &dns):
		return "name resolution"
	}
	return "other"
}

func codeOrStatus(code string, status int) string {
	if code != "" {
		return code
	}
	return fmt.Sprintf("HTTP %d", status)
}

// limitHint is added to a failed run's reasons when the server refused load
// with one of its rate limits: the usual cause is a server started with
// production limits.
const limitHint = "the server rate-limited the benchmark: start it with its limits lifted (see herald bench --help)"

// rateLimited reports whether any counted error kind is a rate limit.
func rateLimited(kinds map[string]int64) bool {
	for k := range kinds {
		if strings.HasSuffix(k, "rate_limited") || strings.HasSuffix(k, "HTTP 429") {
			return true
		}
	}
	return false
}
