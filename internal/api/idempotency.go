package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/rs/xid"
)

// Idempotent pushes. A request with an Idempotency-Key acts at most once
// per key within the server's idempotency window:
//
//  1. The message ids are chosen before anything is stored, so that the
//     result of the request is known before it acts.
//  2. The key is claimed in the store with the request's hash and those
//     ids (Backend.Remember); exactly one request claims a key.
//  3. The request acts with those ids. When it succeeds, a second key
//     marks the claim done. When it fails, the claim stays: the store
//     may have taken some of the messages (a batch partly stored), or
//     all of them with only its answer lost (a node of a cluster whose
//     link to Redis broke during the call).
//  4. A request that finds the key claimed and done answers the claim's
//     ids (a replay). One that finds it claimed but not done is finishing
//     an earlier attempt that failed or stopped part way (the server was
//     killed): it acts again with the claim's ids, skipping the direct
//     messages the store holds already, so that none is stored twice
//     under two ids.
//
// Requests with one key on this server run one at a time: a second waits
// for the first to finish, then replays its result.

// Header names.
const (
	IdempotencyKeyHeader = "Idempotency-Key"
	// ReplayedHeader is set to "true" on an answer that replays an
	// earlier request's result.
	ReplayedHeader = "Idempotent-Replayed"
)

// maxKeyLen bounds an Idempotency-Key.
const maxKeyLen = 255

// defaultInProgressWait is how long a request waits for another with the
// same key before it answers idempotency_in_progress.
const defaultInProgressWait = 10 * time.Second

// ErrKeyReused is what Backend.Remember returns for a key held with
// another request's hash.
var ErrKeyReused = errors.New("idempotency key reused with a different request")

// Store key prefixes: the claim and its done mark.
const (
	claimPrefix = "api:"
	donePrefix  = "api-done:"
)

// idempotencyKey returns the request's Idempotency-Key, "" when it has
// none.
func idempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values(IdempotencyKeyHeader)
	if len(vals) == 0 {
		return "", nil
	}
	if len(vals) > 1 {
		return "", errorf(http.StatusBadRequest, "invalid_idempotency_key", "send one %s header, not %d", IdempotencyKeyHeader, len(vals))
	}
	k := vals[0]
	if k == "" || len(k) > maxKeyLen {
		return "", errorf(http.StatusBadRequest, "invalid_idempotency_key", "%s must be 1-%d characters, got %d", IdempotencyKeyHeader, maxKeyLen, len(k))
	}
	for i := range len(k) {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", errorf(http.StatusBadRequest, "invalid_idempotency_key", "%s may hold printable ASCII only (a UUID, say); byte %d is 0x%02x", IdempotencyKeyHeader, i, k[i])
		}
	}
	return k, nil
}

// requestHash identifies what a request asks for: its method, its path and
// its body in canonical form, so that a retry that spaces or orders its
// JSON differently is the same request.
func requestHash(r *http.Request, canonical func() (any, error)) ([]byte, error) {
	v, err := canonical()
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	h.Write(body)
	return h.Sum(nil), nil
}

