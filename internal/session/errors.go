package session

import "errors"

// ErrOverflow is returned by Transport.Write when the connection's outbound
// buffer would exceed its bound: the client is not reading fast enough.
var ErrOverflow = errors.New("outbound buffer overflow")

// IsOverflow reports whether err is, or wraps, ErrOverflow.
func IsOverflow(err error) bool { return errors.Is(err, ErrOverflow) }
