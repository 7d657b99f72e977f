package bench

import "errors"

// Sentinel errors; compare with errors.Is.
var (
	// ErrInvalidOptions wraps every problem found in Options.
	ErrInvalidOptions = errors.New("invalid options")
	// ErrNotLoopback refuses a target outside 127.0.0.0/8 (or ::1) unless
	// Options.AllowRemote is set: a load generator must not hit a server by
	// accident.
	ErrNotLoopback = errors.New("target is not a loopback address")
	// ErrFileLimit means the run needs more file descriptors than the
	// process may open.
	ErrFileLimit = errors.New("open-file limit too low")
	// ErrHandshake is a connect or subscribe that the server refused or
	// that did not complete.
	ErrHandshake = errors.New("handshake failed")
	// ErrAPI is a server API call that failed.
	ErrAPI = errors.New("server API call failed")
	// ErrProc means /proc could not be read for the server process.
	ErrProc = errors.New("read server process stats")

	// ErrIncomplete is the verdict of a run that did not do all it was
	// asked: fewer connections than requested, deliveries that do not match,
	// failed publishes or churn cycles, or a timeout.
	ErrIncomplete = errors.New("benchmark incomplete")
)
