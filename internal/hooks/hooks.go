// Package hooks makes Herald's outgoing calls to a backend: events posted
// in batches to a URL, signed with HMAC-SHA256 so that the backend can
// tell them from forgeries and replays, retried with backoff, and never
// in the way of what produced them: events wait in a bounded queue, and
// when the backend falls far behind the oldest are dropped and counted;
// and questions asked of it (the connect and subscribe hooks), one
// synchronous call each, signed the same way, bounded in time, answer
// size and calls in flight.
package hooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/xid"
)

// Headers of a post.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>" keyed with the secret>".
	SignatureHeader = "Herald-Signature"
	// DeliveryHeader names the batch: a retry of a batch carries the same
	// name, so that a backend may drop one it has seen.
	DeliveryHeader = "Herald-Delivery"
)

// Defaults of a Poster.
const (
	DefaultMaxQueue   = 10_000
	DefaultMaxBatch   = 500
	DefaultTimeout    = 10 * time.Second
	DefaultRetryFor   = 5 * time.Minute
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultDrainFor   = 2 * time.Second
)

// Config configures a Poster; zero fields take the defaults.
type Config struct {
	URL    string
	Secret []byte
	// MaxQueue bounds the events waiting; past it the oldest are dropped.
	MaxQueue int
	// MaxBatch bounds the events of one post.
	MaxBatch int
	// Timeout bounds one post.
	Timeout time.Duration
	// RetryFor is how long a batch is retried before it is dropped.
	RetryFor time.Duration
	// MinBackoff and MaxBackoff bound the wait between tries, which
	// doubles from the first to the second, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// DrainFor bounds the last try at what is queued when Run ends, so
	// that a backend that is down holds up a shutdown only so long.
	DrainFor time.Duration
	// Client makes the posts (default: one with no timeout of its own
	// that follows no redirect).
	Client *http.Client
}

// Poster posts events of type T in batches. Add never blocks; Run posts.
type Poster[T any] struct {
	cfg   Config
	log   *slog.Logger
	merge func(last *T, next T) bool

	mu    sync.Mutex
	queue []T
	wake  chan struct{}

	Counters
}

// Counters count what a Poster did, for metrics.
type Counters struct {
	// Dropped counts events dropped: the queue was full, or their batch
	// was not taken within the retry window.
	Dropped atomic.Int64
	// Posted counts events the backend took.
	Posted atomic.Int64
	// Failed counts posts that failed: each try of a batch the backend
	// did not take, retried or not.
	Failed atomic.Int64
	// Retried counts tries after a batch's first: posts made again
	// because the one before failed.
	Retried atomic.Int64
}

// Stats returns the Poster's counters.
func (p *Poster[T]) Stats() *Counters { return &p.Counters }

