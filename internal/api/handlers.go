package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/heraldpush/herald/internal/protocol"
)

// data validates and compacts a message body's data field. Data reaches
// clients as it is, so it must be what a client frame may carry: JSON in
// valid UTF-8. A browser fails a WebSocket on the first text frame that is
// not UTF-8, so one such message would disconnect every subscriber.
func (a *API) data(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errorf(http.StatusBadRequest, "missing_field", "field \"data\" is required")
	}
	if !utf8.Valid(raw) {
		return nil, errorf(http.StatusBadRequest, "invalid_field", "field \"data\" is not valid UTF-8, as JSON text must be; encode binary content (base64, say)")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_field", "field \"data\" is not valid JSON")
	}
	if a.cfg.MaxData > 0 && buf.Len() > a.cfg.MaxData {
		return nil, errorf(http.StatusBadRequest, "too_large", "field \"data\" is %d bytes; a message may carry at most %d", buf.Len(), a.cfg.MaxData)
	}
	return buf.Bytes(), nil
}

type idResult struct {
	ID string `json:"id"`
}

func oneID(ids []string) any { return idResult{ids[0]} }

func manyIDs(ids []string) any {
	return struct {
		IDs []string `json:"ids"`
	}{ids}
}

// storedConcurrency bounds the messages of one batch send a retry asks
// the store about at once.
const storedConcurrency = 128

func (a *API) publish(r *http.Request) (any, error) {
	var body struct {
		Channel  *string          `json:"channel"`
		Data     json.RawMessage  `json:"data"`
		Messages []channelMessage `json:"messages"`
		except
	}
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	if body.Messages != nil {
		if body.Channel != nil || body.Data != nil {
			return nil, errorf(http.StatusBadRequest, "invalid_field", "give \"channel\" and \"data\" (one message) or \"messages\" (a batch), not both")
		}
		return a.publishBatch(r, body.Messages, body.except)
	}
	ch, err := checkChannel(body.Channel)
	if err != nil {
		return nil, err
	}
	if err := body.check(); err != nil {
		return nil, err
	}
	d, err := a.data(body.Data)
	if err != nil {
		return nil, err
	}
	return a.do(r, push{
		n: 1,
		canonical: func() (any, error) {
			cd, err := canonicalJSON(d)
			return body.canonical(map[string]any{"channel": ch, "data": cd}), err
		},
		act: func(ctx context.Context, ids []string, _ bool) error {
			return a.b.Dispatch(ctx, body.apply(&protocol.Message{ID: ids[0], Kind: protocol.KindChannel, Channel: ch, Data: d}))
		},
		answer: oneID,
	})
}

func (a *API) send(r *http.Request) (any, error) {
	var body struct {
		To    *string         `json:"to"`
		Users []string        `json:"users"`
		Data  json.RawMessage `json:"data"`
		except
	}
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	// As in the protocol: absent (or null) is missing, present but empty
	// is invalid.
	switch {
	case body.To == nil && body.Users == nil:
		return nil, errorf(http.StatusBadRequest, "missing_field", "give \"to\" (one user) or \"users\" (a batch)")
	case body.To != nil && body.Users != nil:
		return nil, errorf(http.StatusBadRequest, "invalid_field", "give \"to\" or \"users\", not both")
	case body.Users != nil && len(body.Users) == 0:
		return nil, errorf(http.StatusBadRequest, "invalid_field", "field \"users\" is empty; name at least one user")
	case len(body.Users) > a.cfg.MaxBatch:
		return nil, errorf(http.StatusBadRequest, "too_large", "a batch may name at most %d users, got %d", a.cfg.MaxBatch, len(body.Users))
	}
	users := body.Users
	if body.To != nil {
		users = []string{*body.To}
	}
	for _, u := range users {
		if !protocol.ValidUser(u) {
			return nil, invalidUser(u)
		}
	}
	if err := body.check(); err != nil {
		return nil, err
	}
	d, err := a.data(body.Data)
	if err != nil {
		return nil, err
	}
	answer := oneID
	if body.To == nil {
		answer = manyIDs
	}
	return a.do(r, push{
		n: len(users),
		canonical: func() (any, error) {
			cd, err := canonicalJSON(d)
			return body.canonical(map[string]any{"to": body.To, "users": body.Users, "data": cd}), err
		},
		act: func(ctx context.Context, ids []string, resume bool) error {
			return a.sendAll(ctx, users, d, body.except, ids, resume)
		},
		answer: answer,
	})
}

