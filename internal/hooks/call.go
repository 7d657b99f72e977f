package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// MaxAnswerBytes bounds the body of a hook's answer that a Caller reads.
const MaxAnswerBytes = 64 << 10

// Errors of Call. Anything else Call returns also means the backend gave
// no usable answer: it is down, slow, or answered something else than the
// documented JSON.
var (
	// ErrBusy: as many calls as the Caller allows are in flight already.
	ErrBusy = errors.New("hooks: too many hook calls in flight")
)

// Refusal is a backend's "no": an answer {"error": {...}}, or HTTP 403.
type Refusal struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (r *Refusal) Error() string { return "hooks: refused: " + r.Code + ": " + r.Message }

// Caller makes synchronous, signed calls to one hook URL (the connect or
// subscribe hook) and reads the answer: each call bounded in time, in the
// size of its answer, and in how many run at once. A call over the bound
// fails at once with ErrBusy rather than wait for a turn, so that a slow
// backend makes clients fail fast instead of piling up.
type Caller struct {
	url     string
	secret  []byte
	timeout time.Duration
	client  *http.Client
	slots   chan struct{}
}

// NewCaller returns a Caller for url, signing with secret, waiting at most
// timeout for each answer, with at most concurrency calls in flight.
func NewCaller(url string, secret []byte, timeout time.Duration, concurrency int) *Caller {
	return &Caller{
		url:     url,
		secret:  secret,
		timeout: timeout,
		// A redirect is an answer that is not 2xx: followed, it would send
		// the client's credentials where the operator did not say.
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		slots:  make(chan struct{}, max(concurrency, 1)),
	}
}

// URL returns the URL the Caller calls.
func (c *Caller) URL() string { return c.url }

// InFlight returns the number of calls in flight.
func (c *Caller) InFlight() int { return len(c.slots) }

// Call posts req as JSON, signed as the webhooks' posts are, and decodes
// a 2xx answer into answer. It returns a *Refusal when the backend says
// no (HTTP 403, or a 2xx answer with an "error" object), ErrBusy when the
// concurrency bound is reached, and another error when the backend gave
// no usable answer in time: not 2xx nor 403 (a redirect included), more
// than MaxAnswerBytes, or not a JSON object.
func (c *Caller) Call(ctx context.Context, req, answer any) error {
	select {
	case c.slots <- struct{}{}:
	default:
		return ErrBusy
	}
	defer func() { <-c.slots }()
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "herald")
	hr.Header.Set(SignatureHeader, Sign(c.secret, time.Now(), body))
	resp, err := c.client.Do(hr)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	// The timeout covers the body too: ctx ends a slow one.
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	if len(b) > MaxAnswerBytes {
		return fmt.Errorf("answer over %d bytes", MaxAnswerBytes)
	}
	if resp.StatusCode == http.StatusForbidden {
		r := &Refusal{}
		var v struct {
			Error *Refusal `json:"error"`
		}
		if json.Unmarshal(b, &v) == nil && v.Error != nil {
			r = v.Error
		}
		return r
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("backend answered %s", resp.Status)
	}
	var v struct {
		Error *Refusal `json:"error"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("answer is not a JSON object: %w", err)
	}
	if v.Error != nil {
		return v.Error
	}
	if err := json.Unmarshal(b, answer); err != nil {
		return fmt.Errorf("answer does not fit: %w", err)
	}
	return nil
}
