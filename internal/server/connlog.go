package server

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
)

// connectLogPerSecond bounds the info lines about connects, and separately
// those about refused connects: a burst of thousands of clients, or a
// client retrying a bad token in a loop, costs at most this many lines a
// second each, and the next line logged says how many were left out.
const connectLogPerSecond = 10

// sampler lets through at most perSecond log lines in each second of the
// clock and counts the ones it holds back. Holding one back costs a clock
// read and two atomic additions, and allocates nothing.
type sampler struct {
	perSecond int64
	window    atomic.Int64 // the Unix second being counted
	n         atomic.Int64 // lines let through in it
	dropped   atomic.Int64 // lines held back since the last one let through
}

func newSampler(perSecond int64) *sampler { return &sampler{perSecond: perSecond} }

// allow reports whether a line may be logged at the Unix second now and,
// when it may, how many lines were held back before it. Goroutines that
// meet at the turn of a second may let a few lines more through; the
// bound is loose by that much, never unbounded.
func (s *sampler) allow(now int64) (ok bool, dropped int64) {
	if w := s.window.Load(); w != now && s.window.CompareAndSwap(w, now) {
		s.n.Store(0)
	}
	if s.n.Add(1) > s.perSecond {
		s.dropped.Add(1)
		return false, 0
	}
	return true, s.dropped.Swap(0)
}

// connLog writes the info lines about connects, sampled.
type connLog struct {
	log      *slog.Logger
	key      string // the name of the key tokens are verified with
	connects *sampler
	refusals *sampler
}

func newConnLog(log *slog.Logger, key string) connLog {
	return connLog{log: log, key: key, connects: newSampler(connectLogPerSecond), refusals: newSampler(connectLogPerSecond)}
}

// take reports whether a line of sm's kind is logged now, and the count of
// lines held back before it. Nothing is built for a line not logged.
func (l connLog) take(sm *sampler) (bool, int64) {
	if !l.log.Enabled(context.Background(), slog.LevelInfo) {
		return false, 0
	}
	return sm.allow(time.Now().Unix())
}

// connected logs a connection that connected as a user.
func (l connLog) connected(s *session.Session) {
	ok, dropped := l.take(l.connects)
	if !ok {
		return
	}
	attrs := append(sessionAttrs(s), slog.String("user", s.User()))
	if dropped > 0 {
		attrs = append(attrs, slog.Int64("suppressed", dropped))
	}
	l.log.LogAttrs(context.Background(), slog.LevelInfo, "client connected", attrs...)
}

// refused logs a connect the server refused with perr, for the declared
// user if any; detail, when not nil, is what the operator alone is told of
// a token that did not verify, and the log names the key it was checked
// against.
func (l connLog) refused(s *session.Session, user string, perr *protocol.Error, detail error) {
	ok, dropped := l.take(l.refusals)
	if !ok {
		return
	}
	attrs := sessionAttrs(s)
	if user != "" {
		attrs = append(attrs, slog.String("user", user))
	}
	attrs = append(attrs, slog.String("code", string(perr.Code)), slog.String("reason", perr.Message))
	if detail != nil {
		attrs = append(attrs, slog.Any("err", detail), slog.String("key", l.key))
	}
	if dropped > 0 {
		attrs = append(attrs, slog.Int64("suppressed", dropped))
	}
	l.log.LogAttrs(context.Background(), slog.LevelInfo, "connect refused", attrs...)
}

func sessionAttrs(s *session.Session) []slog.Attr {
	tr := string(s.Kind())
	if s.Kind() == session.KindWebSocket {
		tr = "ws"
	}
	return []slog.Attr{
		slog.String("client", s.ClientID()),
		slog.String("remote", s.Transport().RemoteAddr()),
		slog.String("transport", tr),
	}
}
