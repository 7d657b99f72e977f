package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/hooks"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/session"
	"github.com/heraldpush/herald/internal/transport"
)

// authHooks asks the backend about connects (--connect-hook) and
// subscribes (--subscribe-hook), for applications that keep authorization
// in their backend rather than in tokens. A nil Caller is a hook that is
// off.
type authHooks struct {
	connect, subscribe           *hooks.Caller
	connectStats, subscribeStats authHookStats
}

// authHookStats count a hook's calls by outcome, for metrics and the
// overview.
type authHookStats struct {
	Admitted atomic.Int64 // the backend said yes
	Refused  atomic.Int64 // the backend said no
	Failed   atomic.Int64 // no usable answer in time
	Busy     atomic.Int64 // refused at once: hook-concurrency calls in flight
}

func newAuthHooks(cfg config.Config) *authHooks {
	h := &authHooks{}
	secret := []byte(cfg.HookSecret)
	// Each hook has its own bound: a flood of subscribes cannot starve
	// connects, nor the other way round.
	slots := cfg.HookConcurrency
	if cfg.ConnectHook != "" {
		h.connect = hooks.NewCaller(cfg.ConnectHook, secret, cfg.HookTimeout, slots)
	}
	if cfg.SubscribeHook != "" {
		h.subscribe = hooks.NewCaller(cfg.SubscribeHook, secret, cfg.HookTimeout, slots)
	}
	return h
}

// hookHeaders are the headers the transports keep for the connect hook:
// none without one.
func hookHeaders(cfg config.Config) []string {
	if cfg.ConnectHook == "" {
		return nil
	}
	return cfg.HookHeaders
}

// connectHookRequest is what the connect hook is asked.
type connectHookRequest struct {
	Client    string `json:"client"`
	Transport string `json:"transport"`
	Remote    string `json:"remote"`
	// User is the user id the client declared, if any: a hint that the
	// backend may check, never an identity.
	User   string          `json:"user,omitempty"`
	Device string          `json:"device,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	// Headers are the hook-headers the client's HTTP request carried.
	Headers http.Header `json:"headers,omitempty"`
}

// connectHookAnswer is the connect hook's yes.
type connectHookAnswer struct {
	User   string          `json:"user"`
	Grants []string        `json:"grants"`
	Info   json.RawMessage `json:"info"`
}

// askConnect asks the connect hook who the client on sess is. The error
// for the client is unauthorized when the backend refuses or names no
// valid user, hook_unavailable when it gives no usable answer; the
// detail is for the log.
func (h *authHooks) askConnect(ctx context.Context, sess *session.Session, req *protocol.Request) (session.Identity, *protocol.Error, error) {
	q := connectHookRequest{
		Client:    sess.ClientID(),
		Transport: string(sess.Kind()),
		Remote:    sess.Transport().RemoteAddr(),
		User:      req.User,
		Device:    req.Device,
		Data:      req.Data,
	}
	if t, ok := sess.Transport().(transport.Headered); ok {
		q.Headers = t.Headers()
	}
	var a connectHookAnswer
	st := &h.connectStats
	if perr, err := h.call(ctx, h.connect, st, q, &a, protocol.CodeUnauthorized, "the connect hook"); perr != nil {
		return session.Identity{}, perr, err
	}
	if !protocol.ValidUser(a.User) {
		st.Refused.Add(1)
		return session.Identity{}, protocol.Errorf(protocol.CodeUnauthorized, "the server's backend admitted the connection without a valid user id"),
			errors.New("connect hook answered user " + jsonQuote(a.User) + ", not a valid user id")
	}
	if len(a.Info) == 0 || string(a.Info) == "null" {
		a.Info = nil
	}
	st.Admitted.Add(1)
	return session.Identity{User: a.User, Grants: a.Grants, Info: a.Info}, nil, nil
}

// subscribeHookRequest is what the subscribe hook is asked.
type subscribeHookRequest struct {
	Client  string `json:"client"`
	User    string `json:"user"`
	Channel string `json:"channel"`
}

// askSubscribe asks the subscribe hook whether sess may subscribe to
// channel: nil for yes, forbidden for no, hook_unavailable when it gives
// no usable answer.
func (h *authHooks) askSubscribe(ctx context.Context, sess *session.Session, channel string) *protocol.Error {
	q := subscribeHookRequest{Client: sess.ClientID(), User: sess.User(), Channel: channel}
	var a struct{}
	perr, _ := h.call(ctx, h.subscribe, &h.subscribeStats, q, &a, protocol.CodeForbidden, "the subscribe hook")
	if perr == nil {
		h.subscribeStats.Admitted.Add(1)
	}
	return perr
}

// call makes one hook call and turns its failure into the client's error:
// a refusal into code no, with the backend's message when it gave one;
// anything else into hook_unavailable.
func (h *authHooks) call(ctx context.Context, c *hooks.Caller, st *authHookStats, q, a any, no protocol.Code, name string) (*protocol.Error, error) {
	err := c.Call(ctx, q, a)
	var r *hooks.Refusal
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &r):
		st.Refused.Add(1)
		msg := "refused by the server's backend"
		if r.Message != "" {
			msg += ": " + r.Message
		}
		return protocol.Errorf(no, "%s", msg), err
	case errors.Is(err, hooks.ErrBusy):
		st.Busy.Add(1)
		return protocol.Errorf(protocol.CodeHookUnavailable, "the server's backend is busy with other clients; retry later"), err
	}
	st.Failed.Add(1)
	return protocol.Errorf(protocol.CodeHookUnavailable, "the server's backend gave no usable answer to %s in time; retry later", name), err
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