// sendAll sends data to each of users, with the id of the same index,
// many at once. With resume, a message the store holds already is not
// sent again. When some are stored and some not, the error is a
// partialError naming them.
func (a *API) sendAll(ctx context.Context, users []string, data json.RawMessage, ex except, ids []string, resume bool) error {
	errs := make([]error, len(users))
	// On a retry, what the store holds already is not sent again.
	skip := make([]bool, len(users))
	if resume {
		var g errgroup.Group
		g.SetLimit(storedConcurrency)
		for i := range users {
			g.Go(func() error {
				stored, err := a.b.Stored(ctx, ids[i])
				errs[i], skip[i] = err, err != nil || stored
				return nil
			})
		}
		_ = g.Wait()
	}
	var idx []int
	var ms []*protocol.Message
	for i, u := range users {
		if !skip[i] {
			idx = append(idx, i)
			ms = append(ms, ex.apply(&protocol.Message{ID: ids[i], Kind: protocol.KindDirect, To: u, Data: data}))
		}
	}
	switch len(ms) {
	case 0:
	case 1:
		errs[idx[0]] = a.b.Dispatch(ctx, ms[0])
	default:
		for j, err := range a.b.SendBatch(ctx, ms) {
			errs[idx[j]] = err
		}
	}
	return partial(errs, ids, users, "names their users: retry those (with the same "+IdempotencyKeyHeader+", the retry sends only them)")
}

// partial is the error of a push of many messages whose errors are errs:
// nil when all were stored, the first error when none was, and otherwise
// a partialError with the ids of those stored and the names (of their
// recipients, say) of those not stored; advice says what failed names and
// how to retry.
func partial(errs []error, ids, names []string, advice string) error {
	var first error
	stored := make([]string, len(ids))
	var failed []string
	for i, err := range errs {
		if err == nil {
			stored[i] = ids[i]
			continue
		}
		if first == nil {
			first = err
		}
		failed = append(failed, names[i])
	}
	switch {
	case first == nil:
		return nil
	case len(failed) == len(errs):
		return first
	}
	return &partialError{
		e: errorf(http.StatusServiceUnavailable, "partially_sent",
			"%d of %d messages could not be stored, so they were not sent; \"ids\" has \"\" for them and \"failed\" %s",
			len(failed), len(errs), advice),
		ids:    stored,
		failed: failed,
	}
}

func (a *API) broadcast(r *http.Request) (any, error) {
	var body struct {
		Data json.RawMessage `json:"data"`
		except
	}
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	if err := body.check(); err != nil {
		return nil, err
	}
	d, err := a.data(body.Data)
	if err != nil {
		return nil, err
	}
	return a.do(r, push{
		n: 1,
		canonical: func() (any, error) {
			cd, err := canonicalJSON(d)
			return body.canonical(map[string]any{"data": cd}), err
		},
		act: func(ctx context.Context, ids []string, _ bool) error {
			return a.b.Dispatch(ctx, body.apply(&protocol.Message{ID: ids[0], Kind: protocol.KindBroadcast, Data: d}))
		},
		answer: oneID,
	})
}

// except is what a push may leave out of its delivery: one connection,
// by the client id its connect reply and GET /v1/users/{user} give, and
// every connection of one user.
type except struct {
	Client *string `json:"exclude_client"`
	User   *string `json:"exclude_user"`
}

// maxClientIDLen is the length of the largest client id, 2^64-1 in base 36.
const maxClientIDLen = 13

func (e except) check() error {
	if e.Client != nil && !validClientID(*e.Client) {
		return errorf(http.StatusBadRequest, "invalid_field", "field \"exclude_client\" is %q: a client id is 1-%d characters from 0-9 a-z, as the connect reply's \"client\" gives it", *e.Client, maxClientIDLen)
	}
	if e.User != nil && !protocol.ValidUser(*e.User) {
		return invalidUser(*e.User)
	}
	return nil
}