// canonicalJSON is raw with its objects' keys sorted and no spaces; numbers
// are kept as written.
func canonicalJSON(raw json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// push is one push request: how many messages it makes, what it asks
// for, how to act and how to answer.
type push struct {
	n int
	// canonical is what the request asks for, in canonical form; it is
	// only computed for a request with an Idempotency-Key.
	canonical func() (any, error)
	// act sends the messages with ids. resume is true when an earlier
	// attempt with these ids may have stored some of them.
	act func(ctx context.Context, ids []string, resume bool) error
	// answer is the result for ids.
	answer func(ids []string) any
}

// partialError is a push of many messages that stored some (those with an
// id in ids) and not the others.
type partialError struct {
	e      *Error
	ids    []string // "" for a message not stored
	failed []string // the recipients of the messages not stored
}

func (pe *partialError) Error() string { return pe.e.Error() }

// do runs p, once per Idempotency-Key.
func (a *API) do(r *http.Request, p push) (any, error) {
	key, err := idempotencyKey(r)
	if err != nil {
		return nil, err
	}
	ids := make([]string, p.n)
	for i := range ids {
		ids[i] = xid.New().String()
	}
	if key == "" {
		if err := p.act(r.Context(), ids, false); err != nil {
			return nil, err
		}
		return p.answer(ids), nil
	}
	hash, err := requestHash(r, p.canonical)
	if err != nil {
		return nil, err
	}
	release, err := a.flights.enter(r.Context(), key, a.cfg.InProgressWait)
	if err != nil {
		return nil, err
	}
	defer release()
	// Once a request with a key holds it, it runs to its end, also when
	// its client goes away: its retry then finds it done.
	return a.once(context.WithoutCancel(r.Context()), key, hash, ids, p)
}

// claim is what the store keeps under a key: the ids of its request.
type claim struct {
	IDs []string `json:"ids"`
}

// once runs p unless key holds a claim; key's flight held.
func (a *API) once(ctx context.Context, key string, hash []byte, ids []string, p push) (any, error) {
	mine, err := json.Marshal(claim{ids})
	if err != nil {
		return nil, err
	}
	held, fresh, err := a.b.Remember(ctx, claimPrefix+key, hash, mine)
	if err != nil {
		return nil, a.storeError(err)
	}
	if !fresh {
		var c claim
		if err := json.Unmarshal(held, &c); err != nil || len(c.IDs) != p.n {
			return nil, errors.New("idempotency key holds a damaged claim")
		}
		done, err := a.isDone(ctx, key, hash, held)
		if err != nil {
			return nil, a.storeError(err)
		}
		if done {
			return replayed{p.answer(c.IDs)}, nil
		}
		mine, ids = held, c.IDs
	}
	if err := p.act(ctx, ids, !fresh); err != nil {
		// The claim stays: a retry sends with the same ids what the
		// store does not hold, whether this attempt stored nothing,
		// part of the messages, or all of them with the answer lost.
		return nil, err
	}
	if err := a.markDone(context.WithoutCancel(ctx), key, hash, mine); err != nil {
		// The messages are sent: answer so. A retry finds the claim not
		// done and sends again with the same ids, which clients drop.
		a.log.Error("mark idempotency key done", "err", err)
	}
	return p.answer(ids), nil
}

// isDone says whether the claim held under key was marked done. Asking
// stores a mark when there is none, so a mark that does not belong to
// held (none, or one left from an expired claim) is forgotten again;
// key's flight is held, so nothing else marks it meanwhile.
func (a *API) isDone(ctx context.Context, key string, hash, held []byte) (bool, error) {
	mark, fresh, err := a.b.Remember(ctx, donePrefix+key, hash, held)
	if err == nil && !fresh && bytes.Equal(mark, held) {
		return true, nil
	}
	if err != nil && !errors.Is(err, ErrKeyReused) {
		return false, err
	}
	return false, a.b.Forget(ctx, donePrefix+key)
}

// markDone marks the claim under key done, replacing a mark left from an
// expired claim.
func (a *API) markDone(ctx context.Context, key string, hash, held []byte) error {
	mark, fresh, err := a.b.Remember(ctx, donePrefix+key, hash, held)
	if err == nil && (fresh || bytes.Equal(mark, held)) {
		return nil
	}
	if err != nil && !errors.Is(err, ErrKeyReused) {
		return err
	}
	if err := a.b.Forget(ctx, donePrefix+key); err != nil {
		return err
	}
	_, _, err = a.b.Remember(ctx, donePrefix+key, hash, held)
	return err
}

func (a *API) storeError(err error) error {
	if errors.Is(err, ErrKeyReused) {
		return errorf(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this %s was used within the idempotency window for a different request (another endpoint or body); use a new key for a new request", IdempotencyKeyHeader)
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	a.log.Error("idempotency key", "err", err)
	return errorf(http.StatusServiceUnavailable, "storage_failed", "the %s could not be checked, so nothing was sent; retry later", IdempotencyKeyHeader)
}

// replayed is a result answered again: render marks it with ReplayedHeader.
type replayed struct{ result any }

// flights are the keys whose requests run on this server now.
type flights struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// enter waits until no other request of key runs, for at most wait, and
// returns the function that lets the next one in.
func (f *flights) enter(ctx context.Context, key string, wait time.Duration) (func(), error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		if f.m == nil {
			f.m = make(map[string]chan struct{})
		}
		busy, ok := f.m[key]
		if !ok {
			done := make(chan struct{})
			f.m[key] = done
			f.mu.Unlock()
			return func() {
				f.mu.Lock()
				delete(f.m, key)
				f.mu.Unlock()
				close(done)
			}, nil
		}
		f.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, inProgress()
		case <-timer.C:
			return nil, inProgress()
		}
	}
}

func inProgress() *Error {
	return &Error{Status: http.StatusConflict, Code: "idempotency_in_progress", RetryAfter: 1,
		Message: "another request with this " + IdempotencyKeyHeader + " is still running; retry shortly to get its result"}
}
