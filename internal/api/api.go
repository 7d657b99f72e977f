// Package api is the HTTP server API through which backends push messages,
// read presence and manage connections. Handlers return errors; one
// function renders them as JSON with a stable code.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
)

// Backend is what the API drives; the server implements it.
type Backend interface {
	// Dispatch stamps m (its time, and an id unless it has one) and
	// publishes it to whom it addresses.
	Dispatch(ctx context.Context, m *protocol.Message) error
	// DispatchBatch dispatches channel messages as Dispatch does each,
	// keeping the order of each channel's messages, and returns each
	// one's error by index.
	DispatchBatch(ctx context.Context, ms []*protocol.Message) []error
	// SendBatch dispatches direct messages as Dispatch does each, many
	// at once, and returns each one's error by index.
	SendBatch(ctx context.Context, ms []*protocol.Message) []error
	// Remember stores result under key with the request's hash unless key
	// holds a result younger than the idempotency window, and returns what
	// key holds afterwards and whether this call stored it. A key held with
	// another hash gives ErrKeyReused. Concurrent calls with one key store
	// exactly one result.
	Remember(ctx context.Context, key string, hash, result []byte) (held []byte, fresh bool, err error)
	// Forget drops key.
	Forget(ctx context.Context, key string) error
	// Stored reports whether the direct message id is in its recipient's
	// inbox; false when the server keeps no inboxes.
	Stored(ctx context.Context, id string) (bool, error)
	// Receipt returns the receipt of direct message id, ErrNotFound when
	// there is none.
	Receipt(ctx context.Context, id string) (Receipt, error)
	// History reads the history of channel.
	History(ctx context.Context, channel string, q HistoryQuery) (History, error)
	// Inbox reads user's inbox: its devices, or when device is not "",
	// at most limit messages device has not acknowledged.
	Inbox(ctx context.Context, user, device string, limit int) (Inbox, error)
	// UserPresence returns how many connections user has and its info,
	// on every node of a cluster.
	UserPresence(ctx context.Context, user string) (connections int, info json.RawMessage, err error)
	// ChannelPresence lists the users subscribed to channel, on every
	// node of a cluster.
	ChannelPresence(ctx context.Context, channel string) ([]Member, error)
	// Stats returns the totals of the server, or of every node of a
	// cluster.
	Stats(ctx context.Context) (Stats, error)
	// DisconnectUser closes every connection of user, on every node of a
	// cluster; returns how many.
	DisconnectUser(ctx context.Context, user string, d protocol.Disconnect) (int, error)
	// UnsubscribeUser removes user's connections from channel, on every
	// node of a cluster; returns how many were subscribed.
	UnsubscribeUser(ctx context.Context, user, channel string) (int, error)
}

// Stats are the totals /v1/stats answers. In a cluster they add up the
// nodes' own, so that a user connected to two nodes counts twice in
// Users; Nodes counts the live nodes (0 for a server alone).
type Stats struct {
	hub.Stats
	Nodes int `json:"nodes,omitempty"`
}

// Member is one user in a channel's presence.
type Member = protocol.Member

// Config configures the API.
type Config struct {
	// Keys are the accepted API keys. Empty with Open false refuses every
	// request; empty with Open true (insecure mode) accepts them all.
	Keys    []string
	Open    bool
	MaxBody int64
	// MaxBatch bounds the recipients of one batch send, and the messages
	// of one batch publish.
	MaxBatch int
	// MaxData bounds a message's data, as clients are bounded by their
	// frame size, so that no client receives a frame it cannot read.
	MaxData int
	// InProgressWait bounds how long a request waits for another with the
	// same Idempotency-Key (default 10s).
	InProgressWait time.Duration
}

// API serves /v1.
type API struct {
	cfg     Config
	b       Backend
	op      Operator
	log     *slog.Logger
	flights flights
}

// New returns the API handler set.
func New(cfg Config, b Backend, op Operator, log *slog.Logger) *API {
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 10000
	}
	if cfg.InProgressWait == 0 {
		cfg.InProgressWait = defaultInProgressWait
	}
	return &API{cfg: cfg, b: b, op: op, log: log}
}

// route is one endpoint of the API. docs/api.md and openapi.json
// describe each.
type route struct {
	method, path string
	h            handlerFunc
}