// Len returns the number of events waiting to be posted.
func (p *Poster[T]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// New returns a Poster. merge, when not nil, may fold next into the last
// event queued (and report true) so that a burst makes few events.
func New[T any](cfg Config, log *slog.Logger, merge func(last *T, next T) bool) *Poster[T] {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxQueue, DefaultMaxQueue)
	def(&cfg.MaxBatch, DefaultMaxBatch)
	defDur(&cfg.Timeout, DefaultTimeout)
	defDur(&cfg.RetryFor, DefaultRetryFor)
	defDur(&cfg.MinBackoff, DefaultMinBackoff)
	defDur(&cfg.MaxBackoff, DefaultMaxBackoff)
	defDur(&cfg.DrainFor, DefaultDrainFor)
	if cfg.Client == nil {
		// A redirect is an answer that is not 2xx: the batch is not
		// taken. Followed, it would send the events, or a GET in their
		// place, where the operator did not say.
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Poster[T]{cfg: cfg, log: log, merge: merge, wake: make(chan struct{}, 1)}
}

// Add queues ev. When the queue is full the oldest event is dropped.
func (p *Poster[T]) Add(ev T) {
	p.mu.Lock()
	switch {
	case len(p.queue) > 0 && p.merge != nil && p.merge(&p.queue[len(p.queue)-1], ev):
	case len(p.queue) >= p.cfg.MaxQueue:
		p.queue = append(p.queue[1:], ev)
		p.Dropped.Add(1)
	default:
		p.queue = append(p.queue, ev)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take removes up to MaxBatch events from the queue.
func (p *Poster[T]) take() []T {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(len(p.queue), p.cfg.MaxBatch)
	if n == 0 {
		return nil
	}
	batch := append([]T(nil), p.queue[:n]...)
	// Drop the reference to the taken events; reuse the array once empty.
	clear(p.queue[:n])
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue = p.queue[:0:0]
	}
	return batch
}

// Run posts what is queued until ctx ends, then makes one last try at
// what is left, bounded by DrainFor.
func (p *Poster[T]) Run(ctx context.Context) {
	dropped := int64(0)
	for {
		if ctx.Err() != nil {
			// What was added as ctx ended gets the last try too.
			p.drain()
			return
		}
		if batch := p.take(); batch != nil {
			p.send(ctx, batch)
		} else {
			select {
			case <-ctx.Done():
				p.drain()
				return
			case <-p.wake:
			}
		}
		if d := p.Dropped.Load(); d > dropped {
			p.log.Warn("webhook fell behind: events dropped", "url", p.cfg.URL, "dropped", d-dropped, "dropped_total", d)
			dropped = d
		}
	}
}

// drain makes one try at each batch left, within DrainFor in all.
func (p *Poster[T]) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainFor)
	defer cancel()
	for batch := p.take(); batch != nil; batch = p.take() {
		if err := p.post(ctx, xid.New().String(), batch); err != nil {
			p.mu.Lock()
			lost := len(batch) + len(p.queue)
			p.queue = nil
			p.mu.Unlock()
			p.Dropped.Add(int64(lost))
			p.log.Warn("webhook: events not posted at shutdown", "url", p.cfg.URL, "events", lost, "err", err)
			return
		}
	}
}

// send posts batch until the backend takes it, the retry window passes or
// ctx ends.
func (p *Poster[T]) send(ctx context.Context, batch []T) {
	id := xid.New().String()
	giveUp := time.Now().Add(p.cfg.RetryFor)
	backoff := p.cfg.MinBackoff
	for try := 1; ; try++ {
		err := p.post(ctx, id, batch)
		if err == nil {
			p.Posted.Add(int64(len(batch)))
			return
		}
		p.Failed.Add(1)
		if ctx.Err() != nil {
			p.requeue(batch)
			return
		}
		// Full jitter over the upper half: tries from many servers spread.
		wait := backoff/2 + rand.N(backoff/2+1)
		if time.Now().Add(wait).After(giveUp) {
			p.Dropped.Add(int64(len(batch)))
			p.log.Error("webhook: batch dropped after retries", "url", p.cfg.URL, "delivery", id, "events", len(batch), "tries", try, "err", err)
			return
		}
		p.log.Warn("webhook post failed; retrying", "url", p.cfg.URL, "delivery", id, "try", try, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			p.requeue(batch)
			return
		case <-time.After(wait):
		}
		p.Retried.Add(1)
		backoff = min(backoff*2, p.cfg.MaxBackoff)
	}
}

// requeue puts a batch back in front of the queue when Run's context
// ends while it is retried, so that it gets the last try.
func (p *Poster[T]) requeue(batch []T) {
	p.mu.Lock()
	p.queue = append(batch, p.queue...)
	p.mu.Unlock()
}

// post makes one try at batch.
func (p *Poster[T]) post(ctx context.Context, id string, batch []T) error {
	body, err := json.Marshal(struct {
		Events []T `json:"events"`
	}{batch})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "herald")
	req.Header.Set(DeliveryHeader, id)
	req.Header.Set(SignatureHeader, Sign(p.cfg.Secret, time.Now(), body))
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("backend answered %s", resp.Status)
	}
	return nil
}

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("hooks: signature does not match")
	ErrStale        = errors.New("hooks: signature too old or from the future")
)

// Verify checks a SignatureHeader value against body: signed with secret
// within tolerance of now. A backend written in Go may call it as it is.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignature
	}
	want := mac(secret, ts, body)
	ok := false
	for _, sig := range sigs {
		ok = ok || hmac.Equal(sig, want)
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