func validClientID(id string) bool {
	if len(id) == 0 || len(id) > maxClientIDLen {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// apply sets the exclusions on m and returns it.
func (e except) apply(m *protocol.Message) *protocol.Message {
	if e.Client != nil {
		m.ExceptClient = *e.Client
	}
	if e.User != nil {
		m.ExceptUser = *e.User
	}
	return m
}

// canonical adds the exclusions given to a request's canonical form. A
// request without them keeps the form it had before they existed, so
// that its key still matches a retry across an upgrade.
func (e except) canonical(form map[string]any) map[string]any {
	if e.Client != nil {
		form["exclude_client"] = *e.Client
	}
	if e.User != nil {
		form["exclude_user"] = *e.User
	}
	return form
}

// checkChannel checks a channel field: present (missing_field if not) and
// well formed (invalid_channel if not, empty included), as the protocol
// checks a client's.
func checkChannel(ch *string) (string, error) {
	if ch == nil {
		return "", errorf(http.StatusBadRequest, "missing_field", "field \"channel\" is required")
	}
	if !protocol.ValidChannel(*ch) {
		return "", fromProtocol(protocol.InvalidChannel(*ch))
	}
	return *ch, nil
}

func invalidUser(u string) error {
	return errorf(http.StatusBadRequest, "invalid_user", "user id %q is not valid: use 1-%d characters from A-Z a-z 0-9 _ - . @", u, protocol.MaxUserLen)
}

func pathUser(r *http.Request) (string, error) {
	u := r.PathValue("user")
	if !protocol.ValidUser(u) {
		return "", invalidUser(u)
	}
	return u, nil
}

func (a *API) userPresence(r *http.Request) (any, error) {
	u, err := pathUser(r)
	if err != nil {
		return nil, err
	}
	n, info, err := a.b.UserPresence(r.Context(), u)
	if err != nil {
		return nil, err
	}
	return struct {
		User        string          `json:"user"`
		Online      bool            `json:"online"`
		Connections int             `json:"connections"`
		Info        json.RawMessage `json:"info,omitempty"`
	}{u, n > 0, n, info}, nil
}

func (a *API) channelPresence(r *http.Request) (any, error) {
	ch := r.PathValue("channel")
	if !protocol.ValidChannel(ch) {
		return nil, fromProtocol(protocol.InvalidChannel(ch))
	}
	members, err := a.b.ChannelPresence(r.Context(), ch)
	if err != nil {
		return nil, err
	}
	return protocol.NewPresenceResult(ch, members), nil
}

func (a *API) stats(r *http.Request) (any, error) { return a.b.Stats(r.Context()) }

func (a *API) disconnect(r *http.Request) (any, error) {
	u, err := pathUser(r)
	if err != nil {
		return nil, err
	}
	var body struct {
		Reason    string `json:"reason"`
		Reconnect bool   `json:"reconnect"`
	}
	// The body is optional: an empty one means the defaults.
	if err := decode(r, &body); err != nil && !isEmptyBody(err) {
		return nil, err
	}
	d := protocol.DisconnectKicked
	if body.Reconnect {
		d = protocol.DisconnectReconnect
	}
	if len(body.Reason) > 256 {
		return nil, errorf(http.StatusBadRequest, "too_large", "reason may be at most 256 bytes")
	}
	d.Message = body.Reason
	n, err := a.b.DisconnectUser(r.Context(), u, d)
	if err != nil {
		return nil, err
	}
	return struct {
		Disconnected int `json:"disconnected"`
	}{n}, nil
}

func (a *API) unsubscribe(r *http.Request) (any, error) {
	u, err := pathUser(r)
	if err != nil {
		return nil, err
	}
	var body struct {
		Channel *string `json:"channel"`
	}
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	ch, err := checkChannel(body.Channel)
	if err != nil {
		return nil, err
	}
	n, err := a.b.UnsubscribeUser(r.Context(), u, ch)
	if err != nil {
		return nil, err
	}
	return struct {
		Unsubscribed int `json:"unsubscribed"`
	}{n}, nil
}