func (a *API) routes() []route {
	return []route{
		{"POST", "/v1/publish", a.publish},
		{"POST", "/v1/send", a.send},
		{"POST", "/v1/broadcast", a.broadcast},
		{"GET", "/v1/presence/users/{user}", a.userPresence},
		{"GET", "/v1/presence/channels/{channel}", a.channelPresence},
		{"GET", "/v1/stats", a.stats},
		{"POST", "/v1/users/{user}/disconnect", a.disconnect},
		{"POST", "/v1/users/{user}/unsubscribe", a.unsubscribe},
		{"GET", "/v1/overview", a.overview},
		{"GET", "/v1/channels", a.channels},
		{"GET", "/v1/users", a.users},
		{"GET", "/v1/users/{user}", a.user},
		{"GET", "/v1/users/{user}/inbox", a.inbox},
		{"GET", "/v1/messages/{id}", a.receipt},
		{"GET", "/v1/channels/{channel}/history", a.history},
		{"GET", "/v1/openapi.json", a.openapi},
	}
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	for _, r := range a.routes() {
		mux.Handle(r.method+" "+r.path, a.handle(r.h))
		// The same path with any other method: a JSON 405, not the
		// catch-all's 404.
		allow := r.method
		mux.Handle(r.path, a.handle(func(req *http.Request) (any, error) {
			return nil, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
				Message: req.Method + " is not allowed here; use " + allow, Allow: allow}
		}))
	}
	mux.Handle("/v1/", a.handle(func(*http.Request) (any, error) {
		return nil, errorf(http.StatusNotFound, "not_found", "no such endpoint; see /v1/openapi.json")
	}))
}

// Guard wraps h with the API's key check, for operator endpoints served
// beside the API (the profiler).
func (a *API) Guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.authenticate(r); err != nil {
			refuseUnread(w, r)
			a.render(w, r, nil, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Error is an API error: an HTTP status, a stable code and a message.
type Error struct {
	Status  int
	Code    string
	Message string
	Allow   string // for 405: the method the endpoint takes
	// RetryAfter, in seconds, is sent as Retry-After when positive.
	RetryAfter int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// fromProtocol maps a protocol validation error to a 400.
func fromProtocol(e *protocol.Error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: string(e.Code), Message: e.Message}
}

type handlerFunc func(r *http.Request) (any, error)

// handle authenticates, runs h and renders its result or error.
func (a *API) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.authenticate(r); err != nil {
			refuseUnread(w, r)
			a.render(w, r, nil, err)
			return
		}
		if r.ContentLength > a.cfg.MaxBody {
			refuseUnread(w, r)
			a.render(w, r, nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "request body is %d bytes; at most %d are accepted", r.ContentLength, a.cfg.MaxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBody)
		result, err := h(r)
		a.render(w, r, result, err)
	})
}

// refuseUnread marks a response to a request whose body is refused
// unread: the connection closes after the answer, so that the server
// neither waits for nor reads a body it will not use.
func refuseUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}

func (a *API) authenticate(r *http.Request) error {
	if len(a.cfg.Keys) == 0 {
		if a.cfg.Open {
			return nil
		}
		return errorf(http.StatusUnauthorized, "unauthorized", "no API keys are configured on this server; set api-keys")
	}
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return errorf(http.StatusUnauthorized, "unauthorized", "send the API key as Authorization: Bearer KEY")
	}
	match := 0
	for _, k := range a.cfg.Keys {
		// Compare against every key in constant time.
		match |= subtle.ConstantTimeCompare([]byte(key), []byte(k))
	}
	if match != 1 {
		return errorf(http.StatusUnauthorized, "unauthorized", "API key is not valid")
	}
	return nil
}

func (a *API) render(w http.ResponseWriter, r *http.Request, result any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		var pe *partialError
		if errors.As(err, &pe) {
			w.WriteHeader(pe.e.Status)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"error":  map[string]string{"code": pe.e.Code, "message": pe.e.Message},
				"ids":    pe.ids,
				"failed": pe.failed,
			})
			return
		}
		var ae *Error
		if !errors.As(err, &ae) {
			a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			ae = errorf(http.StatusInternalServerError, "internal", "the server failed; the request may be retried")
		}
		if ae.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		}
		if ae.Allow != "" {
			w.Header().Set("Allow", ae.Allow)
		}
		if ae.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
		}
		w.WriteHeader(ae.Status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": ae.Code, "message": ae.Message}})
		return
	}
	if rp, ok := result.(replayed); ok {
		w.Header().Set(ReplayedHeader, "true")
		result = rp.result
	}
	if result == nil {
		result = struct{}{}
	}
	_ = json.NewEncoder(w).Encode(result)
}

var errEmptyBody = errorf(http.StatusBadRequest, "invalid_body", "request body is empty; send a JSON object")

func isEmptyBody(err error) bool { return err == error(errEmptyBody) }

// decode reads a JSON body into v, refusing unknown fields and trailing
// data, with errors a caller can act on.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooLarge):
			return errorf(http.StatusRequestEntityTooLarge, "too_large", "request body exceeds %d bytes", tooLarge.Limit)
		case errors.As(err, &typeErr):
			return errorf(http.StatusBadRequest, "invalid_field", "field %q has the wrong type", typeErr.Field)
		case errors.Is(err, io.EOF):
			return errEmptyBody
		}
		return errorf(http.StatusBadRequest, "invalid_body", "request body is not valid JSON: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid_body", "request body has data after the JSON object")
	}
	return nil
}
